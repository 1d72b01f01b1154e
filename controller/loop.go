package controller

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/internal/cgroup"
)

// saveEvery bounds how much of the averages' history a crash can lose.
const saveEvery = 5 * time.Minute

// maxStep is the most memory or disk holders grow in one tick: one memory
// chunk or fill file at most, so a misjudged step costs little.
const maxStep int64 = 1 << 30

// Load is holder load: CPU as a share of the whole machine, memory and disk
// in bytes.
type Load struct {
	CPU          float64
	Memory, Disk int64
}

// HolderUsage is what the holders take now, measured. CPUTime counts the CPU
// holders' time since the manager started, so every reader takes its own
// difference.
type HolderUsage struct {
	CPUTime       time.Duration
	Memory, Disk  int64
	CPUHolders    int
	MemoryHolders int
	DiskFiles     int
	// The failures of each resource's holders since the start: ended by
	// themselves, failed to start, fill or answer.
	CPUFailures, MemoryFailures, DiskFailures uint64
	// The starts refused because the cgroup's pids limit left too little
	// room.
	CPURefusals, MemoryRefusals uint64
}

// Holders is the holder manager as the loop sees it. Apply must not wait
// for a holder's cooperation: the give-way watcher calls it too.
type Holders interface {
	Apply(Load) error
	Usage() (HolderUsage, error)
	// CPUTime is HolderUsage.CPUTime alone, cheap enough for the watcher.
	CPUTime() (time.Duration, error)
}

// Config is what a Loop is built from: how it reads the host and reaches
// the holders, what it aims at, and where it saves and publishes.
type Config struct {
	Read func(now time.Time) (collector.Sample, error)
	// Holders applies the load; nil is a dry run: everything is decided
	// and shown, nothing is applied.
	Holders  Holders
	Averages *Averages
	Spec     Spec
	Targets  map[collector.Resource]float64
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
	Publish  func(*collector.State)
	Logger   *slog.Logger
}

// Loop samples the host every Interval, keeps the averages, decides the
// holder load, applies it, and publishes the state the metrics show. Watch
// gives load back between ticks.
//
// Decisions are made under mu and acted on outside it: a tick that starts
// holders, or a holder that does not answer, never keeps the watcher from
// giving memory back.
type Loop struct {
	cfg Config

	mu sync.Mutex
	// planned is the load the tick decided, less what Watch gave back.
	planned Load
	// applied is what the holders are to hold now: planned, with the CPU
	// duty lowered while real CPU work rises into the burner's room, and
	// memory and disk grown by at most maxStep over what the holders
	// held at the tick (growCap).
	applied Load
	growCap Load
	control byResource[control]
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
	sent    Load
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
	releases [len(collector.Reasons)]uint64
	// unreachable is set while the limit keeps the target out of reach,
	// shortfall how far under the target the limit is then.
	unreachable bool
	shortfall   float64
}

// smoothing is the time constant of the real usage holders follow.
const smoothing = 5 * time.Minute

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
func (l *Loop) Step(s collector.Sample) {
	// Sub reads the monotonic clock where both times carry it, as
	// time.Now's and the timer's do; a step of the wall clock moves it not.
	l.stepAfter(s, s.Time.Sub(l.sampled))
}

