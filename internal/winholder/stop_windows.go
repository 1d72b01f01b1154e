package winholder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/windows"
)

// Windows has no SIGTERM: a daemon run from a console is asked to stop, by
// --recover, through a named event of its state dir, which it waits on.
// The name is in the Global namespace, which a service (session 0) and an
// administrator's console share; a process without the privilege to make
// a global object (SeCreateGlobalPrivilege) makes it in its session's.

// stopEventNames are the names of the stop event of the state dir owner
// (absolute, symlinks resolved): Global first.
func stopEventNames(owner string) []string {
	sum := sha256.Sum256([]byte(strings.ToLower(owner)))
	base := `cro-exporter-stop-` + hex.EncodeToString(sum[:16])
	return []string{`Global\` + base, `Local\` + base}
}

// StopEvent makes the stop event of the state dir owner; its handle is
// signalled when --recover asks the daemon to stop.
func StopEvent(owner string) (windows.Handle, error) {
	var err error
	for _, name := range stopEventNames(owner) {
		p, perr := windows.UTF16PtrFromString(name)
		if perr != nil {
			return 0, perr
		}
		var h windows.Handle
		// Manual reset: once asked, the daemon stays asked.
		if h, err = windows.CreateEvent(nil, 1, 0, p); err == nil || errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
			return h, nil
		}
		if !errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			break
		}
	}
	return 0, fmt.Errorf("making the stop event: %w", err)
}

// AskStop signals the stop event of the state dir owner, and tells whether
// there was one: a daemon that made it runs.
func AskStop(owner string) (bool, error) {
	for _, name := range stopEventNames(owner) {
		p, err := windows.UTF16PtrFromString(name)
		if err != nil {
			return false, err
		}
		h, err := windows.OpenEvent(windows.EVENT_MODIFY_STATE, false, p)
		if errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("opening the stop event %s: %w", name, err)
		}
		defer windows.CloseHandle(h)
		if err := windows.SetEvent(h); err != nil {
			return false, fmt.Errorf("signalling the stop event %s: %w", name, err)
		}
		return true, nil
	}
	return false, nil
}
