package controller

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// saveEvery bounds how much of the averages' history a crash can lose.
const saveEvery = 5 * time.Minute

// Config is what a Loop is built from: how it reads the host and reaches
// the holders, what it aims at, and where it saves and publishes.
type Config struct {
	Read func(now time.Time) (host.Sample, error)
	// Holders applies the load; nil is a dry run: everything is decided
	// and shown, nothing is applied.
	Holders  Holders
	Averages *Averages
	Spec     Spec
	Targets  map[host.Resource]float64
	Ceiling  float64
	// MemoryReserve and DiskReserve are the bytes of MemAvailable and of
	// free disk space holders never take.
	MemoryReserve, DiskReserve int64
	// Chunk is the largest memory holder, above 0: pressure releases
	// whole ones.
	Chunk int64
	// Cgroup reads the limits of the daemon's own cgroups, read at every
	// tick: holders are its children there, so they never take more than
	// these leave (cgroupRoom). nil reads none.
	Cgroup func() (cgroup.Limits, error)
	// StateDir is where the averages are saved; "" never saves them (a
	// dry run writes nothing).
	StateDir string
	Interval time.Duration
	Publish  func(*State)
	Logger   *slog.Logger
}

// Loop samples the host every Config.Interval, keeps the averages, decides the
// holder load, applies it, and publishes the state the metrics show. Watch
// gives load back between ticks.
//
// Decisions are made under mu and acted on outside it: a tick that starts
// holders, or a holder that does not answer, never keeps the watcher from
// giving memory back.
type Loop struct {
	// cfg is what the loop was built from; it only reads it.
	cfg Config

	mu sync.Mutex
	// planned is the load the tick decided, less what Watch gave back.
	planned holder.Load
	// applied is what the holders are to hold now: planned, with the CPU
	// duty lowered while real CPU work rises into the burner's room, and
	// memory and disk grown by at most maxStep over what the holders
	// held at the tick (growCap).
	applied holder.Load
	growCap holder.Load
	control host.Each[control]
	tickCPU cpuClock
	// holdOff keeps memory ballast from growing back into the workload
	// that made it give way.
	holdOff holdOff
	// saveFailures counts the failed saves of the averages; clockSteps
	// the steps of the wall clock seen between two samples.
	saveFailures, clockSteps uint64
	// sampled is the time of the last sample Step took, with its monotonic
	// clock reading; only Step uses it, and Step runs one at a time.
	sampled time.Time
	// diskLost is set while the disk is not measured (Sample.DiskErr);
	// diskLosses counts the times it started.
	diskLost   bool
	diskLosses uint64

	// applyMu keeps calls of Holders.Apply in order; each sends the
	// decision that stands when it runs, so a stale one never overrides a
	// newer one. sent is the last load sent.
	applyMu sync.Mutex
	sent    holder.Load
	// Repeated failures are logged when they start and when they end.
	readFault, measureFault, applyFault, saveFault, cgroupFault fault
	// planning tells Watch, once it runs, that a tick has decided: it may
	// have load to watch again.
	planning chan struct{}
}

// NewLoop is a loop of cfg, with nothing decided yet.
func NewLoop(cfg Config) *Loop {
	return &Loop{cfg: cfg}
}

// control is what the loop remembers of one resource between ticks.
type control struct {
	setpoint float64
	// smooth is real usage averaged over a few minutes: holders follow
	// it, not every tick's noise. started tells it has a first value.
	smooth   float64
	started  bool
	releases [len(Reasons)]uint64
	// unreachable is set while the limit keeps the target out of reach,
	// shortfall how far under the target the limit is then.
	unreachable bool
	shortfall   float64
}

