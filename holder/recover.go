package holder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// How long Recover waits for a daemon it asked to stop (variables for the
// tests).
var (
	daemonTermTimeout = 10 * time.Second // after SIGTERM, for the lock
	daemonKillTimeout = 5 * time.Second  // after SIGKILL, for the lock
)

// errNotOurs marks a process that is not the one we look for, such as a
// pid reused by another process. It is left alone.
var errNotOurs = errors.New("not ours")

// notOursError says why a process is not ours; it is errNotOurs.
type notOursError struct{ msg string }

func (e *notOursError) Error() string        { return e.msg }
func (e *notOursError) Is(target error) bool { return target == errNotOurs }

// notOurs is an errNotOurs with its reason.
func notOurs(format string, args ...any) error {
	return &notOursError{msg: fmt.Sprintf(format, args...)}
}

// StoppedHolder is a holder process Recover (or Open) killed.
type StoppedHolder struct {
	Pid  int
	Kind Kind
}

// Report is what Recover did.
type Report struct {
	// Daemon is the pid of the cro-exporter daemon that was stopped, 0 when
	// none was running.
	Daemon int
	// Holders are the holder processes killed.
	Holders []StoppedHolder
	// FillDir holds the FillFiles fill files removed, which held FillBytes
	// bytes of allocated blocks.
	FillDir   string
	FillFiles int
	FillBytes int64
	// TempFiles are the temporary files removed from the state dir.
	TempFiles []string
	// Notes say what was left alone and why, such as a pid in the registry
	// that another process has taken, or a holder of another live daemon.
	Notes []string
	// Failures name what could not be stopped or removed, and why.
	Failures []string
}

// Failed tells whether something could not be stopped or removed: the
// --recover command exits 1 when it did.
func (r *Report) Failed() bool { return len(r.Failures) > 0 }

// Nothing tells whether there was nothing to stop or remove.
func (r *Report) Nothing() bool {
	return r.Daemon == 0 && len(r.Holders) == 0 && r.FillFiles == 0 && len(r.TempFiles) == 0 && len(r.Failures) == 0
}

