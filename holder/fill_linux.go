package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// fillSys is what Linux's fill adds: the fallocate(2) it allocates with.
type fillSys struct {
	// fallocate allocates [off, off+length) of fd with fallocate(2) mode 0;
	// tests replace it to force the write fallback or ENOSPC.
	fallocate func(fd int, off, length int64) error
}

func newFillSys() fillSys { return fillSys{fallocate: fallocateMode0} }

// pinDisk records the device of diskPath's filesystem: the only one the
// fill is ever on (lost).
func (f *fillDir) pinDisk() error {
	var st unix.Stat_t
	if err := unix.Stat(f.diskPath, &st); err != nil {
		return fmt.Errorf("disk path: %w", &fs.PathError{Op: "stat", Path: f.diskPath, Err: err})
	}
	f.dev = st.Dev
	return nil
}

// fallocateMode0 allocates blocks for [off, off+length) of fd and extends
// the file to cover them.
func fallocateMode0(fd int, off, length int64) error {
	return unix.Fallocate(fd, 0, off, length)
}

// openFile opens fill file name in d for writing, never following a
// symlink, and returns it with its size and allocated bytes; with create
// it makes a new file (O_EXCL, mode 0600).
func (f *fill) openFile(d *os.File, name string, create bool) (fh *os.File, size, alloc int64, err error) {
	path := filepath.Join(f.dir, name)
	flags := unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if create {
		flags |= unix.O_CREAT | unix.O_EXCL
	}
	var fd int
	for {
		// O_NONBLOCK keeps a FIFO at this name from blocking the open.
		fd, err = unix.Openat(int(d.Fd()), name, flags, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.ELOOP {
		return nil, 0, 0, fmt.Errorf("fill file %s: is a symlink, refusing it", path)
	}
	if err != nil {
		return nil, 0, 0, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	st := new(unix.Stat_t)
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return nil, 0, 0, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkFillFile(path, st); err != nil {
		unix.Close(fd)
		return nil, 0, 0, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, 0, 0, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), st.Size, st.Blocks * 512, nil
}

// sizes returns the size of fh and the bytes allocated to it
// (st_blocks*512).
func sizes(fh *os.File) (size, alloc int64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(fh.Fd()), &st); err != nil {
		return 0, 0, &fs.PathError{Op: "fstat", Path: fh.Name(), Err: err}
	}
	return st.Size, st.Blocks * 512, nil
}

// holdsNothing tells whether fh, a fill file just made, got nothing: no
// size and no blocks.
func holdsNothing(fh *os.File) bool {
	size, alloc, err := sizes(fh)
	return err == nil && size == 0 && alloc == 0
}

// unlink removes fill file name from d; unlinking never follows a symlink.
func (f *fillDir) unlink(d *os.File, name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "unlink", Path: filepath.Join(f.dir, name), Err: err}
	}
	return nil
}

// allocate allocates [from, to) of fh in fillChunk steps with fallocate,
// or, where the filesystem refuses fallocate, by writing fillPattern data
// followed by fsync. It stops at the first error, keeping what it did.
func (f *fill) allocate(fh *os.File, from, to int64) error {
	fd := int(fh.Fd())
	var buf []byte
	var err error
	for off := from; off < to && err == nil; {
		n := min(fillChunk, to-off)
		for {
			err = f.fallocate(fd, off, n)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			if buf == nil {
				buf = fillPattern()
			}
			stampFill(buf[:n], off)
			if _, werr := fh.WriteAt(buf[:n], off); werr != nil {
				err = fmt.Errorf("write at offset %d: %w", off, pathErrno(werr))
			} else {
				err = nil
			}
		} else if err != nil {
			err = fmt.Errorf("fallocate at offset %d: %w", off, err)
		}
		off += n
	}
	if buf != nil {
		if serr := fh.Sync(); serr != nil {
			err = errors.Join(err, fmt.Errorf("fsync: %w", pathErrno(serr)))
		}
	}
	return err
}