// Run samples every Interval until ctx ends, saving the averages every few
// minutes and once more at the end. Samples are taken on the clock's
// multiples of Interval, as a cloud agent's are, so that each audit period
// (a multiple of Interval) is the sum of whole samples; the first at least
// an Interval after Run starts, as after the daemon's first Step. Timers
// run on the monotonic clock and each tick sets the next from the wall
// clock it reads: after a step of the wall clock, the tick due comes on
// time, off the new clock's multiples, and the next is on them again.
func (l *Loop) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Until(l.nextTick(time.Now().Add(l.cfg.Interval - time.Nanosecond))))
	defer timer.Stop()
	saved := time.Now()
	for {
		select {
		case <-ctx.Done():
			if l.cfg.StateDir == "" {
				return nil
			}
			return l.cfg.Averages.save(l.cfg.StateDir)
		case now := <-timer.C:
			timer.Reset(time.Until(l.nextTick(now)))
			s, err := l.cfg.Read(now)
			// A failed read skips the tick; the stale
			// cro_last_sample_timestamp_seconds shows it.
			l.readFault.report(l.cfg.Logger, "reading the host", err)
			if err != nil {
				continue
			}
			l.Step(s)
			if l.cfg.StateDir != "" && now.Sub(saved) >= saveEvery {
				l.save()
				saved = now
			}
		}
	}
}

// nextTick is the first multiple of Interval on the clock after now.
func (l *Loop) nextTick(now time.Time) time.Time {
	return now.Truncate(l.cfg.Interval).Add(l.cfg.Interval)
}

// save saves the averages, counting every failure and logging a run of
// them once.
func (l *Loop) save() {
	err := l.cfg.Averages.save(l.cfg.StateDir)
	l.saveFault.report(l.cfg.Logger, "saving the averages", err)
	if err != nil {
		l.mu.Lock()
		l.saveFailures++
		l.mu.Unlock()
	}
}

// Step folds one sample into the averages, decides the holder load, has
// the holders apply it (again, so that holders lost since are replaced),
// and publishes the new state. A step of the wall clock since the previous
// sample is logged, counted, and the averages go on from the new time.
func (l *Loop) Step(s host.Sample) {
	// Sub reads the monotonic clock where both times carry it, as
	// time.Now's and the timer's do; a step of the wall clock moves it not.
	l.stepAfter(s, s.Time.Sub(l.sampled))
}

// stepAfter is Step for a sample taken elapsed after the previous one by
// the monotonic clock.
func (l *Loop) stepAfter(s host.Sample, elapsed time.Duration) {
	stepped := wallStep(l.sampled, s.Time, elapsed)
	l.sampled = s.Time
	var used holder.Held
	if l.cfg.Holders != nil {
		var err error
		used, err = l.cfg.Holders.Held()
		l.measureFault.report(l.cfg.Logger, "measuring the holders", err)
	}
	var limits cgroup.Limits
	if l.cfg.Cgroup != nil {
		var err error
		limits, err = l.cfg.Cgroup()
		l.cgroupFault.report(l.cfg.Logger, "reading the limits of the daemon's cgroup", err)
	}
	state := l.decide(s, used, stepped, limits)
	l.apply(true)
	l.cfg.Publish(state)
	l.mu.Lock()
	planning := l.planning
	l.mu.Unlock()
	select {
	case planning <- struct{}{}:
	default: // nil before Watch, or told already
	}
}

