// Package host reads the host into a Sample: the utilization of its
// resources, as an auditor's agent measures it: on Linux through procfs
// and statfs, on Windows through GetSystemTimes, GlobalMemoryStatusEx and
// GetDiskFreeSpaceEx.
package host

import (
	"slices"
	"time"
)

// Resource names one of the three resources cro-exporter holds at target.
type Resource string

// The resources, as they appear in the `resource` label.
const (
	CPU    Resource = "cpu"
	Memory Resource = "memory"
	Disk   Resource = "disk"
)

// Resources lists every resource in the order metrics and logs use.
var Resources = [...]Resource{CPU, Memory, Disk}

// Each is one T for each resource, in the order of Resources.
type Each[T any] [len(Resources)]T

// Of is r's T, to set; an unknown resource panics, never passes for
// another.
func (e *Each[T]) Of(r Resource) *T { return &e[slices.Index(Resources[:], r)] }

// At is r's T.
func (e Each[T]) At(r Resource) T { return *e.Of(r) }

// Sample is one reading of the host.
type Sample struct {
	Time time.Time
	// CPUs is the number of CPUs in /proc/stat.
	CPUs int
	// CPU is the busy fraction of all CPUs together (total - idle - iowait)
	// since the previous read of /proc/stat, 0..1; on the first read, since
	// boot.
	CPU float64
	// CPUSpan is the time CPU stands for: since the previous read, or the
	// uptime on the first; 0 where /proc/stat did not move.
	CPUSpan time.Duration
	// MemoryTotal and MemoryAvailable are MemTotal and MemAvailable from
	// /proc/meminfo, in bytes.
	MemoryTotal, MemoryAvailable uint64
	// DiskSize, DiskUsed and DiskAvailable describe the filesystem holding
	// --disk.path, from statfs, in bytes, as df's "Size", "Used" and
	// "Avail": DiskUsed is (f_blocks - f_bfree) and DiskAvailable f_bavail,
	// what an unprivileged user may still write. The blocks reserved for
	// root are in DiskSize alone.
	DiskSize, DiskUsed, DiskAvailable uint64
	// DiskErr says why the disk was not measured: statfs failed, or
	// --disk.path is no longer on the filesystem it was on at start. The
	// Disk fields are then 0, and the disk is neither averaged nor filled.
	// nil when it was measured.
	DiskErr error
	// Pressure holds the cumulative stall times of /proc/pressure/{cpu,memory,io}
	// (io filed under Disk); it is empty where the kernel has no PSI.
	Pressure map[Resource]Stall
}

// Stall is the cumulative time in which some, or all, non-idle tasks were
// stalled waiting for a resource, as /proc/pressure/<resource> counts it.
type Stall struct {
	Some, Full time.Duration
}

// Usage is the sample's utilization of r as a ratio 0..1: the CPU busy
// fraction, (MemTotal - MemAvailable) / MemTotal, or used / (used + avail)
// of the disk, as df's "Use%" counts it.
func (s Sample) Usage(r Resource) float64 {
	switch r {
	case CPU:
		return s.CPU
	case Memory:
		return Ratio(s.MemoryTotal-min(s.MemoryAvailable, s.MemoryTotal), s.MemoryTotal)
	case Disk:
		return Ratio(s.DiskUsed, s.DiskUsable())
	}
	return 0
}

// DiskUsable is what disk usage is a share of: used and available bytes
// together, as df, psutil and gopsutil count it. It leaves out the blocks
// reserved for root, which are neither; a fill moves bytes from available
// to used and leaves it as it was.
func (s Sample) DiskUsable() uint64 { return s.DiskUsed + s.DiskAvailable }

// Ratio is part/whole, or 0 where whole is 0, so that an empty reading never
// turns into NaN.
func Ratio[T int64 | uint64](part T, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}
