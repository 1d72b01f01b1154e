//go:build !linux

package holder

import (
	"errors"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// holderSysProcAttr is how holder processes are started; only Linux has a
// parent-death signal.
func holderSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// foreignProcess is a process that is not our child. Without pidfds a
// signal could reach a process that reused the pid, so none is ever sent.
type foreignProcess struct{ pid int }

var errNoPidfd = errors.New("signalling a process that is not our child needs Linux pidfds")

func openPidfd(pid int) (*foreignProcess, error)          { return nil, errNoPidfd }
func (f *foreignProcess) signal(sig unix.Signal) error    { return errNoPidfd }
func (f *foreignProcess) wait(timeout time.Duration) bool { return false }
func (f *foreignProcess) close()                          {}
