package controller

import (
	"strconv"
	"strings"
	"time"
)

// Objective is the statistic an auditor computes of one resource's
// utilization over a trailing window: the mean, or a percentile of the
// means of audit periods.
type Objective struct {
	// Quantile is 0 for the mean, or the percentile as a fraction between
	// 0 and 1: 0.95 for p95.
	Quantile float64
	// Window is the trailing window the auditor looks at.
	Window time.Duration
	// Period is the audit period of a percentile: the auditor takes the
	// mean of each, aligned to the clock (a minute runs from :00 to :00),
	// as one sample. The mean ignores it.
	Period time.Duration
}

// MaxPeriods is the most audit periods a percentile's window may hold (45
// days of minutes): two bytes each, so that the state file of all three
// resources stays well under its 1 MiB limit.
const MaxPeriods = 1 << 16

// Statistic names the objective as flags and metrics do: "mean", "p95",
// "p99.9".
func (o Objective) Statistic() string { return Statistic(o.Quantile) }

// Statistic names a quantile as flags and metrics write it: "mean" for 0,
// else "p" and the percentile, "p95" for 0.95. The percentile's digits are
// those of the shortest decimal that reads back as quantile, so that
// p99.99999 is never shown rounded to p100, nor p0.00001 to p0, and what
// is shown, given as a flag, is the same objective.
func Statistic(quantile float64) string {
	if quantile == 0 {
		return "mean"
	}
	// Shifting the decimal point of the shortest form by two places is
	// exact, where quantile*100 would add float noise (0.979*100 is
	// 97.89999999999999).
	s := strconv.FormatFloat(quantile, 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	frac += strings.Repeat("0", max(0, 2-len(frac)))
	whole = strings.TrimLeft(whole+frac[:2], "0")
	if whole == "" {
		whole = "0"
	}
	if frac = frac[2:]; frac != "" {
		return "p" + whole + "." + frac
	}
	return "p" + whole
}
