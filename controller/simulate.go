package controller

import (
	"log/slog"
	"time"

	"github.com/cro-exporter/cro-exporter/collector"
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
	// collector.Resources) at elapsed time since the start.
	Real func(elapsed time.Duration) [len(collector.Resources)]float64

	start, last time.Time
	load        Load
	cpuTime     time.Duration
}

// Read samples the modelled host at now; the first call starts its clock.
func (m *Model) Read(now time.Time) (collector.Sample, error) {
	if m.start.IsZero() {
		m.start, m.last = now, now
	}
	real := m.Real(now.Sub(m.start))
	held := min(m.load.CPU, 1-real[0])
	m.cpuTime += time.Duration(held * float64(now.Sub(m.last)) * float64(m.CPUs))
	m.last = now
	free := func(total uint64, usage float64, held int64) uint64 {
		used := min(float64(total), usage*float64(total)+float64(held))
		return total - uint64(used)
	}
	return collector.Sample{
		Time:            now,
		CPUs:            m.CPUs,
		CPU:             real[0] + held,
		MemoryTotal:     m.MemoryTotal,
		MemoryAvailable: free(m.MemoryTotal, real[1], m.load.Memory),
		DiskSize:        m.DiskSize,
		DiskAvailable:   free(m.DiskSize, real[2], m.load.Disk),
	}, nil
}

// Apply implements Holders.
func (m *Model) Apply(l Load) error {
	m.load = l
	return nil
}

// Usage implements Holders.
func (m *Model) Usage() (HolderUsage, error) {
	u := wouldHold(m.load, maxStep)
	u.CPUTime = m.cpuTime
	return u, nil
}

// CPUTime implements Holders.
func (m *Model) CPUTime() (time.Duration, error) { return m.cpuTime, nil }

// Day is one simulated day, per resource in the order of
// collector.Resources.
type Day struct {
	// Average is the average at the end of the day.
	Average [len(collector.Resources)]float64
	// Target is the target.
	Target [len(collector.Resources)]float64
	// Holder is the mean share of the resource holders took that day.
	Holder [len(collector.Resources)]float64
	// Changes counts the holder load changes the controller made that day.
	Changes [len(collector.Resources)]int
	// Met tells the average was at or above its target at some tick.
	Met [len(collector.Resources)]bool
}

// Simulation runs the control loop against a Model with a fake clock.
type Simulation struct {
	Model    *Model
	Averages *Averages
	Targets  map[collector.Resource]float64
	Ceiling  float64
	// MemoryReserve and DiskReserve are in bytes, as for the daemon.
	MemoryReserve, DiskReserve int64
	Interval                   time.Duration
	Start                      time.Time
	// Tick, when set, sees the state after every tick.
	Tick func(*collector.State)
}

// Run simulates days days and returns one Day each.
func (sim *Simulation) Run(days int) []Day {
	var (
		result = make([]Day, days)
		day    Day
		ticks  int
		prev   Load
	)
	loop := &Loop{
		Read:          sim.Model.Read,
		Holders:       sim.Model,
		Averages:      sim.Averages,
		Spec:          Classify(sim.Model.MemoryTotal),
		Targets:       sim.Targets,
		Ceiling:       sim.Ceiling,
		MemoryReserve: sim.MemoryReserve,
		DiskReserve:   sim.DiskReserve,
		Chunk:         maxStep,
		Interval:      sim.Interval,
		Logger:        slog.New(slog.DiscardHandler),
		Publish: func(s *collector.State) {
			for i, r := range collector.Resources {
				day.Average[i] = s.Resources[r].Average
				day.Target[i] = s.Resources[r].Target
				day.Holder[i] += s.Resources[r].HolderUsage
				day.Met[i] = day.Met[i] || s.Resources[r].Average >= s.Resources[r].Target
			}
			if sim.Tick != nil {
				sim.Tick(s)
			}
		},
	}
	perDay := int(24 * time.Hour / sim.Interval)
	for d := range days {
		day = Day{}
		for range perDay {
			now := sim.Start.Add(time.Duration(ticks) * sim.Interval)
			ticks++
			s, _ := sim.Model.Read(now)
			loop.Step(s)
			for i, r := range collector.Resources {
				if ratioOf(r, loop.applied, s) != ratioOf(r, prev, s) {
					day.Changes[i]++
				}
			}
			prev = loop.applied
		}
		for i := range day.Holder {
			day.Holder[i] /= float64(perDay)
		}
		result[d] = day
	}
	return result
}