// WriteTo writes the report for a person, a line per fact.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if r.Nothing() {
		b.WriteString("Nothing to recover: no cro-exporter daemon, holder process, fill file or temporary file found.\n")
	}
	if r.Daemon != 0 {
		fmt.Fprintf(&b, "Stopped the cro-exporter daemon (pid %d).\n", r.Daemon)
	}
	if len(r.Holders) > 0 {
		var hs []string
		for _, h := range r.Holders {
			hs = append(hs, fmt.Sprintf("%s (pid %d)", h.Kind, h.Pid))
		}
		fmt.Fprintf(&b, "Stopped %s: %s.\n", plural(len(hs), "holder process", "holder processes"), strings.Join(hs, ", "))
	}
	if r.FillFiles > 0 {
		fmt.Fprintf(&b, "Removed %s from %s, freeing %s.\n", plural(r.FillFiles, "fill file", "fill files"), r.FillDir, humanBytes(r.FillBytes))
	}
	if len(r.TempFiles) > 0 {
		fmt.Fprintf(&b, "Removed %s: %s.\n", plural(len(r.TempFiles), "temporary file", "temporary files"), strings.Join(r.TempFiles, ", "))
	}
	for _, s := range r.Notes {
		fmt.Fprintf(&b, "Note: %s.\n", s)
	}
	for _, s := range r.Failures {
		fmt.Fprintf(&b, "Could not remove: %s.\n", s)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// plural is "1 file" or "n files".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// humanBytes writes n in binary units, and exactly when it is not a whole
// number of them.
func humanBytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 {
		return plural(int(n), "byte", "bytes")
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", v, units[u], n)
}

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
// cannot work with.
func Recover(cfg Config) (Report, error) {
	var rep Report
	if cfg.StateDir == "" {
		return rep, errors.New("recover: no state dir")
	}
	r := resolved{Config: cfg}
	if r.Proc == "" {
		r.Proc = "/proc"
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
		entries, aside, err = recoverRegistry(r.StateDir)
		if err != nil {
			rep.Failures = append(rep.Failures, err.Error())
		}
		if aside != "" {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the holder registry was not usable; moved it to %s", aside))
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
		if _, err := os.Lstat(filepath.Join(r.StateDir, RegistryFile)); err == nil || len(c.survivors) > 0 {
			if err := saveRegistry(r.StateDir, c.survivors); err != nil {
				rep.Failures = append(rep.Failures, err.Error())
			}
		}
		if err := lock.release(); err != nil {
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
	if data, err := statefile.Read(filepath.Join(r.StateDir, RegistryFile)); err == nil {
		entries, _ := parseRegistry(data)
		for _, e := range entries {
			if isRunningEntry(r.Proc, e) {
				s.holders = append(s.holders, e)
			}
		}
	}
	if r.FillDir != "" {
		s.fillFiles, s.fillBytes, _ = countFill(r.FillDir, r.owner)
	}
	return s
}

// countFill counts the fill files in dir, a fill dir whose marker names
// owner, without taking its lock (the daemon holds it) or changing
// anything; ok is false when dir is missing or not owner's.
func countFill(dir, owner string) (files int, bytes int64, ok bool) {
	d, st, err := openFillDir(filepath.Clean(dir))
	if err != nil {
		return 0, 0, false
	}
	defer d.Close()
	if checkFillDirOwner(d, st, dir, owner) != nil {
		return 0, 0, false
	}
	found, _, err := scanFillDir(d, dir)
	if err != nil {
		return 0, 0, false
	}
	for _, f := range found {
		bytes += f.alloc
	}
	return len(found), bytes, true
}

// isRunningEntry tells whether the registry entry's process still runs: its
// pid with the same start time and our holder command line of its kind.
func isRunningEntry(proc string, e holderEntry) bool {
	st, err := readProcStat(proc, e.Pid)
	if err != nil || st.exited() || st.StartTime != e.StartTime {
		return false
	}
	argv, err := readCmdline(proc, e.Pid)
	return err == nil && holderKindOf(argv) == e.Kind
}

// creditDaemon adds to the report what the daemon Recover stopped freed by
// itself: the holders it ran that are gone now, and its fill files, when
// none is left.
func (rep *Report) creditDaemon(r resolved, before daemonState) {
	for _, e := range before.holders {
		if slices.ContainsFunc(rep.Holders, func(h StoppedHolder) bool { return h.Pid == e.Pid }) || isRunningEntry(r.Proc, e) {
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

// recoverRegistry loads the registry; one that is not usable is moved aside
// and its new name returned.
func recoverRegistry(dir string) ([]holderEntry, string, error) {
	var entries []holderEntry
	aside, err := statefile.Load(filepath.Join(dir, RegistryFile), time.Now(), func(data []byte) (err error) {
		entries, err = parseRegistry(data)
		return err
	})
	if aside != "" {
		return nil, aside, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("holder registry %w", err)
	}
	return entries, "", nil
}

// recoverLockTimeout bounds the wait of a Recover for another one on the
// same state dir (a variable for the tests).
var recoverLockTimeout = 2 * time.Minute

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
	f, err := openLockFile(r.StateDir)
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		return nil
	}
	locked, err := tryLock(f)
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
		f.Close()
		return nil
	}
	if locked {
		return &stateLock{f: f}
	}
	pid := waitLockPid(f)
	if pid == 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s is held by a process that did not write its pid; it was not stopped", f.Name()))
		f.Close()
		return nil
	}
	daemon, err := openForeign(r.Proc, pid, func(st procStat, argv []string) error {
		if holderKindOf(argv) == "" && len(argv) > 0 && (isCroExporter(argv[0]) || isCroExporterExe(r.Proc, pid)) {
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

// isCroExporterExe tells whether /proc/<pid>/exe is a cro-exporter binary.
func isCroExporterExe(proc string, pid int) bool {
	exe, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "exe"))
	return err == nil && isCroExporter(exe)
}

// removeFill removes every fill file of ours in the fill dir, then its
// marker and the dir (Fill.Remove). It touches the dir only when its marker
// names this state dir: another cro-exporter's, or one without a marker, is
// left alone with a note. A missing dir holds none.
func (rep *Report) removeFill(r resolved) {
	dir := r.FillDir
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return
	}
	owner := r.owner
	if owner == "" {
		// No state dir: the fill dir may still be its leftover.
		var err error
		if owner, err = resolvePath(r.StateDir); err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("state dir %s: %v", r.StateDir, err))
			return
		}
	}
	fill, err := newFill(dir, "", owner)
	var d *os.File
	if err == nil {
		d, err = fill.take(false, false)
	}
	var notOurs *fillDirError
	switch {
	case errors.As(err, &notOurs) && errors.Is(err, errNotOurs):
		rep.Notes = append(rep.Notes, fmt.Sprintf("fill dir %s %s; left it alone", notOurs.dir, notOurs.found))
		return
	case err != nil:
		rep.Failures = append(rep.Failures, err.Error())
		return
	case d == nil:
		return // gone since the look
	}
	d.Close()
	files, bytes, err := fill.Remove()
	rep.FillDir, rep.FillFiles, rep.FillBytes = fill.Dir(), files, bytes
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
}

// removeTemp removes the temporary files (*.tmp) of the state dir: what a
// save interrupted by a crash left. Nothing else there is touched.
func (rep *Report) removeTemp(dir string) {
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("temporary files in %s: %v", dir, err))
		return
	}
	for _, tmp := range tmps {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			rep.Failures = append(rep.Failures, fmt.Sprintf("temporary file %s: %v", tmp, err))
			continue
		}
		rep.TempFiles = append(rep.TempFiles, tmp)
	}
}

