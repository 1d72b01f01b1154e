package holder

import "errors"

// errNotOurs marks what is not ours to touch: a process that is not the one
// we look for (such as a pid reused by another process), a fill dir that
// another made. It is left alone.
var errNotOurs = errors.New("not ours")

// cleanup is what cleanLeftovers did.
type cleanup struct {
	stopped   []StoppedHolder
	notes     []string      // processes left alone, and why
	failures  []string      // holders that could not be killed
	survivors []holderEntry // registry entries still running
}
