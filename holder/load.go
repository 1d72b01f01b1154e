package holder

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// Load is holder load, as the controller decides it and the holders hold
// it: the CPU as a share of the whole machine, memory and disk in bytes.
type Load struct {
	CPU          float64 // share of the whole machine, 0..1
	Memory, Disk int64   // bytes
}

// Held is what the holders hold right now, measured, per resource: the
// holders' CPU time from /proc/<pid>/stat (their rusage once ended), the
// memory holders' VmRSS from /proc/<pid>/status, the fill files' allocated
// blocks.
type Held struct {
	// CPUTime is the CPU time of every holder process since Open, memory
	// holders (filling their ballast) and ended holders included: a
	// counter, so that every reader takes its own difference.
	CPUTime time.Duration
	// Bytes is what memory ballast (resident) and disk fill (allocated)
	// hold; the CPU's is 0.
	Bytes host.Each[int64]
	// Holders counts the holder processes (cpu, memory) or fill files
	// (disk).
	Holders host.Each[int]
	// Failures counts, since Open, the holders that ended by themselves,
	// failed to start, were not ready or did not answer in time; for disk,
	// the resizes of the fill that failed.
	Failures host.Each[uint64]
	// Refusals counts, since Open, the starts refused because the cgroup's
	// pids limit left too little room (cpu and memory).
	Refusals host.Each[uint64]
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
