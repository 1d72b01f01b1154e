package regfile

import (
	"fmt"
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