// decide is the part of Step that runs under the lock: it gathers each
// resource's inputs, has its law decide, and applies the decision. stepped
// is how far the wall clock stepped since the previous sample; limits are
// those of the daemon's cgroup.
func (l *Loop) decide(s host.Sample, used holder.Held, stepped time.Duration, limits cgroup.Limits) *State {
	l.mu.Lock()
	defer l.mu.Unlock()
	if stepped != 0 {
		l.clockStepped(stepped)
	}
	held := l.shares(used, s, &l.tickCPU)
	// Ballast is charged to the cgroup as its resident bytes, but no more
	// than the sizes asked of the holders: the resident pages of their
	// binary are shared, and charged once.
	room := cgroupRoom(limits, min(used.Bytes.At(host.Memory), l.applied.Memory), used.Holders.At(host.Memory), l.cfg.Chunk, s)
	next := l.planned
	l.noteDisk(s.DiskErr)
	var real host.Each[float64]
	for i, r := range host.Resources {
		real[i] = max(0, s.Usage(r)-held[i])
		if r == host.Disk && s.DiskErr != nil {
			// No figures, or another filesystem's: nothing to average,
			// and no fill to hold until the disk is back.
			next.Disk = 0
			continue
		}
		next = l.decideResource(r, &l.control[i], s, real[i], room[i], next)
	}
	if next != l.planned {
		l.cfg.Logger.Info("holder load planned", "cpu", round(next.CPU), "memory_bytes", next.Memory, "disk_bytes", next.Disk,
			"was_cpu", round(l.planned.CPU), "was_memory_bytes", l.planned.Memory, "was_disk_bytes", l.planned.Disk)
		l.planned = next
	}
	if l.cfg.Holders != nil {
		l.growCap = holder.Load{Memory: roundUp(used.Bytes.At(host.Memory), l.cfg.Chunk) + maxStep, Disk: used.Bytes.At(host.Disk) + maxStep}
	} else {
		l.growCap = holder.Load{Memory: math.MaxInt64, Disk: math.MaxInt64}
	}
	// The duty gives way to real CPU usage as it is, not as the plan
	// follows it.
	l.decideApplied(s.Time, *real.Of(host.CPU))
	if l.cfg.Holders == nil {
		// A dry run shows what it would hold after this tick.
		used = wouldHold(l.applied, l.cfg.Chunk)
		held = sharesOf(l.applied, s)
	}
	return l.state(s, used, held)
}

// decideResource folds sample s into r's average, has r's law decide its
// holder load from real usage real within the room the daemon's cgroup
// leaves, and returns next with r's share set as decided. It runs under mu.
func (l *Loop) decideResource(r host.Resource, c *control, s host.Sample, real, room float64, next holder.Load) holder.Load {
	if err := l.cfg.Averages.update(r, s.Time, s.Usage(r)); err != nil {
		l.cfg.Logger.Warn("updating the average", "resource", r, "err", err)
	}
	limit, by := l.limit(r, s)
	c.setpoint = l.setpoint(r, s.Time, limit)
	now := ratioOf(r, l.planned, s)
	d := laws[r](inputs{
		setpoint: c.setpoint, limit: limit, reserved: by == byReserve,
		real: real, sinceBoot: s.CPUSpan > 2*l.cfg.Interval,
		smooth: c.smooth, started: c.started, interval: l.cfg.Interval,
		held: now, step: stepOf(r, s), heldOff: l.holdOff.holds(s.Time),
	})
	c.smooth, c.started = d.smooth, d.started
	d = d.within(room, now, r == host.Memory)
	level := real
	if c.started {
		level = c.smooth
	}
	reach, reachBy := limit, by
	if level+room < reach {
		reach, reachBy = level+room, byCgroup
	}
	l.warnUnreachable(r, c, l.cfg.Targets[r], reach, reachBy)
	if d.released {
		c.releases[d.release]++
	}
	if d.load != now {
		next = withRatio(next, r, d.load, s)
	}
	if d.short {
		// Whole chunks go, as Watch gives them back.
		next.Memory = afterRelease(l.planned.Memory, l.cfg.Chunk, l.planned.Memory-next.Memory)
	}
	if d.holdOff {
		l.holdOff = l.holdOff.after(s.Time)
	}
	return next
}

