package controller

import (
	"maps"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// Preset is a known auditor's rule: the defaults it gives the objectives,
// the window, the audit period and the targets. A zero field, or a
// resource it does not name, leaves the built-in default; what is given
// (a flag) wins over the preset.
type Preset struct {
	// Quantiles are the objectives' quantiles: 0.95 for p95; a resource
	// not named is audited on its mean.
	Quantiles map[host.Resource]float64
	Window    time.Duration
	Period    time.Duration
	// Targets are the targets; a resource not named takes its spec's.
	Targets map[host.Resource]float64
}

// The built-in defaults: the mean over 30 days, and, for a percentile, of
// 1-minute periods.
const (
	DefaultWindow = 30 * 24 * time.Hour
	DefaultPeriod = time.Minute
)

// Presets are the rules by name; the README gives their sources.
var Presets = map[string]Preset{
	// The mean of every resource over 30 days at the spec's targets.
	"default": {},
	// Oracle Cloud reclaims an Always Free instance that is idle for 7
	// days: CPU under 20% at the 95th percentile, and on A1 shapes memory
	// as well. Oracle names no period: the 1-minute means of its
	// Monitoring service are assumed, and the same p95 for memory. It
	// does not audit disk.
	"oracle-always-free": {
		Quantiles: map[host.Resource]float64{host.CPU: 0.95, host.Memory: 0.95},
		Window:    7 * 24 * time.Hour,
		Period:    time.Minute,
		Targets:   map[host.Resource]float64{host.CPU: 0.20, host.Memory: 0.20, host.Disk: 0},
	},
}

// WithTargets is the targets given, and the preset's for the resources
// given none; a resource with neither is left out, for its spec's.
func (p Preset) WithTargets(given map[host.Resource]float64) map[host.Resource]float64 {
	targets := maps.Clone(p.Targets)
	if targets == nil {
		targets = map[host.Resource]float64{}
	}
	maps.Copy(targets, given)
	return targets
}
