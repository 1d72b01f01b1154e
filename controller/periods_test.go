package controller

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/google/go-cmp/cmp"
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

func TestSaveThenLoadRestoresTheAuditPeriods(t *testing.T) {
	dir := privateDir(t)
	o := Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute}
	saved := NewAverages(window, maxSpan)
	saved.SetObjective(host.CPU, o)
	for i := range 200 {
		saved.update(host.CPU, minute.Add(time.Duration(i)*15*time.Second), float64(i%7)/10)
	}
	saved.periods[host.CPU].setBurst(saved.periods[host.CPU].closed, true)
	loaded := saveAndLoad(t, dir, saved, o)
	allow := cmp.AllowUnexported(Averages{}, average{}, periods{}, schedule{}, audited{})
	if diff := cmp.Diff(saved, loaded, allow); diff != "" {
		t.Errorf("loaded (-saved +loaded):\n%s", diff)
	}

	// Saved for another period, they start afresh, and say so.
	var log bytes.Buffer
	other := NewAverages(window, maxSpan)
	other.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: 30 * time.Second})
	if err := other.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	if p := other.periods[host.CPU]; p.closed != 0 || slices.Max(p.means) != 0 {
		t.Errorf("periods saved for 1m restored as 30s ones: closed %d", p.closed)
	}
	if !strings.Contains(log.String(), "start afresh") || other.Value(host.CPU) != saved.Value(host.CPU) {
		t.Errorf("want the averages restored and the periods started afresh with a log line; log %q", log.String())
	}

	// Run ahead of their last sample by more than a window (the clock
	// stepped back far), they start afresh too.
	saved.periods[host.CPU].closed += 200
	if err := saved.save(dir); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	ahead := NewAverages(window, maxSpan)
	ahead.SetObjective(host.CPU, o)
	if err := ahead.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	if p := ahead.periods[host.CPU]; p.closed != 0 || !strings.Contains(log.String(), "start afresh") {
		t.Errorf("periods a window ahead of their last sample restored: closed %d; log %q", p.closed, log.String())
	}
}

// saveAndLoad saves averages into dir and loads them into new averages
// with CPU objective o.
func saveAndLoad(t *testing.T, dir string, saved *Averages, o Objective) *Averages {
	t.Helper()
	if err := saved.save(dir); err != nil {
		t.Fatal(err)
	}
	loaded := NewAverages(window, maxSpan)
	loaded.SetObjective(host.CPU, o)
	if err := loaded.Load(dir, loadedAt, discard()); err != nil {
		t.Fatal(err)
	}
	return loaded
}

func TestLoadOfUnusableAuditPeriodsMovesTheFileAside(t *testing.T) {
	o := Objective{Quantile: 0.95, Window: 2 * time.Minute, Period: time.Minute}
	good := func() periodsJSON {
		k := minute.Unix() / 60
		return periodsJSON{Period: "1m0s", Closed: k - 1, Open: k, Sum: 3, Until: minute, Means: make([]byte, 4), Bursts: make([]byte, 8)}
	}
	for _, tc := range []struct {
		name    string
		change  func(*periodsJSON)
		problem string
	}{
		{"a period that is not a duration", func(f *periodsJSON) { f.Period = "soon" }, `period \"soon\" is not a duration`},
		{"a negative period number", func(f *periodsJSON) { f.Closed = -1 }, "negative"},
		{"a sum above the period", func(f *periodsJSON) { f.Sum = 61 }, "sum 61 is not within"},
		{"a sum without a time", func(f *periodsJSON) { f.Until = time.Time{} }, "without a time"},
		{"bursts of the wrong length", func(f *periodsJSON) { f.Bursts = f.Bursts[:4] }, "4 bytes of bursts for 2 periods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(&f)
			file := averagesJSON{Version: fileVersion, Resources: map[host.Resource]averageJSON{}, Periods: map[host.Resource]periodsJSON{host.CPU: f}}
			data, err := json.Marshal(file)
			if err != nil {
				t.Fatal(err)
			}
			dir := privateDir(t)
			if err := os.WriteFile(filepath.Join(dir, averagesFile), data, 0o600); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			a := NewAverages(window, maxSpan)
			a.SetObjective(host.CPU, o)
			if err := a.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.String(), tc.problem) {
				t.Errorf("log %q does not name %q", log.String(), tc.problem)
			}
			if _, err := os.Stat(filepath.Join(dir, averagesFile+".corrupt-1767225600")); err != nil {
				t.Errorf("not moved aside: %v", err)
			}
		})
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