// stepAfter is Step for a sample taken elapsed after the previous one by
// the monotonic clock.
func (l *Loop) stepAfter(s collector.Sample, elapsed time.Duration) {
	stepped := wallStep(l.sampled, s.Time, elapsed)
	l.sampled = s.Time
	var used HolderUsage
	if l.cfg.Holders != nil {
		var err error
		used, err = l.cfg.Holders.Usage()
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

// stepTolerance is the least difference between the wall clock's and the
// monotonic clock's time between two samples that is a step of the wall
// clock, and not its slewing: chrony slews it by up to 8.3%, so by a
// tenth of the time between the samples, at least 2 s.
func stepTolerance(elapsed time.Duration) time.Duration {
	return max(2*time.Second, elapsed/10)
}

// wallStep is how far the wall clock stepped between a sample at prev and
// one at now, taken elapsed later by the monotonic clock: forward when
// positive, 0 within stepTolerance or without a previous sample.
func wallStep(prev, now time.Time, elapsed time.Duration) time.Duration {
	if prev.IsZero() {
		return 0
	}
	by := now.Round(0).Sub(prev.Round(0)) - elapsed
	if by.Abs() < stepTolerance(elapsed) {
		return 0
	}
	return by
}

// decide is the part of Step that runs under the lock: it gathers each
// resource's inputs, has its law decide, and applies the decision. stepped
// is how far the wall clock stepped since the previous sample; limits are
// those of the daemon's cgroup.
func (l *Loop) decide(s collector.Sample, used HolderUsage, stepped time.Duration, limits cgroup.Limits) *collector.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	if stepped != 0 {
		l.clockStepped(stepped)
	}
	held := l.shares(used, s, &l.tickCPU)
	// Ballast is charged to the cgroup as its resident bytes, but no more
	// than the sizes asked of the holders: the resident pages of their
	// binary (11 MiB each) are shared, and charged once.
	room := cgroupRoom(limits, min(used.Memory, l.applied.Memory), used.MemoryHolders, l.cfg.Chunk, s)
	next := l.planned
	l.noteDisk(s.DiskErr)
	var real byResource[float64]
	for i, r := range collector.Resources {
		c := &l.control[i]
		total := s.Usage(r)
		real[i] = max(0, total-held[i])
		if r == collector.Disk && s.DiskErr != nil {
			// No figures, or another filesystem's: nothing to average,
			// and no fill to hold until the disk is back.
			next.Disk = 0
			continue
		}
		if err := l.cfg.Averages.update(r, s.Time, total); err != nil {
			l.cfg.Logger.Warn("updating the average", "resource", r, "err", err)
		}
		limit, by := l.limit(r, s)
		c.setpoint = l.setpoint(r, s.Time, limit)
		now := ratioOf(r, l.planned, s)
		d := laws[r](inputs{
			setpoint: c.setpoint, limit: limit, reserved: by == byReserve,
			real: real[i], sinceBoot: s.CPUSpan > 2*l.cfg.Interval,
			smooth: c.smooth, started: c.started, interval: l.cfg.Interval,
			held: now, step: stepOf(r, s), heldOff: l.holdOff.holds(s.Time),
		})
		c.smooth, c.started = d.smooth, d.started
		d = d.within(room[i], now, r == collector.Memory)
		level := real[i]
		if c.started {
			level = c.smooth
		}
		reach, reachBy := limit, by
		if level+room[i] < reach {
			reach, reachBy = level+room[i], byCgroup
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
	}
	if next != l.planned {
		l.cfg.Logger.Info("holder load planned", "cpu", round(next.CPU), "memory_bytes", next.Memory, "disk_bytes", next.Disk,
			"was_cpu", round(l.planned.CPU), "was_memory_bytes", l.planned.Memory, "was_disk_bytes", l.planned.Disk)
		l.planned = next
	}
	if l.cfg.Holders != nil {
		l.growCap = Load{Memory: roundUp(used.Memory, l.cfg.Chunk) + maxStep, Disk: used.Disk + maxStep}
	} else {
		l.growCap = Load{Memory: math.MaxInt64, Disk: math.MaxInt64}
	}
	// The duty gives way to real CPU usage as it is, not as the plan
	// follows it.
	l.decideApplied(s.Time, *real.of(collector.CPU))
	if l.cfg.Holders == nil {
		// A dry run shows what it would hold after this tick.
		used = wouldHold(l.applied, l.cfg.Chunk)
		held = sharesOf(l.applied, s)
	}
	return l.state(s, used, held)
}

// clockStepped logs and counts a step of the wall clock by `by`, and has
// the averages go on from the new time. (The memory hold-off needs
// nothing: its times carry the monotonic reading a step does not move.) It
// runs under mu.
func (l *Loop) clockStepped(by time.Duration) {
	l.clockSteps++
	direction := "forward"
	if by < 0 {
		direction = "back"
	}
	l.cfg.Logger.Warn("wall clock stepped", "by", by.Abs(), "direction", direction)
	l.cfg.Averages.clockStepped(by)
}

// state is what the exporter shows after a tick: the sample, and per
// resource the average, what the loop decided and what the holders take
// (used, and held as shares). It runs under mu.
func (l *Loop) state(s collector.Sample, used HolderUsage, held byResource[float64]) *collector.State {
	state := &collector.State{
		Sample:        s,
		Spec:          l.cfg.Spec.Name,
		Ceiling:       l.cfg.Ceiling,
		MemoryReserve: l.cfg.MemoryReserve,
		DiskReserve:   l.cfg.DiskReserve,
		Interval:      l.cfg.Interval,
		SaveFailures:  l.saveFailures,
		ClockSteps:    l.clockSteps,
		DiskLosses:    l.diskLosses,
		Resources:     make(map[collector.Resource]collector.ResourceState, len(collector.Resources)),
	}
	for i, r := range collector.Resources {
		o := l.cfg.Averages.objective(r)
		setpoint := l.control[i].setpoint
		if r == collector.CPU && !l.burning(s.Time) {
			setpoint = 0
		}
		rs := collector.ResourceState{
			Statistic:   o.Statistic(),
			Window:      o.Window,
			Audit:       l.cfg.Averages.Value(r),
			Average:     l.cfg.Averages.Value(r),
			History:     l.cfg.Averages.History(r),
			Target:      l.cfg.Targets[r],
			Setpoint:    setpoint,
			Holders:     used.count(r),
			HolderUsage: held[i],
			HolderBytes: used.bytes(r),
			Releases:    l.control[i].releases,
			Failures:    used.failures(r),
			Shortfall:   l.control[i].shortfall,
			Refusals:    used.refusals(r),
		}
		if p := l.cfg.Averages.periods[r]; p != nil {
			rs.Period = o.Period
			rs.Audit, rs.Passing, rs.Needed = p.audit(p.number(s.Time)-1, o.Quantile, l.cfg.Targets[r])
		}
		state.Resources[r] = rs
	}
	memory := state.Resources[collector.Memory]
	memory.HoldOff = l.holdOff.left(s.Time)
	state.Resources[collector.Memory] = memory
	return state
}

// Watch gives holder load back between ticks, every `every` until ctx
// ends: memory ballast, in whole chunks, as soon as MemAvailable falls
// under its reserve; disk fill as soon as free space does; the CPU duty as
// soon as real CPU work rises into the burner's room, and back when it
// ends. It looks only while something is held, and reads only what is:
// MemAvailable while ballast is, the disk while fill is, the CPU while the
// burner runs. With nothing held it sleeps until the next burst is due or
// a tick plans load. read must be a reader of its own: reading the CPU
// moves its baseline.
func (l *Loop) Watch(ctx context.Context, read func(now time.Time, parts collector.Parts) (collector.Sample, error), every time.Duration) {
	l.mu.Lock()
	l.planning = make(chan struct{}, 1)
	l.mu.Unlock()
	timer := time.NewTimer(every)
	defer timer.Stop()
	var w watch
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.planning:
		case now := <-timer.C:
			parts := l.watched(now)
			s := collector.Sample{Time: now}
			var err error
			if parts != 0 {
				s, err = read(now, parts)
				if err != nil {
					l.cfg.Logger.Debug("watching the host", "err", err)
				}
			}
			if err == nil {
				l.giveWay(s, parts, &w, every)
			}
		}
		if next := l.nextLook(time.Now(), every); next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
	}
}

