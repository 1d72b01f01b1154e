package controller

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// steppedHost is an idle host whose CPU is the burner's alone: the target
// + lift through bursts, 0 between, for a p95 of 1-minute periods over an
// hour at 20%, sampled every 15 s of real time as the loop samples it. Its
// wall clock reads real time plus offset(tick). seen tells whether the
// loop sees a step (wallStep, against the monotonic clock) or not, as
// across a restart.
type steppedHost struct {
	offset func(tick int) time.Duration
	seen   bool

	// real is the host's usage in every real minute, as an auditor whose
	// clock is right sees it; burst tells the minutes burnt through.
	real  []float64
	burst []bool
	// quantile and maxMean are the controller's p95 and its highest period
	// mean over the window ending with each real minute, from its periods.
	quantile, maxMean []float64
}

const steppedTarget = 0.20

// run runs the host for minutes real minutes.
func (h *steppedHost) run(minutes int) {
	a := NewAverages(time.Hour, 30*time.Second)
	a.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute})
	p := a.periods[host.CPU]
	burning := false
	var prev time.Time
	for tick := 0; tick <= 4*minutes; tick++ {
		wall := minute.Add(time.Duration(tick)*15*time.Second + h.offset(tick))
		x := 0.0
		if burning {
			x = steppedTarget + lift
		}
		if tick > 0 {
			h.real[(tick-1)/4] += x / 4
			h.burst[(tick-1)/4] = burning
		}
		if by := wallStep(prev, wall, 15*time.Second); h.seen && by != 0 {
			a.clockStepped(by)
		}
		prev = wall
		if err := a.update(host.CPU, wall, x); err != nil {
			panic(err)
		}
		k := p.number(wall)
		p.planBurst(wall, steppedTarget, 0.95)
		burning = p.sched.burns(k)
		if tick > 0 && tick%4 == 0 {
			q, _, _ := p.audit(k-1, 0.95, steppedTarget)
			h.quantile = append(h.quantile, q)
			h.maxMean = append(h.maxMean, float64(slices.Max(p.window(k-1)))/meanScale)
		}
	}
}

func newSteppedHost(minutes int, seen bool, offset func(tick int) time.Duration) *steppedHost {
	h := &steppedHost{offset: offset, seen: seen, real: make([]float64, minutes), burst: make([]bool, minutes)}
	h.run(minutes)
	return h
}

