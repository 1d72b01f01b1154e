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
//
// Every rule below flags a host only when all of its conditions hold, so
// one resource kept above its threshold is enough: each preset holds CPU,
// the cheapest, and gives memory and disk a target of 0, which holds
// nothing. Its targets are the rule's published thresholds; the margin
// above them is the controller's, the same for every preset: a burst holds
// the target and the lift (2 points), a mean the target and the margin
// (half a point), and a period counts as at or above a target only when
// its mean surely is.
type Preset struct {
	// Quantiles are the objectives' quantiles: 0.95 for p95, Max for the
	// max; a resource not named is audited on its mean.
	Quantiles map[host.Resource]float64
	Window    time.Duration
	Period    time.Duration
	// Sub, when above 0, makes a period's value the max of the means of
	// its sub-periods of Sub.
	Sub time.Duration
	// Targets are the targets; a resource not named takes its spec's.
	Targets map[host.Resource]float64
	// CPUs, when above 0, is the CPU target in CPUs rather than as a
	// share of the machine (Google's 0.03 vCPU): the host's CPU count
	// converts it.
	CPUs float64
}

// The built-in defaults: the mean over 30 days, and, for a percentile, of
// 1-minute periods.
const (
	DefaultWindow = 30 * 24 * time.Hour
	DefaultPeriod = time.Minute
)

const aDay = 24 * time.Hour

// cpuOnly are the targets of a preset that holds CPU alone at cpu.
func cpuOnly(cpu float64) map[host.Resource]float64 {
	return map[host.Resource]float64{host.CPU: cpu, host.Memory: 0, host.Disk: 0}
}

// Presets are the rules by name; the README gives their sources and what
// each assumes where its provider publishes nothing.
var Presets = map[string]Preset{
	// The mean of every resource over 30 days at the spec's targets.
	"default": {},
	// Oracle Cloud reclaims an Always Free instance that is idle for 7
	// days: CPU under 20% at the 95th percentile (and network, and on A1
	// shapes memory). Oracle names no period: the 1-minute means of its
	// Monitoring service are assumed. Memory keeps the p95, at 0: on A1
	// shapes --target.memory=20% holds it too.
	"oracle-always-free": {
		Quantiles: map[host.Resource]float64{host.CPU: 0.95, host.Memory: 0.95},
		Window:    7 * aDay,
		Period:    time.Minute,
		Targets:   cpuOnly(0.20),
	},
	// Azure Advisor recommends shutting down a VM whose P95 of 30-minute
	// values, each the max of its 1-minute means, is under 3% over its
	// lookback (7 days by default, the shortest).
	"azure-advisor": {
		Quantiles: map[host.Resource]float64{host.CPU: 0.95},
		Window:    7 * aDay,
		Period:    30 * time.Minute,
		Sub:       time.Minute,
		Targets:   cpuOnly(0.03),
	},
	// Google's idle VM recommender flags a VM under 0.03 vCPU for 97% of
	// its runtime over an observation period of 1 to 14 days: every day
	// held is every period held.
	"gcp-idle-vm": {
		Quantiles: map[host.Resource]float64{host.CPU: 0.97},
		Window:    aDay,
		Period:    time.Minute,
		Targets:   cpuOnly(0),
		CPUs:      0.03,
	},
	// AWS Trusted Advisor flags an instance whose daily mean CPU is at
	// most 10% on 4 or more of the last 14 days: the 4th lowest of 14
	// daily means, p25 by nearest rank, must be above 10%.
	"aws-trusted-advisor": {
		Quantiles: map[host.Resource]float64{host.CPU: 0.25},
		Window:    14 * aDay,
		Period:    aDay,
		Targets:   cpuOnly(0.10),
	},
	// Huawei Cloud flags an ECS whose CPU is at most 3% in every sample
	// of 7 days (the shortest window it takes): the max of Cloud Eye's
	// 5-minute samples must be above 3%.
	"huawei-idle-ecs": {
		Quantiles: map[host.Resource]float64{host.CPU: Max},
		Window:    7 * aDay,
		Period:    5 * time.Minute,
		Targets:   cpuOnly(0.03),
	},
	// OCI Cloud Advisor flags an instance whose mean CPU is under its
	// profile's threshold: 15%, the highest (Aggressive) profile's, over
	// 7 days (Oracle names no window).
	"oci-cloud-advisor": {
		Window:  7 * aDay,
		Targets: cpuOnly(0.15),
	},
}

// WithTargets is the targets given, and the preset's for the resources
// given none; a resource with neither is left out, for its spec's. A CPU
// target in CPUs is converted for a host of cpus.
func (p Preset) WithTargets(given map[host.Resource]float64, cpus int) map[host.Resource]float64 {
	targets := maps.Clone(p.Targets)
	if targets == nil {
		targets = map[host.Resource]float64{}
	}
	if p.CPUs > 0 && cpus > 0 {
		targets[host.CPU] = p.CPUs / float64(cpus)
	}
	maps.Copy(targets, given)
	return targets
}
