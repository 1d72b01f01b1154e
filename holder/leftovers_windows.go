package holder

import (
	"errors"
	"fmt"

	"github.com/cro-exporter/cro-exporter/internal/winholder"
)

// cleanLeftovers kills the holders of the registry entries whose pid and
// creation time still match and whose executable is a cro-exporter. Unlike
// Linux, Windows needs no scan for stray holders: a daemon's holders are in
// its job object, which kills them when the daemon dies, so an entry that
// still runs is one of a daemon --recover is stopping. The registry lives in
// the state dir, which no one else may write (statefile's ACL rules), so
// unlike Linux no mark in the holder's environment is read either: Windows
// keeps another process's environment out of reach.
func cleanLeftovers(r resolved, entries []holderEntry) cleanup {
	var c cleanup
	for _, e := range entries {
		p, err := openHolder(e)
		if err == nil {
			err = p.Kill(stopTimeout)
			p.Close()
		}
		switch {
		case err == nil:
			c.stopped = append(c.stopped, StoppedHolder{Pid: e.Pid, Kind: e.Kind})
		case errors.Is(err, errNoProcess):
		case errors.Is(err, errNotOurs):
			c.notes = append(c.notes, err.Error())
		default:
			c.failures = append(c.failures, fmt.Sprintf("%s holder (pid %d): %v", e.Kind, e.Pid, err))
			c.survivors = append(c.survivors, e)
		}
	}
	return c
}

// openHolder opens the process of a registry entry: errNoProcess when it is
// gone, errNotOurs when its pid is another process's now.
func openHolder(e holderEntry) (*winholder.Process, error) {
	p, err := winholder.Open(e.Pid)
	if err != nil {
		return nil, noProcess(e.Pid, err)
	}
	switch {
	case p.Start != e.StartTime:
		err = notOurs("pid %d in the holder registry is another process now (created at %d, not %d); left alone", e.Pid, p.Start, e.StartTime)
	case !isCroExporter(p.Image):
		err = notOurs("pid %d in the holder registry runs %s, not a cro-exporter holder; left alone", e.Pid, p.Image)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// isRunningEntry tells whether the registry entry's process still runs.
func isRunningEntry(e holderEntry) bool {
	p, err := openHolder(e)
	if err != nil {
		return false
	}
	p.Close()
	return true
}
