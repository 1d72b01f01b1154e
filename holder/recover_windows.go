package holder

import (
	"errors"
	"fmt"
	"os"

	"github.com/cro-exporter/cro-exporter/internal/winholder"
)

// openRecoverLock opens the state dir's lock file, whose byte after the
// daemon's is the recover lock.
func openRecoverLock(dir string) (*os.File, error) { return openLockFile(dir) }

// tryRecoverLock takes the recover lock without waiting.
func tryRecoverLock(f *os.File) (bool, error) { return lockByte(f, lockOffset+1) }

// stopDaemon stops the daemon that holds the state dir's lock, if any, and
// returns the lock, held, or nil when it could not be taken. It asks the
// daemon to stop (askStop); one that has not let the lock go within
// daemonTermTimeout is ended with TerminateProcess, and its job object
// then ends its holders.
func (rep *Report) stopDaemon(r resolved) *stateLock {
	f, pid := rep.lockOrHolder(r.StateDir)
	if pid == 0 {
		return lockOf(f)
	}
	daemon, err := winholder.Open(pid)
	switch {
	case errors.Is(err, winholder.ErrNoProcess):
		// It ended between the two looks; the lock is free or about to be.
		if waitForLock(f, daemonKillTimeout) {
			return lockOf(f)
		}
		err = fmt.Errorf("pid %d is gone but the lock is still held", pid)
	case err == nil && !isCroExporter(daemon.Image):
		daemon.Close()
		err = fmt.Errorf("pid %d (%s) is not a cro-exporter", pid, daemon.Image)
	}
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s is held by pid %d, which was not stopped: %v", f.Name(), pid, err))
		f.Close()
		return nil
	}
	defer daemon.Close()
	if rep.askStop(r, pid) && waitForLock(f, daemonTermTimeout) {
		rep.Daemon = pid
		return lockOf(f)
	}
	killErr := daemon.Kill(daemonKillTimeout)
	if killErr == nil && waitForLock(f, daemonKillTimeout) {
		rep.Daemon = pid
		return lockOf(f)
	}
	rep.Failures = append(rep.Failures, fmt.Sprintf("cro-exporter daemon (pid %d) still holds %s after TerminateProcess (%v)", pid, f.Name(), killErr))
	f.Close()
	return nil
}

// askStop asks the daemon pid to stop, as SIGTERM does on Linux, and tells
// whether it could: the service through the service control manager, which
// would otherwise count its end as a failure, any other daemon through its
// state dir's stop event (winholder.StopEvent).
func (rep *Report) askStop(r resolved, pid int) bool {
	if svcPid, err := winholder.ServicePid(winholder.ServiceName); err == nil && svcPid == pid {
		if err := winholder.StopService(winholder.ServiceName); err != nil {
			rep.Notes = append(rep.Notes, err.Error())
			return false
		}
		return true
	}
	asked, err := winholder.AskStop(r.owner)
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error())
	}
	return asked
}
