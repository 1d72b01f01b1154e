package holder

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// lockOffset is the byte the lock covers, far past any content: Windows'
// byte-range locks are mandatory, so a lock over the pid would keep another
// process from reading it.
const lockOffset = 1 << 62

// tryLock takes the exclusive lock on f without waiting (LockFileEx); false
// when another open file holds it. Windows drops it when the handle closes,
// or the process ends, however it ends.
func tryLock(f *os.File) (bool, error) { return lockByte(f, lockOffset) }

// lockByte locks the one byte at off of f, exclusively, without waiting.
func lockByte(f *os.File, off uint64) (bool, error) {
	ol := windows.Overlapped{Offset: uint32(off), OffsetHigh: uint32(off >> 32)}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return false, nil
	}
	return false, fmt.Errorf("locking %s: %w", f.Name(), err)
}