// nextLook is when the watcher looks next after now: in `every` while
// anything is held or planned to be but CPU bursts; at the next burst's
// start when only bursts are planned; never (zero) when nothing is, until
// a tick plans load.
func (l *Loop) nextLook(now time.Time, every time.Duration) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.applied != (Load{}) || l.planned.Memory > 0 || l.planned.Disk > 0 || l.planned.CPU > 0 && l.burning(now) {
		return now.Add(every)
	}
	// Only a burst after the current period is still to come.
	if p := l.cfg.Averages.periods[collector.CPU]; l.planned.CPU > 0 && p.sched.decided > p.number(now) && p.sched.burns(p.sched.decided) {
		return p.start(p.sched.decided).Add(-burstLead)
	}
	return time.Time{}
}

// watched is what the watcher reads at now: the parts that holders hold.
func (l *Loop) watched(now time.Time) collector.Parts {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts collector.Parts
	if l.planned.CPU > 0 && l.burning(now) {
		parts |= collector.CPUPart
	}
	if l.planned.Memory > 0 {
		parts |= collector.MemoryPart
	}
	if l.planned.Disk > 0 {
		parts |= collector.DiskPart
	}
	return parts
}

// watch is what Watch remembers between reads.
type watch struct {
	cpu cpuClock
	// released is the ballast given back at releasedAt and just before,
	// when MemAvailable read availAt: the kernel folds its counters into
	// MemAvailable about once a second, and until a release shows, the
	// next reads must not release again for the same shortfall.
	released   int64
	releasedAt time.Time
	availAt    int64
	// shown is the most MemAvailable has risen above availAt since: that
	// much of the release has shown, whatever real work took after.
	shown int64
	// realCPU is real CPU usage averaged over half a second: enough to
	// ride over one odd quarter-second read, short enough that the load
	// is back within a couple of seconds after real work ends. started
	// tells it has a value: not before the CPU's first read over a
	// quarter second, and not again until then after the burner stopped.
	realCPU float64
	started bool
}