// cleanup is what cleanLeftovers did.
type cleanup struct {
	stopped   []StoppedHolder
	notes     []string      // processes left alone, and why
	failures  []string      // holders that could not be killed
	survivors []holderEntry // registry entries still running
}

// cleanLeftovers kills the holders an earlier run left: those of the
// registry entries whose pid, start time and command line (our holder
// subcommand, of the kind recorded) still match and that are marked
// (ownerEnv) with this state dir, then those found by findStrayHolders.
// Everything else is left alone: a registry entry naming another daemon's
// holder gets it no signal.
func cleanLeftovers(r resolved, entries []holderEntry) cleanup {
	var c cleanup
	failed := map[int]bool{}
	for _, e := range entries {
		p, err := openForeign(r.Proc, e.Pid, func(st procStat, argv []string) error {
			if st.StartTime != e.StartTime {
				return notOurs("pid %d in the holder registry is another process now (started at tick %d, not %d); left alone", e.Pid, st.StartTime, e.StartTime)
			}
			if k := holderKindOf(argv); k != e.Kind {
				return notOurs("pid %d in the holder registry runs %q, not a %s holder; left alone", e.Pid, abbreviate(strings.Join(argv, " ")), e.Kind)
			}
			return checkMark(r, e)
		})
		switch {
		case errors.Is(err, errNoProcess):
			continue
		case errors.Is(err, errNotOurs):
			c.notes = append(c.notes, err.Error())
			continue
		case err != nil:
			c.failures = append(c.failures, fmt.Sprintf("%s holder (pid %d): %v", e.Kind, e.Pid, err))
			c.survivors = append(c.survivors, e)
			failed[e.Pid] = true
			continue
		}
		err = p.kill(stopTimeout)
		p.close()
		if err != nil {
			c.failures = append(c.failures, fmt.Sprintf("%s holder (pid %d): %v", e.Kind, e.Pid, err))
			c.survivors = append(c.survivors, e)
			failed[e.Pid] = true
			continue
		}
		c.stopped = append(c.stopped, StoppedHolder{Pid: e.Pid, Kind: e.Kind})
	}

	strays, notes, err := findStrayHolders(r.Proc, r.owner)
	c.notes = append(c.notes, notes...)
	if err != nil {
		c.failures = append(c.failures, fmt.Sprintf("scanning for holder processes: %v", err))
	}
	for _, s := range strays {
		if failed[s.pid] {
			continue
		}
		p, err := openForeign(r.Proc, s.pid, func(st procStat, argv []string) error {
			if st.StartTime != s.startTime || holderKindOf(argv) != s.kind {
				return errNoProcess // gone, and its pid taken since the scan
			}
			return nil
		})
		if errors.Is(err, errNoProcess) {
			continue
		}
		if err == nil {
			err = p.kill(stopTimeout)
			p.close()
		}
		if err != nil {
			c.failures = append(c.failures, fmt.Sprintf("%s holder (pid %d): %v", s.kind, s.pid, err))
			continue
		}
		c.stopped = append(c.stopped, StoppedHolder{Pid: s.pid, Kind: s.kind})
	}
	return c
}

