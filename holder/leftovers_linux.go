package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

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
		p, err := openForeign(procfsRoot, e.Pid, func(st procStat, argv []string) error {
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
		case errors.Is(err, errNotOurs):
			c.notes = append(c.notes, err.Error())
		case !c.kill(p, err, e.Pid, e.Kind):
			c.survivors = append(c.survivors, e)
			failed[e.Pid] = true
		}
	}

	strays, notes, err := findStrayHolders(procfsRoot, r.owner)
	c.notes = append(c.notes, notes...)
	if err != nil {
		c.failures = append(c.failures, fmt.Sprintf("scanning for holder processes: %v", err))
	}
	for _, s := range strays {
		if failed[s.pid] {
			continue
		}
		p, err := openForeign(procfsRoot, s.pid, func(st procStat, argv []string) error {
			if st.StartTime != s.startTime || holderKindOf(argv) != s.kind {
				return errNoProcess // gone, and its pid taken since the scan
			}
			return nil
		})
		if !errors.Is(err, errNoProcess) {
			c.kill(p, err, s.pid, s.kind)
		}
	}
	return c
}

// kill kills p, the holder pid of kind that openForeign opened, or failed
// to open with err, and records the holder as stopped or the failure. It
// tells whether the holder was stopped.
func (c *cleanup) kill(p *foreignProcess, err error, pid int, kind Kind) bool {
	if err == nil {
		err = p.kill(stopTimeout)
		p.close()
	}
	if err != nil {
		c.failures = append(c.failures, fmt.Sprintf("%s holder (pid %d): %v", kind, pid, err))
		return false
	}
	c.stopped = append(c.stopped, StoppedHolder{Pid: pid, Kind: kind})
	return true
}

// checkMark lets a registry entry's process, a holder of the kind recorded,
// be killed only when it is marked with our state dir: a registry is only a
// file, and one may name the holder of another cro-exporter.
func checkMark(r resolved, e holderEntry) error {
	mark, ok, err := readEnviron(procfsRoot, e.Pid, ownerEnv)
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
		parentDaemon := err == nil && isDaemon(proc, st.PPid, parent)
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
