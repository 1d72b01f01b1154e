package holder

import (
	"errors"
	"fmt"
)

// cleanup is what cleanLeftovers did.
type cleanup struct {
	stopped   []StoppedHolder
	notes     []string      // processes left alone, and why
	failures  []string      // holders that could not be killed
	survivors []holderEntry // registry entries still running
}

// errNotOurs marks what is not ours to touch: a process that is not the one
// we look for (such as a pid reused by another process), a fill dir that
// another made. It is left alone.
var errNotOurs = errors.New("not ours")

// notOursError says why a process is not ours; it is errNotOurs.
type notOursError struct{ msg string }

func (e *notOursError) Error() string { return e.msg }

func (e *notOursError) Is(target error) bool { return target == errNotOurs }

// notOurs is an errNotOurs with its reason.
func notOurs(format string, args ...any) error {
	return &notOursError{msg: fmt.Sprintf(format, args...)}
}