// fastSmoothing is the time constant of Watch's real CPU usage.
const fastSmoothing = 500 * time.Millisecond

// releaseShows is how long MemAvailable may take to show ballast given
// back: the stopped holder exits, the kernel frees its pages, and folds its
// per-CPU counters (vm.stat_interval, a second).
const releaseShows = 2 * time.Second

// giveWay is one look of Watch, with s holding the parts it read. It asks
// the holders for nothing but their CPU time, which never waits for a
// holder or a tick.
func (l *Loop) giveWay(s collector.Sample, parts collector.Parts, w *watch, every time.Duration) {
	var used HolderUsage
	if l.cfg.Holders != nil && parts&collector.CPUPart != 0 {
		var err error
		used.CPUTime, err = l.cfg.Holders.CPUTime()
		if err != nil {
			l.cfg.Logger.Debug("measuring the holders' CPU time", "err", err)
		}
	}
	l.mu.Lock()
	if parts&collector.MemoryPart != 0 {
		l.releaseMemory(s, w)
	}
	if avail := int64(s.DiskAvailable); parts&collector.DiskPart != 0 && s.DiskErr == nil && avail < l.cfg.DiskReserve && l.planned.Disk > 0 {
		was := l.planned.Disk
		l.planned.Disk = max(0, was-(l.cfg.DiskReserve-avail))
		l.control.of(collector.Disk).releases[collector.ReasonReserve]++
		l.cfg.Logger.Info("disk fill released", "reason", "reserve", "disk_available_bytes", avail,
			"reserve_bytes", l.cfg.DiskReserve, "disk_bytes", l.planned.Disk, "was_disk_bytes", was)
	}
	switch {
	case parts&collector.CPUPart == 0:
		// The burner is stopped: when it starts again, real CPU usage is
		// measured afresh.
		w.realCPU, w.started = 0, false
	case s.CPUSpan <= 2*every: // not the first read in a while, or since boot
		held := l.shares(used, s, &w.cpu)
		real := max(0, s.CPU-*held.of(collector.CPU))
		w.realCPU = smoothOver(w.realCPU, real, !w.started, every, fastSmoothing)
		w.started = true
	default:
		l.shares(used, s, &w.cpu) // the holders' CPU clock starts here
	}
	l.decideApplied(s.Time, w.realCPU)
	l.mu.Unlock()
	l.apply(false)
}

