package controller

import (
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// State is everything the exporter shows: the latest sample and what the
// controller made of it. The loop builds a new State every tick and publishes
// it; a scrape only reads the last one published.
type State struct {
	Sample host.Sample
	// Spec is the host's spec class: small, medium or large.
	Spec string
	// Ceiling is the ratio no target or setpoint may pass.
	Ceiling float64
	// MemoryReserve and DiskReserve are the bytes of MemAvailable and of
	// free disk space holders always leave to real work.
	MemoryReserve, DiskReserve int64
	// Interval is the time between two samples of the host.
	Interval time.Duration
	// SaveFailures counts the failed saves of the averages since the start.
	SaveFailures uint64
	// ClockSteps counts the steps of the wall clock, either way, seen
	// between two samples since the start.
	ClockSteps uint64
	// DiskLosses counts the times since the start the disk stopped being
	// measured (Sample.DiskErr).
	DiskLosses uint64
	Resources  map[host.Resource]ResourceState
}

// ResourceState is what the controller knows of one resource.
type ResourceState struct {
	// Statistic is what the auditor computes of the resource's usage
	// over Window: "mean", or a percentile of Period values such as "p95",
	// or "max".
	Statistic string
	// Window is the trailing window the auditor looks at; the average's
	// time constant is half of it.
	Window time.Duration
	// Period is the audit period whose means a percentile is taken of,
	// aligned to the clock; 0 for the mean.
	Period time.Duration
	// Subperiod, when above 0, makes a period's value the max of the
	// means of its sub-periods of this length.
	Subperiod time.Duration
	// Audit is the statistic as the auditor computes it now over the
	// trailing window: the average for the mean; for a percentile, that
	// percentile (nearest rank) of the window's period means, periods
	// nobody saw counted as 0.
	Audit float64
	// Passing is, for a percentile, the share of the window's periods whose
	// mean is at or above the target; Needed is how many more such periods
	// the window needs for the percentile to reach the target (0 when it
	// does).
	Passing float64
	Needed  int
	// Average is the time-decayed average of total usage, 0..1.
	Average float64
	// History is how much history the average holds.
	History time.Duration
	// Target is the ratio the average must reach.
	Target float64
	// Shortfall is how far under Target the most the holders may bring
	// usage to stays, while a limit keeps the target out of reach: the
	// ceiling, a reserve, or the daemon's cgroup; 0 otherwise.
	Shortfall float64
	// Setpoint is the total usage the controller aims at now, 0..1.
	Setpoint float64
	// Holders counts the holder processes (or fill files) of this resource.
	Holders int
	// HolderShare is the share of the resource the holders take, 0..1.
	HolderShare float64
	// HolderBytes is what memory or disk holders occupy, in bytes.
	HolderBytes uint64
	// Releases counts, by reason, the times holder load was given back
	// early, since the start.
	Releases [len(Reasons)]uint64
	// Failures counts the holders that failed (ended by themselves, failed
	// to start, fill or answer; fill that could not be resized) since the
	// start.
	Failures uint64
	// Refusals counts the holder starts refused because the daemon's
	// cgroup had too few pids left (cpu and memory only).
	Refusals uint64
	// HoldOff is how long the holders may not grow yet after a pressure
	// release (memory only).
	HoldOff time.Duration
}

// Reason is why holder load was given back before the average said so.
type Reason int

// The reasons, as the `reason` label has them: memory pressure (MemAvailable
// under its reserve between ticks), free memory or disk space under its
// reserve at a tick, and real usage rising into the holders' room.
const (
	ReasonPressure Reason = iota
	ReasonReserve
	ReasonRealUsage
)

// Reasons lists every reason in the order metrics use.
var Reasons = [...]Reason{ReasonPressure, ReasonReserve, ReasonRealUsage}

// String is the reason as the `reason` label has it.
func (r Reason) String() string {
	return [...]string{"pressure", "reserve", "real_usage"}[r]
}

// Releasable tells whether r's holders can be released for reason: only
// memory has a pressure watcher, and CPU no reserve.
func (reason Reason) Releasable(r host.Resource) bool {
	switch reason {
	case ReasonPressure:
		return r == host.Memory
	case ReasonReserve:
		return r != host.CPU
	}
	return true
}
