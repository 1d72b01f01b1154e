package holder

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// holderSysProcAttr is how holder processes are started: with a
// parent-death signal as the backup of the stdin pipe, so that the kernel
// kills a holder whose parent died without its pipe closing.
func holderSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

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
