package controller

import (
	"maps"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	day      = 24 * time.Hour
	window   = 30 * day
	tau      = window / 2
	interval = 15 * time.Second
	maxSpan  = 2 * interval
)

// start is an arbitrary time for traces to begin at.
var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// allowAverages lets cmp look into Averages.
var allowAverages = cmp.AllowUnexported(Averages{}, average{})

// feed updates r every step, from the step after from to until, with load(t),
// t being the time since from, and returns the time of the last sample.
func feed(t testing.TB, a *Averages, r host.Resource, from, until time.Time, step time.Duration, load func(time.Duration) float64) time.Time {
	t.Helper()
	now := from
	for now.Add(step).Compare(until) <= 0 {
		now = now.Add(step)
		if err := a.update(r, now, load(now.Sub(from))); err != nil {
			t.Fatal(err)
		}
	}
	return now
}

func constant(x float64) func(time.Duration) float64 {
	return func(time.Duration) float64 { return x }
}

func TestAverageOfAConstantIsThatConstantFromTheFirstSample(t *testing.T) {
	for _, x := range []float64{0, 0.1, 0.25, 1.0 / 3, 0.9, 1} {
		a := NewAverages(window, maxSpan)
		now := start
		// 30 days at 15 s, checking every sample: exact, not approximate,
		// because each update steps from the value towards x by x-value = 0.
		for i := range 30 * day / interval {
			if err := a.update(host.Memory, now, x); err != nil {
				t.Fatal(err)
			}
			if got := a.Value(host.Memory); got != x {
				t.Fatalf("constant %v: sample %d gives %v", x, i, got)
			}
			now = now.Add(interval)
		}
	}
}