// checkMark lets a registry entry's process, a holder of the kind recorded,
// be killed only when it is marked with our state dir: a registry is only a
// file, and one may name the holder of another cro-exporter.
func checkMark(r resolved, e holderEntry) error {
	mark, ok, err := readEnviron(r.Proc, e.Pid, ownerEnv)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH):
		return fmt.Errorf("pid %d: %w", e.Pid, errNoProcess)
	case err != nil:
		return notOurs("pid %d in the holder registry is a %s holder whose mark cannot be read (%v); left alone", e.Pid, e.Kind, err)
	case !ok:
		return notOurs("pid %d in the holder registry is a %s holder not marked with a state dir; left alone", e.Pid, e.Kind)
	case r.owner == "" || mark != r.owner:
		return notOurs("pid %d in the holder registry is a %s holder of the cro-exporter with state dir %s; left alone", e.Pid, e.Kind, statefile.Quote(mark))
	}
	return nil
}

// strayHolder is a holder process found by a scan of /proc.
type strayHolder struct {
	pid       int
	startTime uint64
	kind      Kind
}

// findStrayHolders scans proc for processes running a cro-exporter holder
// subcommand that are leftovers: marked (ownerEnv) with owner, the state
// dir whose lock the caller holds, or orphans, whose parent is gone and
// that no live cro-exporter daemon adopted (a daemon running as pid 1 in a
// container is the parent of its holders). A holder whose parent lives is
// left alone, with a note: it belongs to another manager, such as a daemon
// with another state dir.
func findStrayHolders(proc, owner string) ([]strayHolder, []string, error) {
	pids, err := listPids(proc)
	if err != nil {
		return nil, nil, err
	}
	self := os.Getpid()
	var strays []strayHolder
	var notes []string
	for _, pid := range pids {
		if pid == self {
			continue
		}
		argv, err := readCmdline(proc, pid)
		if err != nil {
			continue
		}
		kind := holderKindOf(argv)
		if kind == "" {
			continue
		}
		st, err := readProcStat(proc, pid)
		if err != nil || st.exited() {
			continue
		}
		s := strayHolder{pid: pid, startTime: st.StartTime, kind: kind}
		if mark, ok, _ := readEnviron(proc, pid, ownerEnv); ok && owner != "" && mark == owner {
			strays = append(strays, s)
			continue
		}
		parent, err := readCmdline(proc, st.PPid)
		parentGone := st.PPid <= 0 || errors.Is(err, errNoProcess)
		parentDaemon := err == nil && len(parent) > 0 && holderKindOf(parent) == "" &&
			(isCroExporter(parent[0]) || isCroExporterExe(proc, st.PPid))
		switch {
		case parentGone || st.PPid == 1 && !parentDaemon:
			strays = append(strays, s)
		case parentDaemon:
			notes = append(notes, fmt.Sprintf("%s holder (pid %d) belongs to the running cro-exporter pid %d; left alone", kind, pid, st.PPid))
		default:
			notes = append(notes, fmt.Sprintf("%s holder (pid %d) belongs to the running process pid %d (%s); left alone", kind, pid, st.PPid, abbreviate(strings.Join(parent, " "))))
		}
	}
	return strays, notes, nil
}
