package controller

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// TestStatisticNamesTheMaxAndKeepsTheQuantilesBesideIt: 1 is the max, and
// the quantiles next to it and to 0 keep digits enough not to read as the
// max, p100 or p0.
func TestStatisticNamesTheMaxAndKeepsTheQuantilesBesideIt(t *testing.T) {
	for q, want := range map[float64]string{
		Max:       "max",
		0:         "mean",
		0.5:       "p50",
		0.9999999: "p99.99999",
		0.0000001: "p0.00001",
		// The float just under 1: a percentile, never the max.
		math.Nextafter(1, 0): "p99.99999999999999",
	} {
		if got := Statistic(q); got != want {
			t.Errorf("Statistic(%v) = %q, want %q", q, got, want)
		}
		if got := (Objective{Quantile: q}).Statistic(); got != want {
			t.Errorf("Objective{Quantile: %v}.Statistic() = %q, want %q", q, got, want)
		}
	}
	if got := Statistic(math.Nextafter(1, 0)); got == "max" || strings.HasPrefix(got, "p100") {
		t.Errorf("the quantile just under 1 reads %q", got)
	}
}

// TestObjectiveValidAtItsEdges: what SetObjective takes is what the CLI
// takes; the edges of the quantile and of the sub-period.
func TestObjectiveValidAtItsEdges(t *testing.T) {
	const week = 7 * 24 * time.Hour
	for _, tc := range []struct {
		name string
		o    Objective
		want bool
	}{
		{"the mean", Objective{Window: week}, true},
		{"a mean with a sub-period", Objective{Window: week, Sub: time.Minute}, false},
		{"p95 of 30-minute maxes of minutes (Azure)", Objective{Quantile: 0.95, Window: week, Period: 30 * time.Minute, Sub: time.Minute}, true},
		{"the max of 5-minute means (Huawei)", Objective{Quantile: Max, Window: week, Period: 5 * time.Minute}, true},
		{"the max with a sub-period", Objective{Quantile: Max, Window: week, Period: 30 * time.Minute, Sub: time.Minute}, false},
		{"a quantile above 1", Objective{Quantile: math.Nextafter(1, 2), Window: week, Period: time.Minute}, false},
		{"a quantile of 2", Objective{Quantile: 2, Window: week, Period: time.Minute}, false},
		{"a negative quantile", Objective{Quantile: -0.5, Window: week, Period: time.Minute}, false},
		{"a sub-period that does not divide the period", Objective{Quantile: 0.95, Window: week, Period: 30 * time.Minute, Sub: 7 * time.Minute}, false},
		{"a sub-period equal to the period", Objective{Quantile: 0.95, Window: week, Period: 30 * time.Minute, Sub: 30 * time.Minute}, false},
		{"a sub-period longer than the period", Objective{Quantile: 0.95, Window: week, Period: 30 * time.Minute, Sub: time.Hour}, false},
		{"a negative sub-period", Objective{Quantile: 0.95, Window: week, Period: 30 * time.Minute, Sub: -time.Minute}, false},
		{"half the period", Objective{Quantile: 0.95, Window: week, Period: 30 * time.Minute, Sub: 15 * time.Minute}, true},
		{"no window", Objective{Quantile: 0.95, Period: time.Minute}, false},
	} {
		if got := tc.o.valid(); got != tc.want {
			t.Errorf("%s: %+v valid = %v, want %v", tc.name, tc.o, got, tc.want)
		}
		panicked := func() (p bool) {
			defer func() { p = recover() != nil }()
			NewAverages(tc.o.Window+time.Hour, maxSpan).SetObjective(host.CPU, tc.o)
			return false
		}()
		if panicked == tc.want {
			t.Errorf("%s: SetObjective panicked %v, want %v", tc.name, panicked, !tc.want)
		}
	}
}
