package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/controller"
)

// TestTheMaxAndTheQuantilesBesideItReadBackAsShown: what controller.Statistic
// shows, given as --objective.*, is the same quantile: the max as "max",
// which p100 is not.
func TestTheMaxAndTheQuantilesBesideItReadBackAsShown(t *testing.T) {
	for _, q := range []float64{controller.Max, 0.9999999, 0.0000001, 0.5, 0.95} {
		shown := controller.Statistic(q)
		var s Statistic
		if err := s.UnmarshalText([]byte(shown)); err != nil || s.Quantile() != q {
			t.Errorf("quantile %v is shown as %q, which reads back as %v (%v)", q, shown, s.Quantile(), err)
		}
		if s.String() != shown {
			t.Errorf("quantile %v: the flag shows %q, the metrics %q", q, s, shown)
		}
	}
	var s Statistic
	if err := s.UnmarshalText([]byte("p100")); err == nil || !strings.Contains(err.Error(), "max") {
		t.Errorf("p100: error %v, want one that offers max", err)
	}
	for o, want := range map[controller.Objective]string{
		{Quantile: controller.Max, Window: 7 * 24 * time.Hour, Period: 5 * time.Minute}:           "max of 5m over 7d",
		{Quantile: 0.95, Window: 7 * 24 * time.Hour, Period: 30 * time.Minute, Sub: time.Minute}:  "p95 of 30m maxes of 1m over 7d",
		{Quantile: 0.25, Window: 14 * 24 * time.Hour, Period: 24 * time.Hour}:                     "p25 of 1d over 14d",
		{Quantile: 0.999, Window: 2 * time.Hour, Period: 10 * time.Minute, Sub: 30 * time.Second}: "p99.9 of 10m maxes of 30s over 2h",
	} {
		if got := describe(o); got != want {
			t.Errorf("describe(%+v) = %q, want %q", o, got, want)
		}
	}
}

func TestCPUTargetReadsBackAsWritten(t *testing.T) {
	for in, want := range map[string]struct {
		target CPUTarget
		shown  string
	}{
		"0.03cpus": {CPUTarget{CPUs: 0.03}, "0.03cpus"},
		"1cpu":     {CPUTarget{CPUs: 1}, "1cpus"},
		"2.5cpus":  {CPUTarget{CPUs: 2.5}, "2.5cpus"},
		"40%":      {CPUTarget{Ratio: 0.4}, "40%"},
		"0.4":      {CPUTarget{Ratio: 0.4}, "40%"},
		"0":        {CPUTarget{}, "0%"},
	} {
		var c CPUTarget
		if err := c.UnmarshalText([]byte(in)); err != nil || c != want.target || c.String() != want.shown {
			t.Errorf("%q = %+v (%v), shown %q; want %+v, %q", in, c, err, c.String(), want.target, want.shown)
			continue
		}
		var back CPUTarget
		if err := back.UnmarshalText([]byte(c.String())); err != nil || back != c {
			t.Errorf("%q is shown as %q, which reads back as %+v (%v)", in, c, back, err)
		}
	}
	for _, bad := range []string{"0cpus", "-1cpus", "NaNcpus", "infcpus", "cpus", "0.03 cpus", "0.03CPUs", "3%cpus", "150%", "lots"} {
		var c CPUTarget
		if err := c.UnmarshalText([]byte(bad)); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("%q: error %v, want one quoting the input", bad, err)
		}
	}
	// A target in CPUs is not a ratio, and only --target.cpu takes one.
	var r Ratio
	if err := r.UnmarshalText([]byte("0.03cpus")); err == nil || !strings.Contains(err.Error(), `"0.03cpus" is a number of CPUs, which only --target.cpu takes`) {
		t.Errorf("Ratio 0.03cpus: error %v, want one saying only --target.cpu takes CPUs", err)
	}
}

func TestCPUTargetIsConvertedWithTheHostsCPUs(t *testing.T) {
	for _, tc := range []struct {
		target CPUTarget
		cpus   int
		want   float64 // -1: an error naming --target.cpu
	}{
		{CPUTarget{CPUs: 0.03}, 2, 0.015},
		{CPUTarget{CPUs: 0.03}, 1, 0.03},
		{CPUTarget{CPUs: 0.06}, 4, 0.015},
		{CPUTarget{CPUs: 2}, 2, 1},
		{CPUTarget{CPUs: 3}, 2, -1},
		{CPUTarget{CPUs: 0.5}, 0, -1},
		{CPUTarget{Ratio: 0.4}, 2, 0.4},
		{CPUTarget{Ratio: 0.4}, 64, 0.4},
	} {
		got, err := tc.target.of(tc.cpus)
		switch {
		case tc.want < 0 && (err == nil || !strings.Contains(err.Error(), "--target.cpu="+tc.target.String())):
			t.Errorf("%s of %d CPUs: %v, %v; want an error naming --target.cpu", tc.target, tc.cpus, got, err)
		case tc.want >= 0 && (err != nil || got != tc.want):
			t.Errorf("%s of %d CPUs = %v (%v), want %v", tc.target, tc.cpus, got, err, tc.want)
		}
	}
}
