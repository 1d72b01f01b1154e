package holder

import (
	"fmt"
	"runtime"
)

// A holder is a Go process and each of its threads takes one of the
// cgroup's pids: a memory holder runs 6, a CPU burner 10 or 11 on 2 CPUs
// (one locked thread per CPU, the rest the Go runtime's), measured. The
// daemon's own Go runtime makes a thread whenever a goroutine blocks in a
// system call and dies ("fatal error: newosproc") when the cgroup refuses
// one, so daemonThreads more are always left to it.
const (
	memoryHolderThreads = 8
	cpuHolderThreads    = 10 // plus one per CPU
	daemonThreads       = 8
)

// holderThreads is the most threads a holder of kind runs on cpus CPUs.
func holderThreads(kind Kind, cpus int) int64 {
	if kind == kindCPU {
		return int64(cpuHolderThreads + cpus)
	}
	return memoryHolderThreads
}

// roomFor tells whether a holder of kind may start with free pids left in
// the cgroup: its threads and the daemon's headroom must fit.
func roomFor(kind Kind, cpus int, free int64) bool {
	return free >= holderThreads(kind, cpus)+daemonThreads
}

// pidsAllow tells whether the cgroup's pids limit leaves room for a holder
// of r's kind, counting and logging a refusal. A limit that cannot be read
// is no reason to refuse: the loop, which reads the same files every tick,
// reports that once.
func (m *Manager) pidsAllow(r *restarts) bool {
	if m.cfg.Pids == nil {
		return true
	}
	pids, err := m.cfg.Pids()
	if err != nil {
		m.logger.Debug("reading the cgroup's pids limit", "err", err)
		return true
	}
	need := holderThreads(r.kind, runtime.NumCPU())
	if roomFor(r.kind, runtime.NumCPU(), pids.Free()) {
		if r.refusing {
			r.refusing = false
			m.logger.Info(fmt.Sprintf("%s holders start again: the cgroup's pids limit leaves room", r.kind), "pids_max", pids.Max, "pids_current", pids.Current)
		}
		return true
	}
	r.refusals++
	if !r.refusing {
		r.refusing = true
		m.logger.Warn(fmt.Sprintf("not starting %s holders: the cgroup's pids limit leaves %d pids, and a holder needs %d plus %d for the daemon's own threads",
			r.kind, pids.Free(), need, daemonThreads), "pids_max", pids.Max, "pids_current", pids.Current)
	}
	return false
}
