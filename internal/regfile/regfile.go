// Package regfile opens and reads every file cro-exporter reads, those it
// is pointed at (the web config and the files it names, a --trace, a procfs
// tree's files) and those of its state dir, the same way: never waiting on
// a FIFO, refusing whatever is not a regular file before it is opened (so
// that opening a device has no effect), and never reading more than a cap,
// whatever the file's size says. A FIFO that blocked the start for good, or
// /dev/zero that grew memory until the host ran out, is a one-line error.
package regfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path with flag (with unix.O_NOFOLLOW a symlink is looked at,
// not followed), never blocking on a FIFO (O_NONBLOCK), and returns it only
// when check passes on what fstat shows of the file opened. A path that
// stat (lstat with O_NOFOLLOW) shows failing check is refused before it is
// opened. A missing file is an error wrapping fs.ErrNotExist.
func Open(path string, flag int, check func(*unix.Stat_t) error) (*os.File, error) {
	var st unix.Stat_t
	look := unix.Stat
	if flag&unix.O_NOFOLLOW != 0 {
		look = unix.Lstat
	}
	if err := look(path, &st); err == nil {
		if err := check(&st); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, flag|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	// The file opened, not the name looked at, is what counts.
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := check(&st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Error is a file refused, with its path and the problem: "PATH is a
// FIFO, not a regular file".
type Error struct{ Path, Problem string }

func (e *Error) Error() string { return e.Path + " " + e.Problem }

// Check says why the file path, as st describes it, is not a regular file
// of at most max bytes. It allocates only for the error.
func Check(path string, st *unix.Stat_t, max int64) error {
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return &Error{path, Kind(st.Mode) + ", not a regular file"}
	case st.Size > max:
		return TooLarge(path, max)
	}
	return nil
}

// Regular is Check as Open takes it.
func Regular(path string, max int64) func(*unix.Stat_t) error {
	return func(st *unix.Stat_t) error { return Check(path, st, max) }
}

// TooLarge is the error for the file path, larger than max bytes.
func TooLarge(path string, max int64) error {
	return &Error{path, fmt.Sprintf("is larger than %d bytes", max)}
}

// ReadAll reads f, the file path, whole, reading at most max+1 bytes: a
// file that holds more than max, whatever its size said, is an error.
func ReadAll(f *os.File, path string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, TooLarge(path, max)
	}
	return data, nil
}

// ReadFile returns the content of path, a regular file (a symlink to one
// is followed) of at most max bytes.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path, os.O_RDONLY, Regular(path, max))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, path, max)
}

// Kind describes a file of the given st_mode: "is a FIFO".
func Kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "is a regular file"
	case unix.S_IFDIR:
		return "is a directory"
	case unix.S_IFLNK:
		return "is a symlink"
	case unix.S_IFIFO:
		return "is a FIFO"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "is a device"
	case unix.S_IFSOCK:
		return "is a socket"
	}
	return fmt.Sprintf("has file type %#o", mode&unix.S_IFMT)
}
