package controller

import (
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/logtest"
	"github.com/google/go-cmp/cmp"
)

// azureLike is a p95 of 30-minute periods, each the max of its 1-minute
// means, over 2 hours.
var azureLike = Objective{Quantile: 0.95, Window: 2 * time.Hour, Period: 30 * time.Minute, Sub: time.Minute}

// subPeriodTrace is CPU averages under o that saw 40.5 minutes from minute
// at 15 s: period 0 closed, period 1 open 10.5 minutes in, half-way
// through a sub-period, with a best sub-period mean so far.
func subPeriodTrace(o Objective) *Averages {
	a := NewAverages(window, maxSpan)
	a.SetObjective(host.CPU, o)
	for i := range 163 {
		a.update(host.CPU, minute.Add(time.Duration(i)*15*time.Second), float64(i%11)/20)
	}
	return a
}

func TestSaveThenLoadRestoresTheSubPeriods(t *testing.T) {
	dir := privateDir(t)
	saved := subPeriodTrace(azureLike)
	p := saved.periods[host.CPU]
	if p.sub != time.Minute || p.subSum == 0 || p.best == 0 || p.closed != p.open-1 || slices.Max(p.means) == 0 {
		t.Fatalf("the trace left no sub-period in progress: sub %v, sub_sum %v, best %v, closed %d, open %d", p.sub, p.subSum, p.best, p.closed, p.open)
	}
	loaded := saveAndLoad(t, dir, saved, azureLike)
	allow := cmp.AllowUnexported(Averages{}, average{}, periods{}, schedule{}, audited{})
	if diff := cmp.Diff(saved, loaded, allow); diff != "" {
		t.Fatalf("loaded (-saved +loaded):\n%s", diff)
	}
	// Both go on alike: the period in progress closes with the max of its
	// sub-periods, those before the restart included.
	end := minute.Add(time.Hour)
	for _, a := range []*Averages{saved, loaded} {
		for at := minute.Add(163 * 15 * time.Second); !at.After(end); at = at.Add(15 * time.Second) {
			a.update(host.CPU, at, 0.01)
		}
	}
	k := saved.periods[host.CPU].number(end) - 1
	got, kept := means(loaded.periods[host.CPU], k), means(saved.periods[host.CPU], k)
	if want := []float64{0, 0, bestMinute(0), bestMinute(30)}; !slices.Equal(got, kept) || !closeTo(got, want, 1e-4) {
		t.Errorf("periods after a restart %v, without %v; want both %v, the max of each period's minutes", got, kept, want)
	}
}

// bestMinute is the highest mean of the 30 minutes from minute from of
// subPeriodTrace's samples, 0.01 after them.
func bestMinute(from int) float64 {
	best := 0.0
	for m := from; m < from+30; m++ {
		sum := 0.0
		for i := 4*m + 1; i <= 4*m+4; i++ {
			x := 0.01
			if i < 163 {
				x = float64(i%11) / 20
			}
			sum += x / 4
		}
		best = max(best, sum)
	}
	return best
}

func closeTo(got, want []float64, tolerance float64) bool {
	return slices.EqualFunc(got, want, func(a, b float64) bool { return math.Abs(a-b) <= tolerance })
}

// TestSubPeriodsSavedForAnotherSubPeriodStartAfresh: periods whose values
// were maxes of other sub-periods, or means, count other values: they
// start afresh with one log line, and the averages are kept.
func TestSubPeriodsSavedForAnotherSubPeriodStartAfresh(t *testing.T) {
	means := azureLike
	means.Sub = 0
	halfMinutes := azureLike
	halfMinutes.Sub = 30 * time.Second
	for _, tc := range []struct {
		name        string
		saved, load Objective
	}{
		{"1m loaded as 30s", azureLike, halfMinutes},
		{"1m loaded as none", azureLike, means},
		{"none loaded as 1m", means, azureLike},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := privateDir(t)
			saved := subPeriodTrace(tc.saved)
			if err := saved.save(dir); err != nil {
				t.Fatal(err)
			}
			var log logtest.Buffer
			loaded := NewAverages(window, maxSpan)
			loaded.SetObjective(host.CPU, tc.load)
			if err := loaded.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
				t.Fatal(err)
			}
			p := loaded.periods[host.CPU]
			if p.closed != 0 || p.best != 0 || p.subSum != 0 || slices.Max(p.means) != 0 || p.sub != tc.load.Sub {
				t.Errorf("periods restored: closed %d, best %d, sub_sum %v, sub %v", p.closed, p.best, p.subSum, p.sub)
			}
			if n := log.Count("start afresh"); n != 1 || log.Count(`"saved_subperiod"`) != 1 {
				t.Errorf("%d lines say the periods start afresh, want one naming the saved sub-period:\n%s", n, log.String())
			}
			if loaded.Value(host.CPU) != saved.Value(host.CPU) {
				t.Errorf("average %v restored as %v", saved.Value(host.CPU), loaded.Value(host.CPU))
			}
		})
	}
}
