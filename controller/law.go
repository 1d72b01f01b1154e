package controller

import (
	"math"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// The control law. All quantities are ratios of the resource, 0..1.
const (
	// margin keeps the average half a point above its target, so that noise
	// in real usage does not dip it under.
	margin = 0.005
	// horizon is how far ahead the setpoint plans, at most. A 30-day
	// average moves slowly, so planning for the next tick alone would turn
	// a tiny error in it into a swing between zero and the ceiling; over 12
	// hours the gain is about 30, and a host far behind still runs at the
	// ceiling until it is close, so it reaches target nearly as soon as
	// the ceiling alone would. A young average moves fast, so the plan
	// looks no further ahead than the history it holds, and no less than
	// minHorizon: a fresh install is on target within minutes.
	horizon    = 12 * time.Hour
	minHorizon = 15 * time.Minute
	// band is the smallest change of holder load worth making: smaller ones
	// wait until the average's feedback makes them larger, so holders do
	// not flap on noise.
	band = 0.01
)

// setpoint is the constant total usage that, held for h, brings an average
// of value avg and weight to target+margin, within [0, limit]. A fresh
// average (weight 0) gets target+margin itself; one far below gets the
// limit; one above gets less, down to 0, so the average decays to target
// with the least load.
func setpoint(avg, weight, target, limit float64, h, tau time.Duration) float64 {
	keep := math.Exp(-h.Seconds() / tau.Seconds()) // what is left of today's history then
	s := ((target+margin)*(weight*keep+1-keep) - avg*weight*keep) / (1 - keep)
	return clamp(s, 0, limit)
}

// holderLoad is the share of the resource holders should take next, given
// the setpoint, real usage (total minus holders) smoothed over a few minutes
// and as of now, what holders take now, the limit total usage may not pass
// (ceiling or reserve), and the most holders may grow in one step. Real
// usage is served first: holders fill the gap between its smoothed level and
// the setpoint, and go to zero as soon as real usage alone meets it.
func holderLoad(setpoint, smooth, real, now, limit, maxGrow float64) float64 {
	want := clamp(setpoint-smooth, 0, limit-real)
	switch {
	case want == 0 || real >= setpoint:
		return 0
	case now > limit-real:
		return want // over the limit: shrink at once, whatever the band
	case math.Abs(want-now) < band:
		return now
	case want > now:
		return min(want, now+maxGrow)
	}
	return want
}

// within caps the holder load decided by room, the share the daemon's
// cgroup leaves the holders, given the load they hold now: a load over room
// comes down to it (memory ballast is short: whole chunks go, as when real
// usage takes their room); one that room would raise by less than half of
// room stays as it is, so that room moving with what else the cgroup is
// charged does not move holders every tick.
func (d decision) within(room, now float64, memory bool) decision {
	switch {
	case d.load <= room:
	case now > room:
		d.load, d.short = room, memory
		if !d.released {
			d.release, d.released = ReasonRealUsage, true
		}
	case room-now < room/2:
		d.load = now
	default:
		d.load = room
	}
	return d
}

// giveWay is how far real CPU usage must rise above its few-minute level
// before the burner's duty gives way at once; smaller wobbles are noise, and
// SCHED_IDLE already lets real work win every contended moment.
const giveWay = 0.05

// cpuDuty is the CPU holder's duty given the tick's plan, the setpoint,
// real CPU usage of the last moments, and its few-minute level: the plan,
// or less while real usage stands high above its level or meets the
// setpoint by itself.
func cpuDuty(plan, setpoint, real, smooth float64) float64 {
	if real >= setpoint || real > smooth+giveWay {
		return clamp(setpoint-real, 0, plan)
	}
	return plan
}

// inputs is what a tick knows of one resource for its decision, as shares
// of it.
type inputs struct {
	// setpoint is the total usage to aim at; limit is the most total usage
	// holders may bring about, set by a reserve (reserved) or the ceiling.
	setpoint, limit float64
	reserved        bool
	// real is real usage (total less holders) now. sinceBoot tells that
	// the CPU figure stands for much more than an interval (the first one,
	// since boot), so it says nothing of now.
	real      float64
	sinceBoot bool
	// smooth is real usage over the last few minutes, before this tick;
	// started tells it has a first value. interval is what a tick stands
	// for.
	smooth   float64
	started  bool
	interval time.Duration
	// held is the holder load planned now, step the most it may grow in
	// one tick.
	held, step float64
	// heldOff tells that memory ballast may not grow: it gave way lately.
	heldOff bool
}

// decision is what a tick decides for one resource.
type decision struct {
	// smooth and started are real usage's few-minute level after the tick.
	smooth  float64
	started bool
	// load is the holder load to plan.
	load float64
	// release is why load gives back before the average says so, when
	// released.
	release  Reason
	released bool
	// short tells that memory ballast is over its limit: whole chunks go
	// now, as between ticks, so that no new holder starts while memory is
	// short; holdOff that ballast is held off as after a release between
	// ticks (the tick merely saw the shortage first).
	short, holdOff bool
}

// laws is each resource's decision at a tick.
var laws = map[host.Resource]func(inputs) decision{
	host.CPU:    decideCPU,
	host.Memory: decideMemory,
	host.Disk:   decideDisk,
}

// decideCPU is the CPU decision. The plan follows smoothed usage alone: a
// burst of real CPU work counts in it only up to the give-way threshold and
// lowers the duty instead (cpuDuty), so the plan is there again the moment
// the burst ends; work that stays is learned within minutes all the same. A
// figure since boot neither plans nor holds back CPU holders: they wait for
// the next.
func decideCPU(in inputs) decision {
	level := in.real
	if in.started {
		level = min(in.real, in.smooth+giveWay)
	}
	d := followed(in, level, !in.sinceBoot)
	return d.planned(in, d.smooth)
}

// decideMemory is the memory decision: ballast does not grow while held
// off, and over its limit it is short.
func decideMemory(in inputs) decision {
	d := followed(in, in.real, true).planned(in, in.real)
	if in.heldOff && d.load > in.held {
		d.load = in.held
	}
	d.short = d.load < in.held && in.held > in.limit-in.real
	d.holdOff = d.short && in.reserved
	return d
}

// decideDisk is the disk decision: holderLoad, nothing more.
func decideDisk(in inputs) decision {
	return followed(in, in.real, true).planned(in, in.real)
}

// followed is the decision that keeps the load held, with level folded
// into real usage's few-minute level when it is a figure of now (current).
func followed(in inputs, level float64, current bool) decision {
	d := decision{smooth: in.smooth, started: in.started, load: in.held}
	if current {
		d.smooth, d.started = smooth(in.smooth, level, !in.started, in.interval), true
	}
	return d
}

// smoothing is the time constant of the real usage holders follow.
const smoothing = 5 * time.Minute

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

// planned is d with the holder load that fills the gap real usage leaves
// under the setpoint, once smoothed real usage has a value, and the reason
// when that load gives back early.
func (d decision) planned(in inputs, real float64) decision {
	if d.started {
		d.load = holderLoad(in.setpoint, d.smooth, real, in.held, in.limit, in.step)
	}
	if d.load < in.held {
		d.release, d.released = releaseReason(in.setpoint, real, in.held, in.limit, in.reserved)
	}
	return d
}

// releaseReason tells why holders shrink, when they give load back before
// the average says so: a reserve (or the ceiling) was reached, or real usage
// alone meets the setpoint.
func releaseReason(setpoint, real, now, limit float64, reserved bool) (Reason, bool) {
	switch {
	case now > limit-real && reserved:
		return ReasonReserve, true
	case now > limit-real || real >= setpoint:
		return ReasonRealUsage, true
	}
	return 0, false
}

// afterRelease is what stays of total bytes of ballast, held in chunks
// (full ones first, then one partial), once at least need bytes are given
// back: whole holders are stopped, partial first, so that memory pressure
// never starts a new one.
func afterRelease(total, chunk, need int64) int64 {
	partial := total % chunk
	if need <= partial {
		return total - partial
	}
	whole := (need - partial + chunk - 1) / chunk
	return max(0, total-partial-whole*chunk)
}

// clamp is x within [lo, hi]; hi below lo gives lo.
func clamp(x, lo, hi float64) float64 {
	return max(lo, min(x, hi))
}

// DefaultReserves are the reserves used where none is given: holders leave
// 15% of memory (at least 512 MiB) available to real work, and 10% of the
// disk (at least 1 GiB) free. The memory reserve is above the default 90%
// ceiling's 10% so that a burst of real work has room before the kernel
// reclaims anything.
func DefaultReserves(memoryTotal, diskSize uint64) (memory, disk int64) {
	return max(512<<20, int64(memoryTotal)*15/100), max(1<<30, int64(diskSize)/10)
}

// A pressure release holds memory ballast down for a while, so that it does
// not grow straight back into the workload that made it give way. A release
// within an hour of the last hold-off's end doubles the next one: releases
// that repeat mean the workload needs the room, and each round costs it a
// stall.
const (
	holdOffFirst  = 5 * time.Minute
	holdOffMax    = 4 * time.Hour
	holdOffMemory = time.Hour
)

// holdOff is the time memory ballast may not grow.
type holdOff struct {
	until  time.Time
	length time.Duration
}

// after is the hold-off after a release at now: a release during the
// hold-off extends it by its length, one within holdOffMemory after it
// doubles it, a later one starts afresh.
func (h holdOff) after(now time.Time) holdOff {
	switch {
	case h.length == 0 || now.Sub(h.until) > holdOffMemory:
		h.length = holdOffFirst
	case now.After(h.until):
		h.length = min(2*h.length, holdOffMax)
	}
	h.until = now.Add(h.length)
	return h
}

// holds tells whether memory may not grow at now.
func (h holdOff) holds(now time.Time) bool { return now.Before(h.until) }

// left is how long memory may not grow after now.
func (h holdOff) left(now time.Time) time.Duration { return max(0, h.until.Sub(now)) }

// lift is how far above its target a percentile objective holds usage: the
// CPU through a burst, memory and disk always. The burner holds its duty to
// within about a point, and real usage moves under it; two points keep a
// period's mean at or above the target.
const lift = 0.02
