package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// How long Recover waits for a daemon it asked to stop (variables for the
// tests).
var (
	daemonTermTimeout = 10 * time.Second // after SIGTERM, for the lock
	daemonKillTimeout = 5 * time.Second  // after SIGKILL, for the lock
)

// Recover stops whatever cro-exporter left running or allocated on this
// host, for `cro-exporter --recover`: the daemon holding the state dir's
// lock (SIGTERM, then SIGKILL after 10 s, and only when that pid really is
// a cro-exporter), every holder in the registry whose pid, start time and
// command line still match and that is marked with this state dir, every
// holder a scan of /proc finds that is marked with this state dir or whose
// parent is gone, every fill file with the fill dir, when the dir's marker
// names this state dir, and the temporary files (*.tmp) in the state dir.
// It never touches the averages' history, nor another cro-exporter's
// holders or fill. Two runs on one state dir go one after the other. What
// it could not do is in the Report's Failures; the error is for a Config it
// cannot work with, as Open would refuse it.
func Recover(cfg Config) (Report, error) {
	var rep Report
	r, err := resolve(cfg)
	if err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	info, err := os.Stat(r.StateDir)
	stateExists := err == nil && info.IsDir()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		rep.Failures = append(rep.Failures, fmt.Sprintf("state dir %s: %v", r.StateDir, err))
	}

	var lock *stateLock
	var entries []holderEntry
	var before daemonState
	if stateExists {
		serial, err := lockRecover(r.StateDir)
		if err != nil {
			rep.Failures = append(rep.Failures, err.Error())
			return rep, nil
		}
		defer serial.Close()
		if r.owner, err = ownerOf(r.StateDir); err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("state dir %s: %v", r.StateDir, err))
		}
		before = daemonStateOf(r)
		lock = rep.stopDaemon(r)
		aside := ""
		entries, aside, err = readRegistry(r.StateDir, time.Now())
		switch {
		case aside != "":
			rep.Notes = append(rep.Notes, fmt.Sprintf("the holder registry was not usable; moved it to %s", aside))
		case err != nil:
			rep.Failures = append(rep.Failures, err.Error())
		}
	}

	c := cleanLeftovers(r, entries)
	rep.Holders = append(rep.Holders, c.stopped...)
	rep.Notes = append(rep.Notes, c.notes...)
	rep.Failures = append(rep.Failures, c.failures...)

	if r.FillDir != "" {
		rep.removeFill(r)
	}
	if stateExists {
		rep.removeTemp(r.StateDir)
	}
	if rep.Daemon != 0 {
		rep.creditDaemon(r, before)
	}
	if lock != nil {
		if _, err := os.Lstat(filepath.Join(r.StateDir, registryFile)); err == nil || len(c.survivors) > 0 {
			if err := saveRegistry(r.StateDir, c.survivors); err != nil {
				rep.Failures = append(rep.Failures, err.Error())
			}
		}
		if err := lock.releaseRecovered(); err != nil {
			rep.Failures = append(rep.Failures, err.Error())
		}
	}
	return rep, nil
}

// daemonState is what a running daemon held before Recover stopped it.
type daemonState struct {
	holders   []holderEntry // from the registry, verified running
	fillFiles int
	fillBytes int64
}

// daemonStateOf reads what the daemon holds, without changing anything: a
// daemon that stops cleanly removes it all by itself, and the report should
// still say what was freed.
func daemonStateOf(r resolved) daemonState {
	var s daemonState
	var entries []holderEntry
	statefile.ParseFile(filepath.Join(r.StateDir, registryFile), func(data []byte) (err error) {
		entries, err = parseRegistry(data)
		return err
	})
	for _, e := range entries {
		if isRunningEntry(e) {
			s.holders = append(s.holders, e)
		}
	}
	if r.FillDir != "" {
		s.fillFiles, s.fillBytes, _ = countFill(r.FillDir, r.owner)
	}
	return s
}

// creditDaemon adds to the report what the daemon Recover stopped freed by
// itself: the holders it ran that are gone now, and its fill files, when
// none is left.
func (rep *Report) creditDaemon(r resolved, before daemonState) {
	for _, e := range before.holders {
		if slices.ContainsFunc(rep.Holders, func(h StoppedHolder) bool { return h.Pid == e.Pid }) || isRunningEntry(e) {
			continue
		}
		rep.Holders = append(rep.Holders, StoppedHolder{Pid: e.Pid, Kind: e.Kind})
	}
	if before.fillFiles <= rep.FillFiles {
		return
	}
	if _, err := os.Lstat(r.FillDir); err == nil {
		if files, _, ok := countFill(r.FillDir, r.owner); !ok || files > 0 {
			return
		}
	}
	rep.FillDir, rep.FillFiles, rep.FillBytes = filepath.Clean(r.FillDir), before.fillFiles, before.fillBytes
}

// recoverLockTimeout bounds the wait of a Recover for another one on the
// same state dir (a variable for the tests).
var recoverLockTimeout = 2 * time.Minute

// waitForLock tries to take the lock on f every 50 ms for up to timeout.
func waitForLock(f *os.File, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := tryLock(f); ok || err != nil {
			return ok
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockRecover takes the recover lock of the state dir, waiting for another
// Recover that holds it, so that two runs go one after the other: the second
// finds what the first left, and never claims what the first did, nor stops
// the first as the daemon (the first holds the lock file's lock meanwhile).
// Closing the file releases it.
func lockRecover(dir string) (*os.File, error) {
	f, err := openRecoverLock(dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(recoverLockTimeout)
	for {
		ok, err := tryRecoverLock(f)
		switch {
		case ok:
			return f, nil
		case err != nil:
			f.Close()
			return nil, err
		case time.Now().After(deadline):
			f.Close()
			return nil, fmt.Errorf("another cro-exporter --recover on state dir %s still runs after %v; did nothing", dir, recoverLockTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockOrHolder opens the state dir's lock file and takes its lock (pid 0),
// or names the pid of the daemon that holds it. A nil file is a failure,
// in the report.
func (rep *Report) lockOrHolder(dir string) (f *os.File, pid int) {
	f, err := openLockFile(dir)
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		return nil, 0
	}
	locked, err := tryLock(f)
	if err == nil && !locked {
		if pid = waitLockPid(f); pid == 0 {
			err = fmt.Errorf("%s is held by a process that did not write its pid; it was not stopped", f.Name())
		}
	}
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		f.Close()
		return nil, 0
	}
	return f, pid
}

// lockOf is the held lock of f, a lock file whose lock was taken; nil for
// no file.
func lockOf(f *os.File) *stateLock {
	if f == nil {
		return nil
	}
	return &stateLock{f: f}
}
