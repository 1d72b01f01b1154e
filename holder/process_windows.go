package holder

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/winholder"
)

// jobProcesses is Windows' processes: holders started in a job object that
// kills them when its handle closes, which the daemon keeps open for its
// life, so that its death, however it comes, ends its holders.
type jobProcesses struct{ job *winholder.Job }

// newProcesses makes the daemon's job object. Its handle is never closed
// before the process ends: closing it would kill every holder in it.
func newProcesses() (processes, error) {
	job, err := winholder.NewJob()
	if err != nil {
		return nil, err
	}
	return jobProcesses{job: job}, nil
}

func (p jobProcesses) start(cmd *exec.Cmd) error { return p.job.Start(cmd) }

// times is the process's creation time (FILETIME, 100 ns units) and its
// kernel and user time.
func (jobProcesses) times(pid int) (uint64, time.Duration, error) {
	start, cpu, err := winholder.Times(pid)
	return start, cpu, noProcess(pid, err)
}

// resident is the process's working set.
func (jobProcesses) resident(pid int) (int64, error) {
	rss, err := winholder.Resident(pid)
	return rss, noProcess(pid, err)
}

// noProcess maps winholder's ErrNoProcess to the package's errNoProcess.
func noProcess(pid int, err error) error {
	if errors.Is(err, winholder.ErrNoProcess) {
		return fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	return err
}

// selfExe is the binary we run: Windows does not let an upgrade replace a
// running binary's file.
func selfExe() (string, error) { return os.Executable() }
