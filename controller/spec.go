package controller

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// Spec is the host's size class, picked from its memory, and the default
// target it gives every resource.
type Spec struct {
	// Name is small, medium or large.
	Name string
	// Target is the default target ratio of every resource.
	Target float64
}

// The spec boundaries on nominal memory, and the targets at them.
const (
	smallMax    = 8 << 30
	largeMin    = 16 << 30
	smallTarget = 0.25
	largeTarget = 0.40
)

// Classify picks the spec of a host with memTotal bytes of MemTotal (from
// /proc/meminfo): small up to 8 GiB nominal, large from 16 GiB, and medium in
// between with a target linear on the nominal size.
func Classify(memTotal uint64) Spec {
	size := nominal(memTotal)
	switch {
	case size <= smallMax:
		return Spec{Name: "small", Target: smallTarget}
	case size >= largeMin:
		return Spec{Name: "large", Target: largeTarget}
	}
	f := float64(size-smallMax) / float64(largeMin-smallMax)
	return Spec{Name: "medium", Target: smallTarget + f*(largeTarget-smallTarget)}
}

// nominal is the memory size the host was sold with as far as memTotal
// tells: memTotal itself, or the boundary just above it. The kernel and
// firmware keep some memory for themselves, so MemTotal is a little under
// what the host was sold with: within 10% under a boundary counts as the
// boundary.
func nominal(memTotal uint64) uint64 {
	for _, boundary := range []uint64{smallMax, largeMin} {
		if memTotal < boundary && memTotal >= boundary-boundary/10 {
			return boundary
		}
	}
	return memTotal
}

// Targets returns the target ratio of every resource: the spec's default,
// capped at the ceiling, unless overrides has one for it. An override is
// explicit, so one above the ceiling is an error rather than quietly capped;
// so is a ratio outside 0..1. Errors name the flags, for the CLI to print as
// usage errors.
func Targets(spec Spec, overrides map[host.Resource]float64, ceiling float64) (map[host.Resource]float64, error) {
	if !isRatio(ceiling) {
		return nil, fmt.Errorf("--ceiling=%s is not a ratio between 0 and 1", formatRatio(ceiling))
	}
	targets := make(map[host.Resource]float64, len(host.Resources))
	for _, r := range host.Resources {
		targets[r] = min(spec.Target, ceiling)
	}
	// Sorted, so that of several bad overrides the same one is reported.
	for _, r := range slices.Sorted(maps.Keys(overrides)) {
		t := overrides[r]
		switch _, known := targets[r]; {
		case !known:
			return nil, fmt.Errorf("--target.%s: unknown resource", r)
		case !isRatio(t):
			return nil, fmt.Errorf("--target.%s=%s is not a ratio between 0 and 1", r, formatRatio(t))
		case t > ceiling:
			return nil, fmt.Errorf("--target.%s=%s is above --ceiling=%s", r, formatRatio(t), formatRatio(ceiling))
		}
		targets[r] = t
	}
	return targets, nil
}

// isRatio reports whether r is in 0..1; NaN is not.
func isRatio(r float64) bool {
	return r >= 0 && r <= 1
}

// formatRatio prints r with two decimals, as people write ratios, unless
// rounding would hide what makes it wrong (0.901 above 0.90).
func formatRatio(r float64) string {
	s := strconv.FormatFloat(r, 'f', 2, 64)
	if p, err := strconv.ParseFloat(s, 64); err != nil || p != r {
		s = strconv.FormatFloat(r, 'f', -1, 64)
	}
	return s
}
