package holder

import (
	"errors"
	"fmt"
	"os"

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

// openRecoverLock opens the state dir itself, whose flock is the recover
// lock.
func openRecoverLock(dir string) (*os.File, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return d, nil
}

// tryRecoverLock takes the recover lock without waiting.
func tryRecoverLock(d *os.File) (bool, error) { return tryLock(d) }

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
