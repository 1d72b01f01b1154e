package controller

import (
	"strings"
	"testing"
)

// TestStatisticShowsEveryDigitOfTheQuantile: a quantile near 0 or 1 keeps
// the digits that tell it from the mean and from p100, the label of the
// metrics and the flag given naming one objective.
func TestStatisticShowsEveryDigitOfTheQuantile(t *testing.T) {
	for q, want := range map[float64]string{
		0:             "mean",
		0.001:         "p0.1",
		0.00000000001: "p0.000000001",
		0.5000000001:  "p50.00000001",
		0.5000001:     "p50.00001",
		0.95:          "p95",
		0.999:         "p99.9",
		0.9999999:     "p99.99999",
		0.99999999999: "p99.999999999",
	} {
		got := Statistic(q)
		if got != want {
			t.Errorf("Statistic(%v) = %q, want %q", q, got, want)
		}
		if got != (Objective{Quantile: q}).Statistic() {
			t.Errorf("Objective{Quantile: %v}.Statistic() is not Statistic(%[1]v)", q)
		}
		if strings.HasPrefix(got, "p100") || got == "p0" {
			t.Errorf("Statistic(%v) = %q: a percentile shown as p100 or p0", q, got)
		}
	}
}