// state is what the exporter shows after a tick: the sample, and per
// resource the average, what the loop decided and what the holders take
// (used, and held as shares). It runs under mu.
func (l *Loop) state(s host.Sample, used holder.Held, held host.Each[float64]) *State {
	state := &State{
		Sample:        s,
		Spec:          l.cfg.Spec.Name,
		Ceiling:       l.cfg.Ceiling,
		MemoryReserve: l.cfg.MemoryReserve,
		DiskReserve:   l.cfg.DiskReserve,
		Interval:      l.cfg.Interval,
		SaveFailures:  l.saveFailures,
		ClockSteps:    l.clockSteps,
		DiskLosses:    l.diskLosses,
		Resources:     make(map[host.Resource]ResourceState, len(host.Resources)),
	}
	for i, r := range host.Resources {
		o := l.cfg.Averages.objective(r)
		setpoint := l.control[i].setpoint
		if r == host.CPU && !l.burning(s.Time) {
			setpoint = 0
		}
		rs := ResourceState{
			Statistic:   o.Statistic(),
			Window:      o.Window,
			Audit:       l.cfg.Averages.Value(r),
			Average:     l.cfg.Averages.Value(r),
			History:     l.cfg.Averages.History(r),
			Target:      l.cfg.Targets[r],
			Setpoint:    setpoint,
			Holders:     used.Holders.At(r),
			HolderShare: held[i],
			HolderBytes: uint64(used.Bytes.At(r)),
			Releases:    l.control[i].releases,
			Failures:    used.Failures.At(r),
			Shortfall:   l.control[i].shortfall,
			Refusals:    used.Refusals.At(r),
		}
		if p := l.cfg.Averages.periods[r]; p != nil {
			rs.Period, rs.Subperiod = o.Period, o.Sub
			rs.Audit, rs.Passing, rs.Needed = p.lastAudit(s.Time, o.Quantile, l.cfg.Targets[r])
		}
		state.Resources[r] = rs
	}
	memory := state.Resources[host.Memory]
	memory.HoldOff = l.holdOff.left(s.Time)
	state.Resources[host.Memory] = memory
	return state
}

// apply sends the load decided last to the holders: when it changed, or
// always with again, so that holders lost since the last call come back.
func (l *Loop) apply(again bool) {
	if l.cfg.Holders == nil {
		return
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	l.mu.Lock()
	next := l.applied
	l.mu.Unlock()
	if next == l.sent && !again {
		return
	}
	l.sent = next
	l.applyFault.report(l.cfg.Logger, "applying holder load", l.cfg.Holders.Apply(next))
}

// setpoint is the total usage of r to aim at, as of now, within limit: for
// the mean, what brings the average to target; for a percentile, the
// target with a lift (for CPU, periods of an hour or more: the level that
// brings the period's mean to target, burstLevel), which CPU holders hold
// through bursts alone (it decides the next burst here) and memory and
// disk holders always. A target of 0 holds nothing.
func (l *Loop) setpoint(r host.Resource, now time.Time, limit float64) float64 {
	o, target := l.cfg.Averages.objective(r), l.cfg.Targets[r]
	if target == 0 {
		// A target of 0 holds nothing: no margin or lift over it.
		return 0
	}
	if o.Quantile == 0 {
		return l.cfg.Averages.Setpoint(r, target, limit)
	}
	if r == host.CPU {
		p := l.cfg.Averages.periods[r]
		p.planBurst(now, target, o.Quantile)
		return min(p.burstLevel(now, target), limit)
	}
	return min(target+lift, limit)
}

// burning tells whether the CPU holds its setpoint at now: always for the
// mean, through bursts (from burstLead before each) for a percentile.
func (l *Loop) burning(now time.Time) bool {
	p := l.cfg.Averages.periods[host.CPU]
	if p == nil {
		return true
	}
	return p.burning(now)
}

// noteDisk says once, when it starts and when it ends, that the disk is
// not measured (err), and counts the times it starts. It runs under mu.
func (l *Loop) noteDisk(err error) {
	if lost := err != nil; lost == l.diskLost {
		return
	}
	l.diskLost = err != nil
	if l.diskLost {
		l.diskLosses++
		l.cfg.Logger.Warn("disk not measured: its average waits and its fill is released until it is", "err", err)
	} else {
		l.cfg.Logger.Info("disk measured again: --disk.path is on the filesystem it was on at start")
	}
}

// round keeps logs readable: four decimals of a ratio.
func round(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// fault is a condition that may repeat every tick, such as a failing
// write: it is logged once when it starts and once when it ends.
type fault struct{ failing bool }

// report logs err as what failed when the condition starts, and that it
// works again when it ends.
func (f *fault) report(logger *slog.Logger, what string, err error) {
	switch {
	case err != nil && !f.failing:
		f.failing = true
		logger.Warn(what, "err", err)
	case err == nil && f.failing:
		f.failing = false
		logger.Info(what + ": works again")
	}
}
