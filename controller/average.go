// Package controller keeps the time-decayed averages of the host's usage,
// picks the targets from the host's spec, and decides the holder load that
// brings each average to its target.
package controller

import (
	"fmt"
	"math"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// Averages keeps what the auditor computes of each resource: one
// exponentially time-decayed, bias-corrected average of usage, in O(1)
// state, and for a percentile objective the means of the window's audit
// periods. It is not safe for concurrent use: the control loop owns it.
//
// Each sample stands for the interval since the previous one, as if usage had
// been constant over it. History decays with the time constant tau = window/2,
// which gives the average the same mean sample age as a plain mean over the
// window. An interval longer than maxSpan (the exporter was down) still decays
// the history, but only maxSpan of it is counted as observed: the average does
// not invent usage for time nobody saw.
type Averages struct {
	maxSpan    time.Duration
	objectives map[host.Resource]Objective
	avg        map[host.Resource]average
	// periods are the audit periods of each percentile objective.
	periods map[host.Resource]*periods
}

// average is the state of one resource's average.
type average struct {
	// value is the bias-corrected average, 0..1.
	value float64
	// weight is the total weight of the observed history, 0..1: the share of
	// the decay kernel that real samples cover, and the bias correction's
	// denominator.
	weight float64
	// last is the time of the last sample; zero before the first.
	last time.Time
}

// NewAverages returns empty averages for every resource in
// host.Resources, each the mean over window (time constant window/2),
// counting at most maxSpan of any interval between two samples as observed
// (the daemon passes twice the sampling interval). It panics unless both are
// positive: the CLI validates its flags before.
func NewAverages(window, maxSpan time.Duration) *Averages {
	if window <= 0 || maxSpan <= 0 {
		panic(fmt.Sprintf("controller.NewAverages(%v, %v): window and maxSpan must be positive", window, maxSpan))
	}
	a := &Averages{
		maxSpan:    maxSpan,
		objectives: make(map[host.Resource]Objective, len(host.Resources)),
		avg:        freshAverages(),
		periods:    map[host.Resource]*periods{},
	}
	for _, r := range host.Resources {
		a.objectives[r] = Objective{Window: window}
	}
	return a
}

// SetObjective makes o r's objective, with fresh audit periods for a
// percentile; call it before Load. It panics on an objective the CLI would
// have refused (Objective.valid).
func (a *Averages) SetObjective(r host.Resource, o Objective) {
	if !o.valid() {
		panic(fmt.Sprintf("controller.SetObjective(%s, %+v): not a valid objective", r, o))
	}
	a.objectives[r] = o
	delete(a.periods, r)
	if o.Quantile != 0 {
		a.periods[r] = newSubPeriods(o.Period, o.Sub, o.Window)
	}
}

// objective is r's objective.
func (a *Averages) objective(r host.Resource) Objective { return a.objectives[r] }

// tau is the time constant of r's average, in seconds.
func (a *Averages) tau(r host.Resource) float64 { return a.objectives[r].Window.Seconds() / 2 }

// freshAverages returns an empty average for every resource.
func freshAverages() map[host.Resource]average {
	avgs := make(map[host.Resource]average, len(host.Resources))
	for _, r := range host.Resources {
		avgs[r] = average{}
	}
	return avgs
}

// update folds the usage ratio x of r, sampled at now, into r's average. x is
// clamped to 0..1. A NaN or infinite x, or an unknown resource, is rejected
// with an error and leaves the average untouched, so the next sample's
// interval covers the rejected one (counted up to maxSpan).
//
// A sample at or before the previous one (a duplicate, or the clock stepped
// back unseen) observes no time: it neither decays nor adds weight, and only
// moves the last sample time, so that the clock's new present is where the
// next interval starts.
//
// Only now's wall clock reading counts, as the auditor's clock does. Kept,
// the monotonic reading would measure some spans and the wall clock others
// (period boundaries carry none), and a step forward would fill the periods
// it skips with x. A step is the loop's to see (clockStepped).
func (a *Averages) update(r host.Resource, now time.Time, x float64) error {
	now = now.Round(0)
	avg, ok := a.avg[r]
	if !ok {
		return fmt.Errorf("updating average: unknown resource %q", r)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Errorf("updating %s average: usage %v is not a number", r, x)
	}
	x = clamp(x, 0, 1)
	if p := a.periods[r]; p != nil {
		p.observe(now, x, a.maxSpan)
	}

	// Only time after the last sample is observed. The first sample has no
	// interval behind it, a duplicate or a clock stepped back an empty one:
	// they get no weight, though a first sample still becomes the value.
	decay, w := 1.0, 0.0
	if dt := now.Sub(avg.last); !avg.last.IsZero() && dt > 0 {
		decay = math.Exp(-dt.Seconds() / a.tau(r))
		// Expm1 keeps w exact for spans far below tau (15 s against 15 d).
		w = -math.Expm1(-min(dt, a.maxSpan).Seconds() / a.tau(r))
	}
	// w <= 1-decay keeps the weight at most 1; min catches rounding past it.
	avg.weight = min(avg.weight*decay+w, 1)
	if avg.weight == 0 {
		avg.value = x
	} else {
		// The same as (value*weight*decay + x*w) / weight', written as a
		// step towards x so that x == value leaves value exactly as it is.
		avg.value = clamp(avg.value+(x-avg.value)*(w/avg.weight), 0, 1)
	}
	avg.last = now
	a.avg[r] = avg
	return nil
}

// clockStepped goes on after the wall clock stepped by `by` (forward when
// positive) since the last samples: each last sample time moves with the
// clock, so that the next sample stands for the time that really passed,
// neither a negative span nor the step, and the audit periods resume from
// the new time (periods.resume).
func (a *Averages) clockStepped(by time.Duration) {
	for r, avg := range a.avg {
		if !avg.last.IsZero() {
			avg.last = avg.last.Add(by)
			a.avg[r] = avg
		}
	}
	for _, p := range a.periods {
		p.resume(p.until.Add(by))
	}
}

// Value is r's average usage ratio, 0..1; 0 before its first sample.
func (a *Averages) Value(r host.Resource) float64 {
	return a.avg[r].value
}

// History is how much history r's average holds: the span of uninterrupted
// sampling, ending now, that would give it its weight. It grows as samples
// come in, shrinks across gaps, and is capped at the window.
func (a *Averages) History(r host.Resource) time.Duration {
	// Uninterrupted sampling for h gives the weight 1-exp(-h/tau). A weight
	// of 1 gives an infinite h, which the cap catches before it is converted.
	h := -a.tau(r) * math.Log1p(-a.avg[r].weight)
	if window := a.objectives[r].Window; h >= window.Seconds() {
		return window
	}
	return time.Duration(h * float64(time.Second))
}

// Setpoint is the total usage of r that, held for the next hours (as many
// as the average holds, up to 12), brings its average to target plus a small
// margin, within [0, limit].
func (a *Averages) Setpoint(r host.Resource, target, limit float64) float64 {
	avg := a.avg[r]
	h := min(horizon, max(a.History(r), minHorizon))
	return setpoint(avg.value, avg.weight, target, limit, h, time.Duration(a.tau(r)*float64(time.Second)))
}
