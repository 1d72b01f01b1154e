package controller

import (
	"context"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// Watch gives holder load back between ticks, every `every` until ctx
// ends: memory ballast, in whole chunks, as soon as MemAvailable falls
// under its reserve; disk fill as soon as free space does; the CPU duty as
// soon as real CPU work rises into the burner's room, and back when it
// ends. It looks only while something is held, and reads only what is:
// MemAvailable while ballast is, the disk while fill is, the CPU while the
// burner runs. With nothing held it sleeps until the next burst is due or
// a tick plans load. read must be a reader of its own: reading the CPU
// moves its baseline.
func (l *Loop) Watch(ctx context.Context, read func(now time.Time, parts host.Parts) (host.Sample, error), every time.Duration) {
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
			s := host.Sample{Time: now}
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
	if l.applied != (holder.Load{}) || l.planned.Memory > 0 || l.planned.Disk > 0 || l.planned.CPU > 0 && l.burning(now) {
		return now.Add(every)
	}
	// Only a burst after the current period is still to come.
	if p := l.cfg.Averages.periods[host.CPU]; l.planned.CPU > 0 && p != nil {
		return p.nextBurst(now)
	}
	return time.Time{}
}

// watched is what the watcher reads at now: the parts that holders hold.
func (l *Loop) watched(now time.Time) host.Parts {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts host.Parts
	if l.planned.CPU > 0 && l.burning(now) {
		parts |= host.CPUPart
	}
	if l.planned.Memory > 0 {
		parts |= host.MemoryPart
	}
	if l.planned.Disk > 0 {
		parts |= host.DiskPart
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
func (l *Loop) giveWay(s host.Sample, parts host.Parts, w *watch, every time.Duration) {
	var used holder.Held
	if l.cfg.Holders != nil && parts&host.CPUPart != 0 {
		var err error
		used.CPUTime, err = l.cfg.Holders.CPUTime()
		if err != nil {
			l.cfg.Logger.Debug("measuring the holders' CPU time", "err", err)
		}
	}
	l.mu.Lock()
	if parts&host.MemoryPart != 0 {
		l.releaseMemory(s, w)
	}
	if avail := int64(s.DiskAvailable); parts&host.DiskPart != 0 && s.DiskErr == nil && avail < l.cfg.DiskReserve && l.planned.Disk > 0 {
		was := l.planned.Disk
		l.planned.Disk = max(0, was-(l.cfg.DiskReserve-avail))
		l.control.Of(host.Disk).releases[ReasonReserve]++
		l.cfg.Logger.Info("disk fill released", "reason", "reserve", "disk_available_bytes", avail,
			"reserve_bytes", l.cfg.DiskReserve, "disk_bytes", l.planned.Disk, "was_disk_bytes", was)
	}
	switch {
	case parts&host.CPUPart == 0:
		// The burner is stopped: when it starts again, real CPU usage is
		// measured afresh.
		w.realCPU, w.started = 0, false
	case s.CPUSpan <= 2*every: // not the first read in a while, or since boot
		held := l.shares(used, s, &w.cpu)
		real := max(0, s.CPU-*held.Of(host.CPU))
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
func (l *Loop) releaseMemory(s host.Sample, w *watch) {
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
	l.control.Of(host.Memory).releases[ReasonPressure]++
	l.holdOff = l.holdOff.after(s.Time)
	l.cfg.Logger.Info("memory ballast released", "reason", "pressure", "memory_available_bytes", avail,
		"reserve_bytes", l.cfg.MemoryReserve, "memory_bytes", l.planned.Memory, "was_memory_bytes", was,
		"hold_off", l.holdOff.length)
}

// decideApplied sets what the holders are to hold at now: the planned load,
// with the CPU duty given way to real CPU usage realCPU, and none between
// bursts, and growth capped. It runs under mu.
func (l *Loop) decideApplied(now time.Time, realCPU float64) {
	c := l.control.Of(host.CPU)
	plan, setpoint := l.planned.CPU, c.setpoint
	if !l.burning(now) {
		plan, setpoint = 0, 0
	}
	next := holder.Load{
		CPU:    cpuDuty(plan, setpoint, realCPU, c.smooth),
		Memory: min(l.planned.Memory, l.growCap.Memory),
		Disk:   min(l.planned.Disk, l.growCap.Disk),
	}
	if next.CPU != l.applied.CPU && next.Memory == l.applied.Memory && next.Disk == l.applied.Disk {
		l.cfg.Logger.Debug("cpu duty", "duty", round(next.CPU), "was", round(l.applied.CPU), "real_cpu", round(realCPU))
	}
	l.applied = next
}
