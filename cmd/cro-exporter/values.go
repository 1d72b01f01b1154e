package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/cro-exporter/cro-exporter/controller"
)

// The types of flag values: each parses what a flag is given and formats
// it back as it would be written.

// Ratio is a fraction 0..1, written as 0.4 or 40%.
type Ratio float64

// UnmarshalText parses a ratio.
func (r *Ratio) UnmarshalText(text []byte) error {
	s := string(text)
	if _, cpus := cutCPUs(s); cpus {
		return fmt.Errorf("%q is a number of CPUs, which only --target.cpu takes; give a ratio (0.4 or 40%%)", s)
	}
	num, percent := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(num, 64)
	if percent {
		v /= 100
	}
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("%q is not a ratio between 0 and 1 (0.4 or 40%%)", s)
	}
	*r = Ratio(v)
	return nil
}

// String formats the ratio as a percentage, as it was most likely written.
func (r Ratio) String() string {
	// Rounding hides float noise such as 7.000000000000001%.
	return strconv.FormatFloat(math.Round(float64(r)*1e8)/1e6, 'f', -1, 64) + "%"
}

// CPUTarget is the CPU target: a Ratio of the machine, or a number of
// CPUs, written 0.03cpus (Google's idle rule counts vCPUs), which the
// host's CPU count converts to a ratio.
type CPUTarget struct {
	Ratio Ratio
	// CPUs is above 0 for a target in CPUs; Ratio is 0 then.
	CPUs float64
}

// cutCPUs is s without a "cpus" or "cpu" suffix, and whether it had one.
func cutCPUs(s string) (string, bool) {
	for _, suffix := range []string{"cpus", "cpu"} {
		if num, ok := strings.CutSuffix(s, suffix); ok {
			return num, true
		}
	}
	return s, false
}

// UnmarshalText parses a CPU target.
func (c *CPUTarget) UnmarshalText(text []byte) error {
	num, cpus := cutCPUs(string(text))
	if !cpus {
		*c = CPUTarget{}
		return c.Ratio.UnmarshalText(text)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("%q is not a ratio (0.4 or 40%%) nor a positive number of CPUs (0.03cpus)", text)
	}
	*c = CPUTarget{CPUs: v}
	return nil
}

// String formats the target as it was most likely written.
func (c CPUTarget) String() string {
	if c.CPUs > 0 {
		return strconv.FormatFloat(c.CPUs, 'f', -1, 64) + "cpus"
	}
	return c.Ratio.String()
}

// of is the target as a ratio of a host of cpus CPUs; an error, naming the
// flag, when it is more CPUs than the host has.
func (c CPUTarget) of(cpus int) (float64, error) {
	if c.CPUs == 0 {
		return float64(c.Ratio), nil
	}
	if cpus <= 0 || c.CPUs > float64(cpus) {
		return 0, fmt.Errorf("--target.cpu=%s is more than the host's %d CPUs", c, cpus)
	}
	return c.CPUs / float64(cpus), nil
}

// Statistic is what an auditor computes of a resource's usage: the mean
// (0), a percentile of audit period values, kept as its quantile (0.95
// for p95), or their max (1). It is written mean, p95, p99.9 or max.
type Statistic float64

// percentile is the form of a percentile: digits, with decimals or not.
var percentile = regexp.MustCompile(`^p([0-9]{1,2})(?:\.([0-9]{1,9}))?$`)

// UnmarshalText parses a statistic.
func (s *Statistic) UnmarshalText(text []byte) error {
	switch string(text) {
	case "mean":
		*s = 0
		return nil
	case "max":
		*s = controller.Max
		return nil
	}
	m := percentile.FindSubmatch(text)
	if m == nil {
		return fmt.Errorf("%q is not mean, max or a percentile pNN with 0 < NN < 100, such as p95 or p99.9", text)
	}
	// The digits as a whole number over a power of ten, both exact, so
	// that the quotient is the float nearest the decimal: p99.9 is 999/1000,
	// exactly the 0.999 a Go literal makes, where 99.9/100 is
	// 0.9990000000000001.
	n, _ := strconv.ParseUint(string(m[1])+string(m[2]), 10, 64)
	if n == 0 {
		return fmt.Errorf("%q is not a percentile pNN with 0 < NN < 100, such as p95 or p99.9", text)
	}
	*s = Statistic(float64(n) / math.Pow10(len(m[2])+2))
	return nil
}

// Quantile is the percentile as a fraction (0.95 for p95), 0 for the mean,
// 1 for the max.
func (s Statistic) Quantile() float64 { return float64(s) }

// String formats the statistic as it is written: mean, p95, p99.9, max.
func (s Statistic) String() string {
	return controller.Statistic(float64(s))
}

// Duration is a positive duration in Prometheus' forms: 15s, 1h30m, 30d.
type Duration model.Duration

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := model.ParseDuration(string(text))
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration such as 15s, 5m or 30d", text)
	}
	*d = Duration(v)
	return nil
}

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration in Prometheus' form, in days at most, as
// windows are given: 7d rather than 1w, 30d rather than 4w2d.
func (d Duration) String() string {
	var b strings.Builder
	rest := time.Duration(d)
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := rest / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			rest -= n * u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// Size is a number of bytes, written as 1073741824, 512MiB or 1GiB; KB, MB,
// GB and TB mean the same binary units as KiB, MiB, GiB and TiB.
type Size int64

var sizeUnits = map[string]float64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "KB": 1 << 10,
	"MiB": 1 << 20, "MB": 1 << 20,
	"GiB": 1 << 30, "GB": 1 << 30,
	"TiB": 1 << 40, "TB": 1 << 40,
}

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(text []byte) error {
	str := string(text)
	num := strings.TrimRight(str, "KMGTiB")
	unit, known := sizeUnits[str[len(num):]]
	v, err := strconv.ParseFloat(num, 64)
	if !known || err != nil || math.IsNaN(v) || v < 0 || v*unit > math.MaxInt64 {
		return fmt.Errorf("%q is not a size such as 512MiB or 1GiB", str)
	}
	*s = Size(math.Round(v * unit))
	return nil
}

// String formats the size in the largest binary unit it fills, with two
// decimals where it is not whole in it.
func (s Size) String() string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		n := int64(sizeUnits[u])
		switch {
		case s != 0 && int64(s)%n == 0:
			return strconv.FormatInt(int64(s)/n, 10) + u
		case int64(s) >= n:
			return strconv.FormatFloat(float64(s)/float64(n), 'f', 2, 64) + u
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}
