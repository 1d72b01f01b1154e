package controller

import (
	"strconv"
	"strings"
	"time"
)

// Objective is the statistic an auditor computes of one resource's
// utilization over a trailing window: the mean, or a percentile (the max
// among them) of the values of audit periods, each period's value its mean
// or the max of its sub-periods' means.
type Objective struct {
	// Quantile is 0 for the mean, or the percentile as a fraction above 0
	// and at most 1: 0.95 for p95, 1 for the max.
	Quantile float64
	// Window is the trailing window the auditor looks at.
	Window time.Duration
	// Period is the audit period of a percentile: the auditor takes the
	// mean of each, aligned to the clock (a minute runs from :00 to :00),
	// as one sample. The mean ignores it.
	Period time.Duration
	// Sub, when above 0, makes a period's value the max of the means of
	// its sub-periods of Sub, which divides Period (Azure Advisor: the max
	// of 1-minute means per 30 minutes). 0 makes it the period's mean.
	Sub time.Duration
}

// Max is the quantile of the max: the highest period value of the window.
const Max = 1

// MaxPeriods is the most audit periods a percentile's window may hold (45
// days of minutes): two bytes each, so that the state file of all three
// resources stays well under its 1 MiB limit.
const MaxPeriods = 1 << 16

// Statistic names the objective as flags and metrics do: "mean", "p95",
// "p99.9", "max". A sub-period is not part of the name: it is a property
// of the periods, as the period's length is.
func (o Objective) Statistic() string { return Statistic(o.Quantile) }

// Statistic names a quantile as flags and metrics write it: "mean" for 0,
// "max" for 1 (Max), else "p" and the percentile, "p95" for 0.95. The percentile's digits are
// those of the shortest decimal that reads back as quantile, so that
// p99.99999 is never shown rounded to p100, nor p0.00001 to p0, and what
// is shown, given as a flag, is the same objective.
func Statistic(quantile float64) string {
	switch quantile {
	case 0:
		return "mean"
	case Max:
		return "max"
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

// valid tells whether the CLI would take o: a positive window; for the
// mean no period; for a percentile a quantile in (0, 1], a period no
// longer than the window that divides it into at most MaxPeriods, and a
// sub-period, if any, that divides the period into more than one, and not
// for the max, where the max of sub-period maxes is the max of the
// sub-periods' means (a period of Sub says it).
func (o Objective) valid() bool {
	switch {
	case o.Window <= 0:
		return false
	case o.Quantile == 0:
		return o.Sub == 0
	case o.Quantile < 0 || o.Quantile > Max || o.Period <= 0 || o.Period > o.Window || o.Window/o.Period > MaxPeriods:
		return false
	case o.Sub != 0:
		return o.Quantile != Max && o.Sub > 0 && o.Sub < o.Period && o.Period%o.Sub == 0
	}
	return true
}
