package controller

import (
	"math"
	"strconv"
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
func (o Objective) Statistic() string {
	if o.Quantile == 0 {
		return "mean"
	}
	// Rounding hides float noise such as 94.99999999999999.
	return "p" + strconv.FormatFloat(math.Round(o.Quantile*1e6)/1e4, 'f', -1, 64)
}