func TestUsageOutsideZeroToOneIsClamped(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    float64
		want float64
	}{
		{"usage above 1 counts as 1", 1.5, 1},
		{"usage below 0 counts as 0", -0.2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAverages(window, maxSpan)
			a.update(host.CPU, start, tc.x)
			if got := a.Value(host.CPU); got != tc.want {
				t.Errorf("Value = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUsageThatIsNotANumberIsRejectedAndChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    host.Resource
		x    float64
	}{
		{"NaN is rejected", host.CPU, math.NaN()},
		{"+Inf is rejected", host.CPU, math.Inf(1)},
		{"-Inf is rejected", host.CPU, math.Inf(-1)},
		{"an unknown resource is rejected", "gpu", 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAverages(window, maxSpan)
			last := feed(t, a, host.CPU, start, start.Add(day), interval, constant(0.3))
			before := *a
			before.avg = maps.Clone(a.avg)
			if err := a.update(tc.r, last.Add(interval), tc.x); err == nil {
				t.Errorf("update(%q, %v) gave no error", tc.r, tc.x)
			}
			if diff := cmp.Diff(&before, a, allowAverages); diff != "" {
				t.Errorf("rejected update changed the averages (-before +after):\n%s", diff)
			}
		})
	}
}

func TestStepReachesOneMinusOneOverEAfterTheTimeConstant(t *testing.T) {
	a := NewAverages(window, maxSpan)
	// A long history at 0: after 40 time constants the weight is
	// 1-exp(-40), which is 1 in float64.
	a.avg[host.CPU] = average{value: 0, weight: 1, last: start}
	feed(t, a, host.CPU, start, start.Add(tau), interval, constant(1))
	// The piecewise-constant model makes this exact whatever the step; the
	// tolerance is only for rounding over 86,400 updates.
	want := 1 - 1/math.E // 0.632
	if got := a.Value(host.CPU); math.Abs(got-want) > 1e-9 {
		t.Errorf("after a step from 0 to 1 and tau = %v: Value = %.12f, want %.12f", tau, got, want)
	}
}

func TestHistoryIsTheObservedSpanCappedAtTheWindow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed time.Duration
		want     time.Duration
	}{
		{"a first sample alone holds no history", 0, 0},
		{"a day of samples holds a day", day, day},
		{"ten days of samples hold ten days", 10 * day, 10 * day},
		{"sixty days of samples hold the window", 60 * day, window},
		{"ten thousand days, a weight of 1, still hold just the window", 10000 * day, window},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAverages(window, maxSpan)
			a.update(host.Disk, start, 0.5)
			// An hour's steps with an hour's maxSpan: fast, and the same
			// weight as 15 s steps would give.
			a.maxSpan = time.Hour
			feed(t, a, host.Disk, start, start.Add(tc.observed), time.Hour, constant(0.5))
			if got := a.History(host.Disk); (got - tc.want).Abs() > time.Millisecond {
				t.Errorf("History = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGapDecaysHistoryButInventsNoUsage(t *testing.T) {
	a := NewAverages(window, maxSpan)
	last := feed(t, a, host.Memory, start, start.Add(window), interval, constant(0.2))
	before := a.avg[host.Memory]

	// The exporter was down for 3 days; its first sample back says 0.8.
	gap := 3 * day
	if err := a.update(host.Memory, last.Add(gap), 0.8); err != nil {
		t.Fatal(err)
	}

	// The history decays over the whole gap, but the sample stands for
	// maxSpan of it only: usage during the rest of the gap is unknown.
	kept := before.weight * math.Exp(-gap.Seconds()/tau.Seconds())
	w := 1 - math.Exp(-maxSpan.Seconds()/tau.Seconds())
	want := average{
		value:  (0.2*kept + 0.8*w) / (kept + w),
		weight: kept + w,
		last:   last.Add(gap),
	}
	if diff := cmp.Diff(want, a.avg[host.Memory], allowAverages, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("after a 3-day gap (-want +got):\n%s", diff)
	}
	// Had the sample stood for the whole gap, the average would be 0.32.
	if got := a.Value(host.Memory); got > 0.2001 {
		t.Errorf("Value = %v: the gap was counted as observed", got)
	}
	// 30 days of history, now 3 to 33 days old, weigh as 18.5 days would.
	if got, want := a.History(host.Memory), time.Duration(-tau.Seconds()*math.Log(1-want.weight)*1e9); (got - want).Abs() > time.Second {
		t.Errorf("History = %v, want %v", got, want)
	}
}

func TestIrregularIntervalsGiveTheSameAverageAsRegularOnes(t *testing.T) {
	// A load that is constant within each minute, sampled once at the end
	// of every minute, or at irregular times within it (the last at its
	// end): each sample stands for the time since the one before, so both
	// describe the same history and must agree.
	rng := rand.New(rand.NewPCG(3, 4))
	perMinute := make([]float64, 24*60)
	for i := range perMinute {
		perMinute[i] = rng.Float64()
	}
	regular, irregular := NewAverages(window, time.Minute), NewAverages(window, time.Minute)
	regular.update(host.CPU, start, 0)
	irregular.update(host.CPU, start, 0)
	for i, x := range perMinute {
		end := start.Add(time.Duration(i+1) * time.Minute)
		regular.update(host.CPU, end, x)
		for at := end.Add(-time.Minute); ; {
			at = at.Add(time.Duration(1+rng.IntN(25)) * time.Second)
			if at.After(end) {
				at = end
			}
			irregular.update(host.CPU, at, x)
			if at.Equal(end) {
				break
			}
		}
	}
	if diff := cmp.Diff(regular, irregular, allowAverages, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("regular vs irregular sampling (-regular +irregular):\n%s", diff)
	}
}

func TestClockGoingBackOrStandingStillKeepsTheAverageSane(t *testing.T) {
	type sample struct {
		at time.Duration // after start
		x  float64
	}
	for _, tc := range []struct {
		name      string
		samples   []sample
		wantValue float64
	}{
		{
			name:      "a duplicate of the first sample replaces it, as neither has weight",
			samples:   []sample{{0, 0.3}, {0, 0.7}},
			wantValue: 0.7,
		},
		{
			name:      "a later duplicate observes no time and changes nothing",
			samples:   []sample{{0, 0.3}, {interval, 0.3}, {interval, 0.9}, {interval, 0.9}},
			wantValue: 0.3,
		},
		{
			name:      "a clock stepped back observes no time",
			samples:   []sample{{0, 0.3}, {interval, 0.3}, {-day, 0.9}},
			wantValue: 0.3,
		},
		{
			name:      "after a clock stepped back, intervals start from the new time",
			samples:   []sample{{0, 0.3}, {interval, 0.3}, {-day, 0.9}, {-day + interval, 0.9}},
			wantValue: 0.6,
		},
		{
			name:      "a clock stepped back before the first sample has one to replace",
			samples:   []sample{{0, 0.3}, {-day, 0.9}, {-day + interval, 0.5}},
			wantValue: 0.5,
		},
		{
			name:      "a clock jumping two centuries ahead keeps just the new sample",
			samples:   []sample{{0, 0.3}, {interval, 0.3}, {200 * 365 * day, 0.9}},
			wantValue: 0.9,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAverages(window, maxSpan)
			for i, s := range tc.samples {
				if err := a.update(host.CPU, start.Add(s.at), s.x); err != nil {
					t.Fatal(err)
				}
				avg, h := a.avg[host.CPU], a.History(host.CPU)
				if !isRatio(avg.value) || !isRatio(avg.weight) || h < 0 || h > window {
					t.Fatalf("after sample %d: value %v, weight %v, history %v", i, avg.value, avg.weight, h)
				}
				if !avg.last.Equal(start.Add(s.at)) {
					t.Fatalf("after sample %d: last = %v, want the sample's time", i, avg.last)
				}
			}
			if got := a.Value(host.CPU); math.Abs(got-tc.wantValue) > 1e-5 {
				t.Errorf("Value = %v, want %v", got, tc.wantValue)
			}
		})
	}
}

// load is a synthetic host's total usage at t into a trace: 30% on average,
// ±10% over the day, 8% less at weekends, and ±5% of noise.
func load(rng *rand.Rand) func(time.Duration) float64 {
	return func(t time.Duration) float64 {
		days := t.Hours() / 24
		x := 0.30 + 0.10*math.Sin(2*math.Pi*days)
		if int(days)%7 >= 5 {
			x -= 0.08
		}
		return x + 0.05*(2*rng.Float64()-1)
	}
}

// slidingMean is the exact mean of the last len(ring) samples.
type slidingMean struct {
	ring []float64
	i    int
	sum  float64
}

func (m *slidingMean) add(x float64) float64 {
	m.sum += x - m.ring[m.i]
	m.ring[m.i] = x
	m.i = (m.i + 1) % len(m.ring)
	return m.sum / float64(len(m.ring))
}

// compare runs a trace of n samples, step apart, through the averages and
// an exact sliding mean over the window, and returns both at every sample
// from the first full window on.
func compare(t *testing.T, n int, step time.Duration, x func(i int) float64) (ewma, sliding []float64) {
	a := NewAverages(window, 2*step)
	m := slidingMean{ring: make([]float64, window/step)}
	now := start
	for i := range n {
		now = now.Add(step)
		xi := x(i)
		if err := a.update(host.CPU, now, xi); err != nil {
			t.Fatal(err)
		}
		if s := m.add(xi); i >= len(m.ring) {
			ewma, sliding = append(ewma, a.Value(host.CPU)), append(sliding, s)
		}
	}
	return ewma, sliding
}

// maxDeviation is the largest difference between a and b, and its index.
func maxDeviation(a, b []float64) (worst float64, at int) {
	for i := range a {
		if d := math.Abs(a[i] - b[i]); d > worst {
			worst, at = d, i
		}
	}
	return worst, at
}

func TestAverageStaysCloseToTheThirtyDaySlidingMean(t *testing.T) {
	// 60 days at 60 s of a realistic load (daily cycle, weekends, noise).
	step := time.Minute
	trace := load(rand.New(rand.NewPCG(1, 2)))
	ewma, sliding := compare(t, int(60*day/step), step, func(i int) float64 {
		return trace(time.Duration(i) * step)
	})
	// Measured: at most 0.0038 (day 32.5; 0.0037-0.0039 over seeds 1-5,
	// 0.0032 from day 45 on). It depends on the patterns' amplitudes, not on
	// the usage level, the sampling step or the noise:
	//   - the weekly pattern, 0.0031 of it: the sliding mean keeps 4 weeks
	//     and 2 days, so it holds four or five weekends and moves by
	//     0.08·2/30 = 0.005 as one enters or leaves it, while the EWMA
	//     weighs weekends by their age;
	//   - the daily cycle, 0.0014: a whole number of days cancels in the
	//     sliding mean, while the EWMA keeps a ripple of about A/(2π·15) of
	//     a daily swing of ±A (0.1/94);
	//   - the noise, 0.0002;
	//   - just after day 30, history that begins at day 0: the EWMA's weight
	//     is only 1-exp(-2) = 0.86 then.
	// A linear trend adds nothing: both have a mean sample age of 15 days.
	const bound = 0.0045
	if got, at := maxDeviation(ewma, sliding); got > bound {
		t.Errorf("EWMA is %.4f away from the 30-day sliding mean at day %.1f, more than %v", got, 30+float64(at)*step.Hours()/24, bound)
	}
}

func TestStepChangeDiffersFromTheSlidingMeanByDesign(t *testing.T) {
	// 0 for 600 days (weight 1 - exp(-40)), then 1 for 60 days, at hourly
	// steps (exact under the piecewise-constant model). Measured:
	//
	//	days after the step   10.4   15     30     45     69
	//	30-day sliding mean   0.35   0.50   1.00   1.00   1.00
	//	EWMA (tau 15 days)    0.50   0.63   0.86   0.95   0.99
	//
	// The EWMA answers sooner (at most 0.153 above the sliding mean, 10.4
	// days in) and settles later (0.135 below it at day 30, 0.05 at day 45,
	// 0.01 at day 69): a step a sliding-mean auditor sees in full after 30
	// days, the average sees in full only after about 70. This is inherent
	// in any exponential average with the same mean sample age.
	step := time.Hour
	before := int(600 * day / step)
	ewma, sliding := compare(t, before+int(60*day/step), step, func(i int) float64 {
		if i < before {
			return 0
		}
		return 1
	})
	at := func(days float64) int { return before - int(window/step) + int(days*24) - 1 }
	for _, tc := range []struct {
		days                  float64
		wantEWMA, wantSliding float64
	}{
		{15, 1 - math.Exp(-1), 0.5},
		{30, 1 - math.Exp(-2), 1},
		{45, 1 - math.Exp(-3), 1},
	} {
		if got := ewma[at(tc.days)]; math.Abs(got-tc.wantEWMA) > 1e-9 {
			t.Errorf("EWMA %v days after the step = %.4f, want %.4f", tc.days, got, tc.wantEWMA)
		}
		if got := sliding[at(tc.days)]; math.Abs(got-tc.wantSliding) > 1e-9 {
			t.Errorf("sliding mean %v days after the step = %.4f, want %.4f", tc.days, got, tc.wantSliding)
		}
	}
	// max(1 - exp(-t/15) - t/30) is at t = 15 ln 2 days.
	want := 0.5 - math.Ln2/2
	if got, _ := maxDeviation(ewma, sliding); math.Abs(got-want) > 1e-3 {
		t.Errorf("largest difference = %.4f, want %.4f", got, want)
	}
}

func BenchmarkAveragesUpdate(b *testing.B) {
	a := NewAverages(window, maxSpan)
	now := start
	for b.Loop() {
		now = now.Add(interval)
		for _, r := range host.Resources {
			a.update(r, now, 0.3)
		}
	}
}
