package regfile

import (
	"fmt"
	"io/fs"
	"os"
)

// Open opens path with flag and returns it only when check passes on what
// the file opened says of itself (f.Stat). A path that os.Stat shows
// failing check (a directory, a device such as NUL or CON, a named pipe) is
// refused before it is opened, so that opening it has no effect. A symlink
// is followed, as on Linux without O_NOFOLLOW. A missing file is an error
// wrapping fs.ErrNotExist.
func Open(path string, flag int, check func(fs.FileInfo) error) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil {
		if err := check(fi); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	// The file opened, not the name looked at, is what counts.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := check(fi); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Check says why the file path, as fi describes it, is not a regular file
// of at most max bytes. It allocates only for the error.
func Check(path string, fi fs.FileInfo, max int64) error {
	switch {
	case !fi.Mode().IsRegular():
		return &Error{path, Kind(fi.Mode()) + ", not a regular file"}
	case fi.Size() > max:
		return TooLarge(path, max)
	}
	return nil
}

// Regular is Check as Open takes it.
func Regular(path string, max int64) func(fs.FileInfo) error {
	return func(fi fs.FileInfo) error { return Check(path, fi, max) }
}

// Kind describes a file of the given mode: "is a named pipe".
func Kind(mode fs.FileMode) string {
	switch {
	case mode.IsRegular():
		return "is a regular file"
	case mode.IsDir():
		return "is a directory"
	case mode&fs.ModeSymlink != 0:
		return "is a symlink"
	case mode&fs.ModeNamedPipe != 0:
		return "is a named pipe"
	case mode&fs.ModeDevice != 0:
		return "is a device"
	case mode&fs.ModeSocket != 0:
		return "is a socket"
	}
	return fmt.Sprintf("has file type %v", mode.Type())
}
