package holder

import (
	"fmt"
	"time"
)

// Restarts of a kind whose holders keep failing back off: the first
// failure is replaced at once, then starts are restartBackoff apart, twice
// that after each further failure, up to restartBackoffMax, until one of
// the kind's holders has run stableAfter.
const (
	restartBackoff    = 15 * time.Second
	restartBackoffMax = 10 * time.Minute
	stableAfter       = 10 * time.Minute
)

// restarts is how the holders of one kind have fared since Open.
type restarts struct {
	kind     Kind
	failures uint64
	// streak counts the failures in a row, each of a holder that ran less
	// than stableAfter.
	streak    int
	lastStart time.Time
	// backingOff is set once the back-off has been logged.
	backingOff bool
	// refusals counts the starts refused for want of pids; refusing is
	// set from the first until a start is allowed again.
	refusals uint64
	refusing bool
}

// wait is the least time from one start of the kind to the next.
func (r *restarts) wait() time.Duration {
	if r.streak < 2 {
		return 0
	}
	return min(restartBackoff<<min(r.streak-2, 16), restartBackoffMax)
}

// mayStart tells whether a holder of the kind may start at now.
func (r *restarts) mayStart(now time.Time) bool {
	return !now.Before(r.lastStart.Add(r.wait()))
}

// failed counts a failure of a holder of kind that ran for ran, and logs
// it when log is set (the caller reports it otherwise). Once failures come
// in a row, the kind backs off, which is logged once instead.
func (m *Manager) failed(kind Kind, ran time.Duration, err error, log bool) {
	r := m.restarts[kind]
	r.failures++
	if ran >= stableAfter {
		m.wellAgain(r)
	}
	r.streak++
	switch {
	case r.backingOff:
		m.logger.Debug("Holder failed again", "kind", kind, "err", err)
	case r.streak >= 2:
		r.backingOff = true
		m.logger.Warn(fmt.Sprintf("%s holder keeps ending by itself; restarting it at most every %s, then ever less often, up to every %s",
			kind, r.wait(), restartBackoffMax), "err", err)
	case log:
		m.logger.Warn("Holder failed; the next apply replaces it", "kind", kind, "err", err)
	}
}

// wellAgain ends a kind's streak of failures: its next failure is replaced
// at once again.
func (m *Manager) wellAgain(r *restarts) {
	if r.backingOff {
		m.logger.Info(fmt.Sprintf("%s holder has run %s; restarting it at once again should it end", r.kind, stableAfter))
	}
	r.streak, r.backingOff = 0, false
}