func TestAClockStepNeitherStopsNorDoublesThePeriods(t *testing.T) {
	const (
		minutes = 360
		step    = 120 // the real minute the clock steps in
	)
	n := 60
	need := atLeast(n, 0.95)
	steady := newSteppedHost(minutes, true, func(int) time.Duration { return 0 })
	burnt := func(h *steppedHost, from int) int {
		c := 0
		for _, b := range h.burst[from : from+n] {
			if b {
				c++
			}
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		offset func(tick int) time.Duration
		// settled is the real minute from which the clock stands still.
		settled int
	}{
		{"a day forward, back 30 minutes later", func(tick int) time.Duration {
			if tick > 4*step && tick <= 4*(step+30) {
				return day
			}
			return 0
		}, step + 30},
		{"an hour back", stepAt(step, -time.Hour), step},
		{"two hours back, more than the window", stepAt(step, -2*time.Hour), step},
		{"a day forward", stepAt(step, day), step},
	} {
		for _, seen := range []bool{true, false} {
			name := tc.name + ", seen"
			if !seen {
				name = tc.name + ", unseen"
			}
			t.Run(name, func(t *testing.T) {
				h := newSteppedHost(minutes, seen, tc.offset)
				// The auditor's p95 of the trailing hour at the end of every
				// real minute, nearest rank and interpolated, the lower.
				audited := auditedAtDayEnds(h.real, minutes, n)
				for m := n; m < minutes; m++ {
					if audited[m-1] < steppedTarget {
						t.Errorf("minute %d: the auditor's p95 %.4f, under %.2f", m, audited[m-1], steppedTarget)
					}
				}
				for m, q := range h.quantile {
					if q > audited[m]+1e-9 {
						t.Errorf("minute %d: the controller's p95 %.4f is above the auditor's %.4f", m+1, q, audited[m])
					}
					if h.maxMean[m] > steppedTarget+lift+1e-4 {
						t.Errorf("minute %d: a period mean of %.4f where the host never used more than %.2f: counted twice", m+1, h.maxMean[m], steppedTarget+lift)
					}
					// From need periods after the clock stands still on,
					// the controller sees the window it holds up.
					if m >= tc.settled+need+2 && q < steppedTarget {
						t.Errorf("minute %d: the controller's p95 reads %.4f, %d minutes after the clock stood still", m+1, q, m-tc.settled)
					}
				}
				// In the window after the clock stands still, the catch-up
				// of a fresh start at most more than with a clock that is
				// right.
				bursts, want := burnt(h, tc.settled), burnt(steady, tc.settled)+need
				t.Logf("%d of the %d minutes after the clock stood still burst (%d with a clock that is right); p95 %.4f by the controller, %.4f by the auditor at their end",
					bursts, n, burnt(steady, tc.settled), h.quantile[tc.settled+n-1], audited[tc.settled+n-1])
				if bursts > want {
					t.Errorf("%d of the %d minutes after the clock stood still burst, want at most %d", bursts, n, want)
				}
			})
		}
	}
}

// stepAt is a clock that steps by `by` in real minute m and stays there.
func stepAt(m int, by time.Duration) func(tick int) time.Duration {
	return func(tick int) time.Duration {
		if tick > 4*m {
			return by
		}
		return 0
	}
}

func TestAStepBackWithinAPeriodCountsItsTimeOnce(t *testing.T) {
	// Usage 0.3 throughout; at 30 s into a minute the clock steps back
	// 20 s, so that the minute runs 80 s by the monotonic clock.
	for _, seen := range []bool{true, false} {
		a := NewAverages(time.Hour, 30*time.Second)
		a.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute})
		p := a.periods[host.CPU]
		var prev time.Time
		for tick := range 4 * 10 {
			wall := minute.Add(time.Duration(tick) * 15 * time.Second)
			if tick > 2*4+2 {
				wall = wall.Add(-20 * time.Second)
			}
			if by := wallStep(prev, wall, 15*time.Second); seen && by != 0 {
				a.clockStepped(by)
			}
			prev = wall
			a.update(host.CPU, wall, 0.3)
		}
		k := p.number(minute)
		if got, want := means(p, k+7)[52:], []float64{0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3}; !slices.Equal(got, want) {
			t.Errorf("seen %v: means of minutes 0..7 = %v, want %v", seen, got, want)
		}
	}
}

func TestTheLoopLogsAndCountsEachClockStepOnceAndGoesOnFromTheNewTime(t *testing.T) {
	var failing atomic.Bool
	var logs bytes.Buffer
	loop, published := testLoop(t, &failing, &logs)
	loop.cfg.Averages.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute})
	// The host at CPU 0.5, above its target of 0.25 all along: every
	// minute passes for an auditor whose clock is right.
	tick := func(wall time.Time) {
		s, _ := loop.cfg.Read(wall)
		loop.stepAfter(s, 15*time.Second)
	}
	real := minute
	for range 4 * 30 {
		real = real.Add(15 * time.Second)
		tick(real)
	}
	for range 4 * 10 {
		real = real.Add(15 * time.Second)
		tick(real.Add(24 * time.Hour))
	}
	for range 4 * 20 {
		real = real.Add(15 * time.Second)
		tick(real)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var steps []string
	for _, l := range lines {
		if strings.Contains(l, "wall clock stepped") {
			steps = append(steps, l)
		}
	}
	if len(steps) != 2 || !strings.Contains(steps[0], "by=24h0m0s direction=forward") || !strings.Contains(steps[1], "by=24h0m0s direction=back") {
		t.Errorf("log lines of clock steps %q, want one forward by 24h and one back", steps)
	}
	last := published.last()
	if last.ClockSteps != 2 {
		t.Errorf("cro_clock_steps_total shows %d, want 2", last.ClockSteps)
	}
	// The 20 minutes since the clock is right again pass (the minutes
	// before the forward step were overwritten by the day it skipped,
	// which counts as unseen); the forgotten day ahead holds none back.
	cpu := last.Resources[host.CPU]
	if got := int(math.Round(cpu.Passing * 60)); got != 20 {
		t.Errorf("%d passing periods counted in the window 20 minutes after the clock was right again, want 20", got)
	}
	// Without a step, nothing is logged or counted.
	logs.Reset()
	for range 4 {
		real = real.Add(15 * time.Second)
		tick(real)
	}
	if published.last().ClockSteps != 2 || strings.Contains(logs.String(), "stepped") {
		t.Errorf("a tick without a step counted or logged one: %q", logs.String())
	}
}

