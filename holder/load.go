package holder

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Load is holder load, as the controller decides it and the holders hold
// it: the CPU as a share of the whole machine, memory and disk in bytes.
type Load struct {
	CPU          float64 // share of the whole machine, 0..1
	Memory, Disk int64   // bytes
}

// Usage is what the holders add right now, measured: the holders' CPU time
// from /proc/<pid>/stat (their rusage once ended), the memory holders'
// VmRSS from /proc/<pid>/status, the fill files' allocated blocks.
type Usage struct {
	// CPUTime is the CPU time of every holder process since Open, memory
	// holders (filling their ballast) and ended holders included: a
	// counter, so that every reader takes its own difference.
	CPUTime       time.Duration
	Memory, Disk  int64 // bytes
	CPUHolders    int
	MemoryHolders int
	DiskFiles     int
	// The failures of each resource's holders since Open, counters:
	// holders that ended by themselves, failed to start, were not ready or
	// did not answer in time; for disk, resizes of the fill that failed.
	CPUFailures, MemoryFailures, DiskFailures uint64
	// The starts of each kind refused since Open because the cgroup's
	// pids limit left too little room, counters.
	CPURefusals, MemoryRefusals uint64
}

// check rejects a Load that is not one.
func (d Load) check() error {
	var errs []error
	if math.IsNaN(d.CPU) || d.CPU < 0 || d.CPU > 1 {
		errs = append(errs, fmt.Errorf("desired CPU %v: not a share between 0 and 1", d.CPU))
	}
	if d.Memory < 0 {
		errs = append(errs, fmt.Errorf("desired memory %d: negative", d.Memory))
	}
	if d.Disk < 0 {
		errs = append(errs, fmt.Errorf("desired disk %d: negative", d.Disk))
	}
	return errors.Join(errs...)
}
