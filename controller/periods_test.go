package controller

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// minute is a period of 1 minute at 00:00 UTC of a day, and what follows.
var minute = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// means are the kept means of the window ending at end, as ratios rounded
// to 4 decimals, oldest first.
func means(p *periods, end int64) []float64 {
	var out []float64
	for _, m := range p.window(end) {
		out = append(out, float64(int(float64(m)/meanScale*1e4+0.5))/1e4)
	}
	return out
}

func TestPeriodsKeepTheMeanOfEachClockMinute(t *testing.T) {
	p := newPeriods(time.Minute, 5*time.Minute)
	at := func(d time.Duration, x float64) { p.observe(minute.Add(d), x, 45*time.Second) }
	k := p.number(minute)
	at(0, 0.9) // the first sample observes nothing
	for s := 15 * time.Second; s <= time.Minute; s += 15 * time.Second {
		at(s, 0.4) // minute 0 at 0.4, closed by its last sample
	}
	at(70*time.Second, 0.6)  // a sample across no boundary
	at(110*time.Second, 0.3) // 40 s
	at(130*time.Second, 0.9) // 10 s into minute 1, 10 s into minute 2
	// minute 1: (10*0.6 + 40*0.3 + 10*0.9)/60
	if got, want := means(p, k+1), []float64{0, 0, 0, 0.4, 0.45}; !slices.Equal(got, want) {
		t.Errorf("means of minutes %d..%d = %v, want %v", k-3, k+1, got, want)
	}
	// A gap of 200 s, the last 45 s of it observed: minute 2 holds its
	// first 10 s, minute 3 nothing, minute 4 its last 15 s; the next sample
	// ends minute 5.
	at(5*time.Minute+30*time.Second, 0.8)
	at(6*time.Minute, 0.8)
	if got, want := means(p, k+5), []float64{0.45, 0.15, 0, 0.2, 0.8}; !slices.Equal(got, want) {
		t.Errorf("means after a gap = %v, want %v", got, want)
	}
	// A clock stepped back unseen (as across a restart) by 2 minutes: the
	// periods from its new time on are seen again, once.
	at(4*time.Minute, 1)
	at(4*time.Minute+30*time.Second, 0.6)
	at(5*time.Minute, 0.6)
	at(5*time.Minute+30*time.Second, 0.8)
	at(6*time.Minute, 0.8)
	if got, want := means(p, k+5), []float64{0.45, 0.15, 0, 0.6, 0.8}; !slices.Equal(got, want) {
		t.Errorf("means after the clock stepped back = %v, want %v", got, want)
	}
	if got := p.passing(k+5, 0.44); got != 3 {
		t.Errorf("%d periods at or above 0.44, want 3 (0.45, 0.6 and 0.8)", got)
	}
	if got := p.passing(k+5, 0.7); got != 1 {
		t.Errorf("%d periods at or above 0.7, want 1", got)
	}
	if got, want := p.quantile(k+5, 0.6), 0.45; got > want || got < want-1.0/meanScale {
		t.Errorf("p60 of %v = %v, want %v (the third of five)", means(p, k+5), got, want)
	}
}

func TestAPeriodCountsAsPassingOnlyWhenItsMeanSurelyIs(t *testing.T) {
	p := newPeriods(time.Minute, 2*time.Minute)
	for i, x := range []float64{0.2, 0.2 - 1e-7} {
		p.observe(minute.Add(time.Duration(i)*time.Minute), x, time.Minute)
		p.observe(minute.Add(time.Duration(i+1)*time.Minute), x, time.Minute)
	}
	if got := p.passing(p.number(minute)+1, 0.2); got != 1 {
		t.Errorf("%d periods pass 0.2, want 1: 0.2 passes, 0.2-1e-7 does not", got)
	}
}

func TestCPUBurstsAreSpreadOverTheWindow(t *testing.T) {
	// p95 of 200 periods needs 11 at the target, 13 planned; a fresh
	// window catches up at once, then bursts 13 in every 200 minutes.
	p := newPeriods(time.Minute, 200*time.Minute)
	need, plan := atLeast(200, 0.95), planned(200, 0.95)
	if need != 11 || plan != 13 {
		t.Fatalf("need %d, plan %d, want 11 and 13", need, plan)
	}
	now := minute
	p.observe(now, 0, time.Minute)
	var bursts []int
	for i := range 1000 {
		k := p.number(now)
		p.sched.advance(k, func(next int64, current bool) bool { return p.burstNext(next, 0.2, need, plan, current) })
		x := 0.0
		if p.sched.burns(k) {
			x, bursts = 0.22, append(bursts, i)
		}
		now = now.Add(time.Minute)
		p.observe(now, x, time.Minute)
		if i >= 200 {
			if got := p.passing(k, 0.2); got < plan-1 {
				t.Fatalf("minute %d: %d periods of the window pass, want at least %d", i, got, plan-1)
			}
		}
	}
	if !slices.Equal(bursts[:11], []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Errorf("first bursts at %v, want the 11 minutes after the first", bursts[:11])
	}
	for i := 1; i < len(bursts); i++ {
		// 13 in 200 minutes: 15 apart, and once 20.
		if gap := bursts[i] - bursts[i-1]; bursts[i] > 400 && (gap < 15 || gap > 20) {
			t.Errorf("bursts at minutes %d and %d, want 15 to 20 apart once the catch-up has left the window", bursts[i-1], bursts[i])
		}
	}
	if n := len(bursts); n > 12+13*1000/200 {
		t.Errorf("%d bursts in 1000 minutes, want the catch-up and 13 in 200", n)
	}
}

func TestKthIsTheKthSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 7, 300, 10080} {
		values := make([]uint16, n)
		for i := range values {
			values[i] = uint16(rng.IntN(1 << 16))
			if i%3 == 0 {
				values[i] = uint16(rng.IntN(3)) // ties
			}
		}
		sorted := slices.Clone(values)
		slices.Sort(sorted)
		for k := 1; k <= n; k += max(1, n/50) {
			if got := kth(values, k); got != sorted[k-1] {
				t.Fatalf("kth of %d values, k %d = %d, want %d", n, k, got, sorted[k-1])
			}
		}
	}
}