// releaseMemory gives back whole chunks of ballast while MemAvailable is
// under its reserve, and holds memory down for a while after.
func (l *Loop) releaseMemory(s collector.Sample, w *watch) {
	avail := int64(s.MemoryAvailable)
	w.shown = max(w.shown, avail-w.availAt)
	unseen := max(0, w.released-w.shown) // released, not yet in MemAvailable
	if s.Time.Sub(w.releasedAt) > releaseShows {
		unseen = 0
	}
	need := l.cfg.MemoryReserve - avail - unseen
	if need <= 0 || l.planned.Memory == 0 {
		return
	}
	was := l.planned.Memory
	l.planned.Memory = afterRelease(was, l.cfg.Chunk, need)
	w.released, w.releasedAt, w.availAt, w.shown = unseen+was-l.planned.Memory, s.Time, avail, 0
	l.control.of(collector.Memory).releases[collector.ReasonPressure]++
	l.holdOff = l.holdOff.after(s.Time)
	l.cfg.Logger.Info("memory ballast released", "reason", "pressure", "memory_available_bytes", avail,
		"reserve_bytes", l.cfg.MemoryReserve, "memory_bytes", l.planned.Memory, "was_memory_bytes", was,
		"hold_off", l.holdOff.length)
}

// decideApplied sets what the holders are to hold at now: the planned load,
// with the CPU duty given way to real CPU usage realCPU, and none between
// bursts, and growth capped. It runs under mu.
func (l *Loop) decideApplied(now time.Time, realCPU float64) {
	c := l.control.of(collector.CPU)
	plan, setpoint := l.planned.CPU, c.setpoint
	if !l.burning(now) {
		plan, setpoint = 0, 0
	}
	next := Load{
		CPU:    cpuDuty(plan, setpoint, realCPU, c.smooth),
		Memory: min(l.planned.Memory, l.growCap.Memory),
		Disk:   min(l.planned.Disk, l.growCap.Disk),
	}
	if next.CPU != l.applied.CPU && next.Memory == l.applied.Memory && next.Disk == l.applied.Disk {
		l.cfg.Logger.Debug("cpu duty", "duty", round(next.CPU), "was", round(l.applied.CPU), "real_cpu", round(realCPU))
	}
	l.applied = next
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

// shares is the share of each resource the holders take, from their usage.
// A dry run holds nothing.
func (l *Loop) shares(used HolderUsage, s collector.Sample, clock *cpuClock) byResource[float64] {
	if l.cfg.Holders == nil {
		return byResource[float64]{}
	}
	return sharesOf(Load{CPU: clock.share(used.CPUTime, s.Time, s.CPUs), Memory: used.Memory, Disk: used.Disk}, s)
}

// sharesOf is load's share of each resource on the sampled host.
func sharesOf(load Load, s collector.Sample) byResource[float64] {
	var shares byResource[float64]
	for i, r := range collector.Resources {
		shares[i] = ratioOf(r, load, s)
	}
	return shares
}

// byResource is one T for each resource, in the order of
// collector.Resources.
type byResource[T any] [len(collector.Resources)]T

// of is r's T.
func (b *byResource[T]) of(r collector.Resource) *T {
	return &b[slices.Index(collector.Resources[:], r)]
}

// setpoint is the total usage of r to aim at, as of now, within limit: for
// the mean, what brings the average to target; for a percentile, the
// target with a lift, which CPU holders hold through bursts alone (it
// decides the next burst here) and memory and disk holders always.
func (l *Loop) setpoint(r collector.Resource, now time.Time, limit float64) float64 {
	o, target := l.cfg.Averages.objective(r), l.cfg.Targets[r]
	if o.Quantile == 0 {
		return l.cfg.Averages.Setpoint(r, target, limit)
	}
	if r == collector.CPU {
		p := l.cfg.Averages.periods[r]
		n := len(p.means)
		p.sched.advance(p.number(now), func(next int64, current bool) bool {
			return p.burstNext(next, target, atLeast(n, o.Quantile), planned(n, o.Quantile), current)
		})
	}
	return min(target+lift, limit)
}

// burning tells whether the CPU holds its setpoint at now: always for the
// mean, through bursts (from burstLead before each) for a percentile.
func (l *Loop) burning(now time.Time) bool {
	p := l.cfg.Averages.periods[collector.CPU]
	if p == nil {
		return true
	}
	return p.sched.burns(p.number(now)) || p.sched.burns(p.number(now.Add(burstLead)))
}

// bound is what sets a limit.
type bound int

const (
	byCeiling bound = iota
	byReserve
	byCgroup
)

// limit is the highest total usage holders may bring r to, and what sets
// it: the ceiling, or less where a reserve of MemAvailable or free space
// says so. The daemon's cgroup bounds the holders' own load instead
// (cgroupRoom, decision.within).
func (l *Loop) limit(r collector.Resource, s collector.Sample) (float64, bound) {
	limit, by := l.cfg.Ceiling, byCeiling
	reserve := 1.0
	switch r {
	case collector.Memory:
		reserve = 1 - collector.Ratio(l.cfg.MemoryReserve, s.MemoryTotal)
	case collector.Disk:
		reserve = 1 - collector.Ratio(l.cfg.DiskReserve, s.DiskUsable())
	}
	if reserve < limit {
		limit, by = reserve, byReserve
	}
	return limit, by
}

// Headroom planned within the daemon's cgroup: ballast leaves a tenth of
// the memory limit (at least memoryHeadroom) to the daemon and to what the
// cgroup's other processes may add, and the burner a tenth of the quota to
// the daemon's own CPU. Each memory holder is charged holderOverhead
// besides its ballast: its Go runtime and page tables, measured at 3 MiB.
const (
	memoryHeadroom int64 = 32 << 20
	holderOverhead int64 = 4 << 20
	cgroupHeadroom       = 0.1
)

// cgroupRoom is the share of each resource that the daemon's cgroup
// leaves its holders, +Inf where it sets no limit. Memory: the limit,
// less what is charged to the cgroup besides the ballast and the overhead
// of the holders running, less headroom, less the overhead of the holders
// of chunk bytes that hold the rest; holders are children in the cgroup, so
// ballast past this is OOM-killed. CPU: the quota, less headroom, as a
// share of the machine; a burner past it is throttled.
func cgroupRoom(limits cgroup.Limits, ballast int64, holders int, chunk int64, s collector.Sample) byResource[float64] {
	var room byResource[float64]
	for i := range room {
		room[i] = math.Inf(1)
	}
	if m := limits.Memory; m.Limit > 0 && s.MemoryTotal > 0 {
		others := max(0, m.Usage-ballast-int64(holders)*holderOverhead)
		headroom := max(memoryHeadroom, int64(float64(m.Limit)*cgroupHeadroom))
		free := max(0, m.Limit-others-headroom)
		n := (free + chunk + holderOverhead - 1) / (chunk + holderOverhead)
		*room.of(collector.Memory) = collector.Ratio(max(0, free-n*holderOverhead), s.MemoryTotal)
	}
	if limits.CPUs > 0 && s.CPUs > 0 && limits.CPUs < float64(s.CPUs) {
		*room.of(collector.CPU) = limits.CPUs * (1 - cgroupHeadroom) / float64(s.CPUs)
	}
	return room
}

// name names the bound of r's limit in a log line.
func (b bound) name(r collector.Resource) string {
	switch {
	case b == byCeiling:
		return "the ceiling"
	case b == byReserve:
		return "the reserve"
	case r == collector.CPU:
		return "the cgroup's CPU quota"
	}
	return "the cgroup's memory limit"
}

// warnUnreachable says once, when it starts and when it ends, that the
// most holders may bring r to keeps its target out of reach, by how much
// and what sets it: the ceiling or a reserve even with no real usage at
// all, the daemon's cgroup with real usage at its few-minute level. A target kept out of reach is in reach again
// only a margin above the edge, so that real usage moving about it does not
// say so every tick.
func (l *Loop) warnUnreachable(r collector.Resource, c *control, target, limit float64, by bound) {
	edge := target + margin
	if c.unreachable {
		edge += margin
	}
	unreachable := limit < edge
	c.shortfall = 0
	if unreachable {
		// A reserve larger than the disk puts the limit under 0.
		c.shortfall = clamp(target-limit, 0, target)
	}
	if unreachable == c.unreachable {
		return
	}
	c.unreachable = unreachable
	if unreachable {
		l.cfg.Logger.Warn("target cannot be met", "resource", r, "target", round(target), "limit", round(limit), "short_by", round(c.shortfall), "by", by.name(r))
	} else {
		l.cfg.Logger.Info("target can be met again", "resource", r, "target", round(target))
	}
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

// smooth folds real usage into its few-minute average; the first sample
// starts it.
func smooth(prev, real float64, first bool, interval time.Duration) float64 {
	return smoothOver(prev, real, first, interval, smoothing)
}

// smoothOver is one step of an exponential average with time constant tau,
// for a sample that stands for interval.
func smoothOver(prev, x float64, first bool, interval, tau time.Duration) float64 {
	if first {
		return x
	}
	return prev + (x-prev)*(1-math.Exp(-interval.Seconds()/tau.Seconds()))
}

// ratioOf is load's share of r on the sampled host.
func ratioOf(r collector.Resource, load Load, s collector.Sample) float64 {
	switch r {
	case collector.CPU:
		return load.CPU
	case collector.Memory:
		return collector.Ratio(load.Memory, s.MemoryTotal)
	}
	return collector.Ratio(load.Disk, s.DiskUsable())
}

// withRatio is load with r's share set to x.
func withRatio(load Load, r collector.Resource, x float64, s collector.Sample) Load {
	switch r {
	case collector.CPU:
		load.CPU = x
	case collector.Memory:
		load.Memory = int64(x * float64(s.MemoryTotal))
	case collector.Disk:
		load.Disk = int64(x * float64(s.DiskUsable()))
	}
	return load
}

// stepOf is the most r's holders may grow in one tick, as a share.
func stepOf(r collector.Resource, s collector.Sample) float64 {
	switch r {
	case collector.Memory:
		return collector.Ratio(maxStep, s.MemoryTotal)
	case collector.Disk:
		return collector.Ratio(maxStep, s.DiskUsable())
	}
	return 1
}

// roundUp is n rounded up to whole units.
func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// round keeps logs readable: four decimals of a ratio.
func round(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// wouldHold is what a dry run shows as held: the load it would apply, in
// the holders it would take (memory in chunks, disk in 1 GiB files).
func wouldHold(l Load, chunk int64) HolderUsage {
	pieces := func(b, size int64) int { return int((b + size - 1) / size) }
	u := HolderUsage{Memory: l.Memory, Disk: l.Disk, MemoryHolders: pieces(l.Memory, chunk), DiskFiles: pieces(l.Disk, maxStep)}
	if l.CPU > 0 {
		u.CPUHolders = 1
	}
	return u
}

func (u HolderUsage) count(r collector.Resource) int {
	switch r {
	case collector.CPU:
		return u.CPUHolders
	case collector.Memory:
		return u.MemoryHolders
	}
	return u.DiskFiles
}

func (u HolderUsage) failures(r collector.Resource) uint64 {
	switch r {
	case collector.CPU:
		return u.CPUFailures
	case collector.Memory:
		return u.MemoryFailures
	}
	return u.DiskFailures
}

func (u HolderUsage) refusals(r collector.Resource) uint64 {
	switch r {
	case collector.CPU:
		return u.CPURefusals
	case collector.Memory:
		return u.MemoryRefusals
	}
	return 0
}

func (u HolderUsage) bytes(r collector.Resource) uint64 {
	switch r {
	case collector.Memory:
		return uint64(u.Memory)
	case collector.Disk:
		return uint64(u.Disk)
	}
	return 0
}

// cpuClock turns the holders' cumulative CPU time into a share of the
// machine since the previous reading.
type cpuClock struct {
	time time.Duration
	at   time.Time
}

func (c *cpuClock) share(cpuTime time.Duration, now time.Time, cpus int) float64 {
	prev := *c
	*c = cpuClock{cpuTime, now}
	elapsed := now.Sub(prev.at)
	if prev.at.IsZero() || elapsed <= 0 || cpuTime < prev.time || cpus == 0 {
		return 0
	}
	return min(1, (cpuTime-prev.time).Seconds()/(elapsed.Seconds()*float64(cpus)))
}

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
