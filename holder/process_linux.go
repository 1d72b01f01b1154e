package holder

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/linux"
	"golang.org/x/sys/unix"
)

// procRoot is Linux's processes: holders started with a parent-death
// signal, and told of by /proc under this procfs root.
type procRoot string

// newProcesses is the holders' processes: /proc's, which cannot fail.
func newProcesses() (processes, error) { return procRoot(procfsRoot), nil }

// start starts cmd with a parent-death signal as the backup of the stdin
// pipe, so that the kernel kills a holder whose parent died without its
// pipe closing.
func (procRoot) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return startOnLockedThread(cmd)
}

// times reads /proc/<pid>/stat: its start time and utime+stime.
func (p procRoot) times(pid int) (uint64, time.Duration, error) {
	st, err := readProcStat(string(p), pid)
	return st.StartTime, time.Duration(st.UTime+st.STime) * time.Second / linux.UserHZ, err
}

func (p procRoot) resident(pid int) (int64, error) { return readRSS(string(p), pid) }

// foreignProcess is a process that is not our child, held through a pidfd
// (pidfd_open(2), Linux 5.3) so that a signal never reaches another process
// that reused its pid.
type foreignProcess struct {
	pid int
	fd  int
}

// openPidfd opens a pidfd on pid; a pid that does not exist is
// errNoProcess.
func openPidfd(pid int) (*foreignProcess, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: pidfd_open: %w", pid, err)
	}
	return &foreignProcess{pid: pid, fd: fd}, nil
}

// signal sends sig to the process; one that has ended already is no error.
func (f *foreignProcess) signal(sig unix.Signal) error {
	err := unix.PidfdSendSignal(f.fd, sig, nil, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d: sending %v: %w", f.pid, sig, err)
	}
	return nil
}

// wait waits up to timeout for the process to end, and tells whether it
// did: a pidfd polls readable once its process has ended.
func (f *foreignProcess) wait(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
	for {
		left := max(time.Until(deadline), 0)
		n, err := unix.Poll(fds, int(left.Milliseconds()))
		switch {
		case err == nil && n > 0:
			return true
		case err != nil && !errors.Is(err, unix.EINTR):
			return false
		case left == 0:
			return false
		}
	}
}

func (f *foreignProcess) close() { unix.Close(f.fd) }

// startRequest asks the starter thread to start a command.
type startRequest struct {
	cmd  *exec.Cmd
	done chan<- error
}

var (
	starterOnce sync.Once
	starter     chan startRequest
)

// startOnLockedThread starts cmd from one goroutine locked to its OS thread
// for the life of the process. The kernel sends a child its parent-death
// signal when the thread that forked it exits, not the process: a thread the
// Go runtime may end at any time would kill holders for nothing.
func startOnLockedThread(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		starter = make(chan startRequest)
		go func() {
			// Never unlocked: a locked goroutine that returns takes its
			// thread with it, and the parent-death signals would fire.
			runtime.LockOSThread()
			for req := range starter {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	starter <- startRequest{cmd: cmd, done: done}
	return <-done
}
