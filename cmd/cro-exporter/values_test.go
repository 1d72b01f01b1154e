package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/controller"
)

func TestRatioSizeAndDurationParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		into interface{ UnmarshalText([]byte) error }
		want any // a value, or "error"
	}{
		{"0.4", new(Ratio), Ratio(0.4)},
		{"40%", new(Ratio), Ratio(0.4)},
		{"0", new(Ratio), Ratio(0)},
		{"100%", new(Ratio), Ratio(1)},
		{"150%", new(Ratio), "error"},
		{"-0.1", new(Ratio), "error"},
		{"NaN", new(Ratio), "error"},
		{"", new(Ratio), "error"},
		{"512MiB", new(Size), Size(512 << 20)},
		{"512MB", new(Size), Size(512 << 20)},
		{"1GiB", new(Size), Size(1 << 30)},
		{"1.5GB", new(Size), Size(3 << 29)},
		{"4096", new(Size), Size(4096)},
		{"-1GiB", new(Size), "error"},
		{"1 GiB", new(Size), "error"},
		{"1Gi", new(Size), "error"},
		{"lots", new(Size), "error"},
		{"15s", new(Duration), Duration(15 * time.Second)},
		{"30d", new(Duration), Duration(30 * 24 * time.Hour)},
		{"1h30m", new(Duration), Duration(90 * time.Minute)},
		{"0", new(Duration), "error"},
		{"-1d", new(Duration), "error"},
		{"15", new(Duration), "error"},
	} {
		err := tc.into.UnmarshalText([]byte(tc.in))
		if tc.want == "error" {
			if err == nil || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("%T %q: error %v, want one quoting the input", tc.into, tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%T %q: %v", tc.into, tc.in, err)
			continue
		}
		var got any
		switch v := tc.into.(type) {
		case *Ratio:
			got = *v
		case *Size:
			got = *v
		case *Duration:
			got = *v
		}
		if got != tc.want {
			t.Errorf("%T %q = %v, want %v", tc.into, tc.in, got, tc.want)
		}
	}
}

func TestDurationStringReadsAsWindowsAreGiven(t *testing.T) {
	for in, want := range map[time.Duration]string{
		30 * 24 * time.Hour: "30d", 7 * 24 * time.Hour: "7d", 25 * time.Hour: "1d1h", 90 * time.Minute: "1h30m",
		15 * time.Second: "15s", 1500 * time.Millisecond: "1s500ms", 0: "0s",
	} {
		if got := Duration(in).String(); got != want {
			t.Errorf("Duration(%v) = %q, want %q", in, got, want)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(want)); in > 0 && (err != nil || back.D() != in) {
			t.Errorf("%q parses as %v, %v; want %v", want, back.D(), err, in)
		}
	}
}

func TestSizeStringReadsLikeItsInput(t *testing.T) {
	for in, want := range map[Size]string{1 << 30: "1GiB", 512 << 20: "512MiB", 3 << 29: "1.50GiB", 8160437862: "7.60GiB", 100: "100B"} {
		if got := in.String(); got != want {
			t.Errorf("Size(%d) = %q, want %q", int64(in), got, want)
		}
	}
}

func TestStatisticParse(t *testing.T) {
	for in, want := range map[string]Statistic{"mean": 0, "p95": 0.95, "p50": 0.5, "p99.9": 0.999, "p99": 0.99, "p0.5": 0.005, "p55": 0.55, "p97.9": 0.979, "p99.99": 0.9999} {
		var s Statistic
		if err := s.UnmarshalText([]byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if s.Quantile() != float64(want) || s.String() != in {
			t.Errorf("%q = %v (%s), want %v", in, s.Quantile(), s, float64(want))
		}
	}
	for _, bad := range []string{"p0", "p0.0", "p100", "p101", "p100.0", "pfoo", "95", "P95", "p-5", "p95%", "p", "", "p1e1", "p.5", "p95.", "p 95", "pInf", "median"} {
		var s Statistic
		if err := s.UnmarshalText([]byte(bad)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("%q: error %v, want one quoting the input", bad, err)
		}
	}
}

// TestStatisticShownReadsBackAsTheSameObjective: what the start line and
// the metrics' statistic label show of a percentile, given as the flag,
// is the same objective; and a percentile near 0 or 100 is never shown as
// p0 or p100.
func TestStatisticShownReadsBackAsTheSameObjective(t *testing.T) {
	for _, in := range []string{"p99.99999", "p50.00001", "p95", "p99.9", "p0.1", "p0.000000001", "p0.00001", "p99.999999999", "p99.99", "p97.9"} {
		var s Statistic
		if err := s.UnmarshalText([]byte(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		o := controller.Objective{Quantile: s.Quantile(), Window: 7 * 24 * time.Hour, Period: time.Minute}
		for _, shown := range []string{s.String(), o.Statistic(), strings.Fields(describe(o))[0]} {
			if shown == "p100" || shown == "p0" {
				t.Errorf("%q is shown as %q", in, shown)
			}
			var back Statistic
			if err := back.UnmarshalText([]byte(shown)); err != nil || back != s {
				t.Errorf("%q is shown as %q, which reads back as %v (%v), want %v", in, shown, back.Quantile(), err, s.Quantile())
			}
		}
	}
}

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
