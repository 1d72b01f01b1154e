package holder

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// notOursError says why a process is not ours; it is errNotOurs.
type notOursError struct{ msg string }

func (e *notOursError) Error() string        { return e.msg }
func (e *notOursError) Is(target error) bool { return target == errNotOurs }

// notOurs is an errNotOurs with its reason.
func notOurs(format string, args ...any) error {
	return &notOursError{msg: fmt.Sprintf(format, args...)}
}

// openForeign opens pid and checks, after the process handle is open, that
// it is the process check accepts. The check sees its stat and command
// line; a process gone, ended, or refused by check is errNoProcess or
// check's error and is never signalled. Once the handle is open, a pid
// reused by another process does not matter: the handle names the process
// that was checked.
func openForeign(proc string, pid int, check func(procStat, []string) error) (*foreignProcess, error) {
	f, err := openPidfd(pid)
	if err != nil {
		return nil, err
	}
	st, err := readProcStat(proc, pid)
	var argv []string
	if err == nil {
		if st.exited() {
			err = fmt.Errorf("pid %d: %w", pid, errNoProcess)
		} else {
			argv, err = readCmdline(proc, pid)
		}
	}
	if err == nil {
		err = check(st, argv)
	}
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// kill kills the process and waits up to timeout for it to end.
func (f *foreignProcess) kill(timeout time.Duration) error {
	if err := f.signal(unix.SIGKILL); err != nil {
		return err
	}
	if !f.wait(timeout) {
		return fmt.Errorf("pid %d still runs %s after SIGKILL", f.pid, timeout)
	}
	return nil
}
