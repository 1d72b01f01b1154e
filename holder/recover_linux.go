package holder

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// isRunningEntry tells whether the registry entry's process still runs: its
// pid with the same start time and our holder command line of its kind.
func isRunningEntry(e holderEntry) bool {
	st, err := readProcStat(procfsRoot, e.Pid)
	if err != nil || st.exited() || st.StartTime != e.StartTime {
		return false
	}
	argv, err := readCmdline(procfsRoot, e.Pid)
	return err == nil && holderKindOf(argv) == e.Kind
}

// lockRecover takes an flock on the state dir itself, waiting for another
// Recover that holds it, so that two runs go one after the other: the second
// finds what the first left, and never claims what the first did, nor stops
// the first as the daemon (the first holds the lock file's lock meanwhile).
// Closing the file releases it.
func lockRecover(dir string) (*os.File, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	deadline := time.Now().Add(recoverLockTimeout)
	for {
		err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return d, nil
		case err == unix.EINTR:
			continue
		case err != unix.EWOULDBLOCK:
			d.Close()
			return nil, fmt.Errorf("locking state dir %s: %w", dir, err)
		case time.Now().After(deadline):
			d.Close()
			return nil, fmt.Errorf("another cro-exporter --recover on state dir %s still runs after %v; did nothing", dir, recoverLockTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopDaemon stops the daemon that holds the state dir's lock, if any, and
// returns the lock, held, or nil when it could not be taken.
func (rep *Report) stopDaemon(r resolved) *stateLock {
	f, pid := rep.lockOrHolder(r.StateDir)
	if pid == 0 {
		return lockOf(f)
	}
	daemon, err := openForeign(procfsRoot, pid, func(st procStat, argv []string) error {
		if isDaemon(procfsRoot, pid, argv) {
			return nil
		}
		return notOurs("pid %d (%s) is not a cro-exporter", pid, st.Comm)
	})
	if errors.Is(err, errNoProcess) {
		// It ended between the two looks; the lock is free or about to be.
		if waitForLock(f, daemonKillTimeout) {
			return &stateLock{f: f}
		}
		err = fmt.Errorf("pid %d is gone but the lock is still held", pid)
	}
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s is held by pid %d, which was not stopped: %v", f.Name(), pid, err))
		f.Close()
		return nil
	}
	defer daemon.close()
	if err := daemon.signal(unix.SIGTERM); err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("cro-exporter daemon (pid %d): %v", pid, err))
		f.Close()
		return nil
	}
	if waitForLock(f, daemonTermTimeout) {
		rep.Daemon = pid
		return &stateLock{f: f}
	}
	killErr := daemon.kill(daemonKillTimeout)
	if killErr == nil && waitForLock(f, daemonKillTimeout) {
		rep.Daemon = pid
		return &stateLock{f: f}
	}
	rep.Failures = append(rep.Failures, fmt.Sprintf("cro-exporter daemon (pid %d) still holds %s after SIGTERM and SIGKILL (%v)", pid, f.Name(), killErr))
	f.Close()
	return nil
}