func TestOnlyAStepOfTheWallClockAgainstTheMonotonicOneCounts(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name      string
		prev, now time.Time
		elapsed   time.Duration
		want      time.Duration
	}{
		{"the first sample", time.Time{}, now, 15 * time.Second, 0},
		{"a tick on time", now, now.Add(15 * time.Second), 15 * time.Second, 0},
		{"slewed by 1.5 s", now, now.Add(15 * time.Second), 16500 * time.Millisecond, 0},
		{"a day forward", now, now.Add(24*time.Hour + 15*time.Second), 15 * time.Second, 24 * time.Hour},
		{"an hour back", now, now.Add(15*time.Second - time.Hour), 15 * time.Second, -time.Hour},
		{"3 s back", now, now.Add(12 * time.Second), 15 * time.Second, -3 * time.Second},
		{"a long tick slewed by a tenth", now, now.Add(100 * time.Second), 110 * time.Second, 0},
	} {
		if got := wallStep(tc.prev, tc.now, tc.elapsed); got != tc.want {
			t.Errorf("%s: wallStep = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Step measures elapsed with the monotonic clock where the times carry
	// it: a tick on time is no step, with or without one.
	var failing atomic.Bool
	var logs bytes.Buffer
	loop, _ := testLoop(t, &failing, &logs)
	for _, at := range []time.Time{now, now.Add(15 * time.Second), now.Add(30 * time.Second).Round(0)} {
		s, _ := loop.cfg.Read(at)
		loop.Step(s)
	}
	if strings.Contains(logs.String(), "stepped") {
		t.Errorf("ticks on time logged a step: %q", logs.String())
	}
}

func TestAuditPeriodsSavedAheadOfTheirLastSampleAreForgottenOnLoad(t *testing.T) {
	o := Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute}
	saved := NewAverages(window, maxSpan)
	saved.SetObjective(host.CPU, o)
	at := func(a *Averages, from, to int, x float64) {
		for i := from; i <= to; i++ {
			a.update(host.CPU, minute.Add(time.Duration(i)*15*time.Second), x)
		}
	}
	at(saved, 0, 4*50, 0.5)
	// As a version that kept them saved them after the clock stepped back
	// 20 minutes: minutes 30 to 49 closed ahead of the last sample.
	p := saved.periods[host.CPU]
	p.open, p.sum, p.until = p.number(minute)+30, 0, minute.Add(30*time.Minute)
	loaded := saveAndLoad(t, privateDir(t), saved, o)
	// Idle from minute 30 on, by the clock as it is now: the auditor
	// counts minutes 0 to 29 alone as passing.
	at(loaded, 4*30+1, 4*40, 0)
	p = loaded.periods[host.CPU]
	if got := p.passing(p.number(minute)+39, 0.25); got != 30 {
		t.Errorf("%d passing minutes in the window after the load, want the 30 before the step: those ahead count", got)
	}
}

func TestASeenClockStepLeavesTheAveragesAsIfNoneHappened(t *testing.T) {
	// The same usage, sampled by a clock that is right, and by one that
	// steps a day forward, back 30 minutes later, then an hour back.
	right, stepped := NewAverages(window, maxSpan), NewAverages(window, maxSpan)
	rng := rand.New(rand.NewPCG(5, 6))
	var prev time.Time
	for i := range 4 * 60 * 3 {
		x := rng.Float64()
		real := start.Add(time.Duration(i) * interval)
		wall := real
		switch {
		case i > 4*60 && i <= 4*90:
			wall = real.Add(day)
		case i > 4*120:
			wall = real.Add(-time.Hour)
		}
		if by := wallStep(prev, wall, interval); by != 0 {
			stepped.clockStepped(by)
		}
		prev = wall
		right.update(host.CPU, real, x)
		stepped.update(host.CPU, wall, x)
	}
	got, want := stepped.avg[host.CPU], right.avg[host.CPU]
	if math.Abs(got.value-want.value) > 1e-12 || math.Abs(got.weight-want.weight) > 1e-12 {
		t.Errorf("after the steps: value %v weight %v, want %v and %v as with a clock that was right", got.value, got.weight, want.value, want.weight)
	}
}
