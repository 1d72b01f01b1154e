package controller

import (
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// Model is a modelled host for simulate: its real usage comes from a
// function of time, and its holders take at once what they are asked,
// within what the host has (the CPU holder only gets the CPUs real work
// leaves idle, as under SCHED_IDLE).
type Model struct {
	CPUs        int
	MemoryTotal uint64
	DiskSize    uint64
	// Real is the real usage ratio of every resource (in the order of
	// host.Resources) at elapsed time since the start.
	Real func(elapsed time.Duration) [len(host.Resources)]float64

	start, last time.Time
	load        holder.Load
	cpuTime     time.Duration
}

// Read samples the modelled host at now; the first call starts its clock.
func (m *Model) Read(now time.Time) (host.Sample, error) {
	if m.start.IsZero() {
		m.start, m.last = now, now
	}
	real := m.Real(now.Sub(m.start))
	held := min(m.load.CPU, 1-real[0])
	m.cpuTime += time.Duration(held * float64(now.Sub(m.last)) * float64(m.CPUs))
	m.last = now
	used := func(total uint64, usage float64, held int64) uint64 {
		return uint64(min(float64(total), usage*float64(total)+float64(held)))
	}
	memUsed, diskUsed := used(m.MemoryTotal, real[1], m.load.Memory), used(m.DiskSize, real[2], m.load.Disk)
	return host.Sample{
		Time:            now,
		CPUs:            m.CPUs,
		CPU:             real[0] + held,
		MemoryTotal:     m.MemoryTotal,
		MemoryAvailable: m.MemoryTotal - memUsed,
		// The modelled disk has no blocks reserved for root.
		DiskSize:      m.DiskSize,
		DiskUsed:      diskUsed,
		DiskAvailable: m.DiskSize - diskUsed,
	}, nil
}

// Apply implements Holders.
func (m *Model) Apply(l holder.Load) error {
	m.load = l
	return nil
}

// Held implements Holders.
func (m *Model) Held() (holder.Held, error) {
	u := wouldHold(m.load, holder.MaxChunk)
	u.CPUTime = m.cpuTime
	return u, nil
}

// CPUTime implements Holders.
func (m *Model) CPUTime() (time.Duration, error) { return m.cpuTime, nil }

// Day is one simulated day, per resource in the order of
// host.Resources.
type Day struct {
	// Average is the average at the end of the day.
	Average [len(host.Resources)]float64
	// Audit is the statistic at the end of the day as the auditor computes
	// it from what the host did: the objective's percentile (nearest rank)
	// or mean of the period means of the trailing window, those since the
	// start where the window reaches further back.
	Audit [len(host.Resources)]float64
	// Target is the target.
	Target [len(host.Resources)]float64
	// Holder is the mean share of the resource holders took that day.
	Holder [len(host.Resources)]float64
	// Changes counts the holder load changes the controller made that day.
	Changes [len(host.Resources)]int
	// HolderCPUHours is the CPU time the holders burnt that day, in hours;
	// ConstantCPUHours what holding CPU usage constantly at its target
	// would have burnt.
	HolderCPUHours, ConstantCPUHours float64
}

// Outage is a time the daemon is down in a simulation: it stops with its
// state saved, its holders stop, and it starts again from the state dir.
type Outage struct {
	At, For time.Duration // since the start
}

// Simulation runs the control loop against a Model with a fake clock.
type Simulation struct {
	Model    *Model
	Averages *Averages
	Targets  map[host.Resource]float64
	Ceiling  float64
	// MemoryReserve and DiskReserve are in bytes, as for the daemon.
	MemoryReserve, DiskReserve int64
	Interval                   time.Duration
	Start                      time.Time
	// Outages, in time order, need a StateDir to restart from.
	Outages  []Outage
	StateDir string
	// Tick, when set, sees the state after every tick.
	Tick func(*State)

	audit *auditor
}

// Run simulates days days and returns one Day each.
func (sim *Simulation) Run(days int) []Day {
	var (
		result  = make([]Day, days)
		day     Day
		ticks   int
		prev    holder.Load
		cpuTime time.Duration
	)
	publish := func(s *State) {
		for i, r := range host.Resources {
			day.Average[i] = s.Resources[r].Average
			day.Target[i] = s.Resources[r].Target
			day.Holder[i] += s.Resources[r].HolderShare
		}
		if sim.Tick != nil {
			sim.Tick(s)
		}
	}
	sim.audit = newAuditor(sim.Averages, sim.Interval)
	loop := sim.loop(publish)
	perDay := int(24 * time.Hour / sim.Interval)
	for d := range days {
		day = Day{}
		// The first sample only starts the clock: the first day has one
		// more, so that every day's last is at its end, and the audit at
		// the day's end sees the whole day.
		n := perDay
		if d == 0 {
			n++
		}
		for range n {
			now := sim.Start.Add(time.Duration(ticks) * sim.Interval)
			ticks++
			s, _ := sim.Model.Read(now)
			sim.audit.add(s)
			real := sim.Model.Real(now.Sub(sim.Start))[0]
			if ticks > 1 {
				day.ConstantCPUHours += max(0, sim.Targets[host.CPU]-real) * sim.Interval.Hours() * float64(s.CPUs)
			}
			down := sim.down(now.Sub(sim.Start))
			if !down && loop == nil {
				sim.restart(now)
				loop = sim.loop(publish)
			}
			if loop == nil {
				continue
			}
			loop.Step(s)
			for i, r := range host.Resources {
				if ratioOf(r, loop.applied, s) != ratioOf(r, prev, s) {
					day.Changes[i]++
				}
			}
			prev = loop.applied
			if down {
				// It stops after this tick, as on SIGTERM.
				if err := sim.Averages.save(sim.StateDir); err != nil {
					panic(err)
				}
				sim.Model.Apply(holder.Load{})
				loop, prev = nil, holder.Load{}
			}
		}
		for i := range day.Holder {
			day.Holder[i] /= float64(n)
		}
		day.HolderCPUHours = (sim.Model.cpuTime - cpuTime).Hours()
		cpuTime = sim.Model.cpuTime
		day.Audit = sim.audit.statistics()
		result[d] = day
	}
	return result
}

// loop is a daemon's loop on the simulated host, from its averages.
func (sim *Simulation) loop(publish func(*State)) *Loop {
	return NewLoop(Config{
		Read:          sim.Model.Read,
		Holders:       sim.Model,
		Averages:      sim.Averages,
		Spec:          Classify(sim.Model.MemoryTotal),
		Targets:       sim.Targets,
		Ceiling:       sim.Ceiling,
		MemoryReserve: sim.MemoryReserve,
		DiskReserve:   sim.DiskReserve,
		Chunk:         holder.MaxChunk,
		Interval:      sim.Interval,
		Logger:        slog.New(slog.DiscardHandler),
		Publish:       publish,
	})
}

// restart is the daemon starting again at now: its averages and audit
// periods as it saved them when it stopped.
func (sim *Simulation) restart(now time.Time) {
	restarted := NewAverages(time.Hour, sim.Averages.maxSpan)
	for r, o := range sim.Averages.objectives {
		restarted.SetObjective(r, o)
	}
	if err := restarted.Load(sim.StateDir, now, slog.New(slog.DiscardHandler)); err != nil {
		panic(err)
	}
	sim.Averages = restarted
}

// down tells whether the daemon is down at elapsed.
func (sim *Simulation) down(elapsed time.Duration) bool {
	for _, o := range sim.Outages {
		if elapsed >= o.At && elapsed < o.At+o.For {
			return true
		}
	}
	return false
}

// auditor sums what the simulated host did into audit periods as an
// auditor would, from the samples alone: per resource, the usage-seconds of
// every period since the start, each sample standing for the interval
// before it.
type auditor struct {
	objectives map[host.Resource]Objective
	// period is what the sums are kept per: the sub-period where a
	// period's value is the max of its sub-periods' means, else the
	// period; group is how many of them make an audit period.
	period      [len(host.Resources)]time.Duration
	group       [len(host.Resources)]int
	start, last time.Time
	sums        [len(host.Resources)][]float64
}

// newAuditor audits each percentile over its objective's periods (kept per
// sub-period where it has them), and each mean over periods of one
// sampling interval.
func newAuditor(a *Averages, interval time.Duration) *auditor {
	au := &auditor{objectives: a.objectives}
	for i, r := range host.Resources {
		au.period[i], au.group[i] = interval, 1
		switch o := a.objectives[r]; {
		case o.Quantile != 0 && o.Sub > 0:
			au.period[i], au.group[i] = o.Sub, int(o.Period/o.Sub)
		case o.Quantile != 0:
			au.period[i] = o.Period
		}
	}
	return au
}

// add folds a sample in.
func (au *auditor) add(s host.Sample) {
	if au.last.IsZero() {
		au.start, au.last = s.Time, s.Time
		return
	}
	for i, r := range host.Resources {
		x, p := s.Usage(r), au.period[i]
		for from := au.last; from.Before(s.Time); {
			k := int(from.Sub(au.start) / p)
			end := au.start.Add(time.Duration(k+1) * p)
			if end.After(s.Time) {
				end = s.Time
			}
			for len(au.sums[i]) <= k {
				au.sums[i] = append(au.sums[i], 0)
			}
			au.sums[i][k] += x * end.Sub(from).Seconds()
			from = end
		}
	}
	au.last = s.Time
}

// means are the values of r's complete audit periods: their means, or the
// max of their sub-periods' means.
func (au *auditor) means(r host.Resource) []float64 {
	i := slices.Index(host.Resources[:], r)
	p, g := au.period[i], au.group[i]
	complete := min(len(au.sums[i]), int(au.last.Sub(au.start)/p)) / g
	means := make([]float64, complete)
	for k := range means {
		for _, sum := range au.sums[i][k*g : (k+1)*g] {
			means[k] = max(means[k], sum/p.Seconds())
		}
	}
	return means
}

// statistics are each resource's objective over the trailing window of
// complete periods.
func (au *auditor) statistics() [len(host.Resources)]float64 {
	var stats [len(host.Resources)]float64
	for i, r := range host.Resources {
		o := au.objectives[r]
		means := au.means(r)
		means = means[max(0, len(means)-int(o.Window/au.period[i])/au.group[i]):]
		if len(means) == 0 {
			continue
		}
		if o.Quantile == 0 {
			for _, m := range means {
				stats[i] += m / float64(len(means))
			}
			continue
		}
		slices.Sort(means)
		stats[i] = means[max(0, int(math.Ceil(o.Quantile*float64(len(means))-1e-9))-1)]
	}
	return stats
}
