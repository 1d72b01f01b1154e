package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// OpenFill opens the fill directory dir, making it with mode 0700 when it
// is missing (its parent must exist). It refuses a dir that is a symlink,
// is not a directory, or is owned by another uid than ours; a dir of ours
// with a wider mode than 0700 is set to 0700. Fill files already in dir,
// from an earlier run, are adopted: every call works on the files it finds
// there, and nothing but fill files is ever touched.
func OpenFill(dir string) (*Fill, error) {
	if dir == "" {
		return nil, errors.New("fill dir: empty path")
	}
	// Clean drops a trailing slash, which would make the kernel follow a
	// symlink in spite of O_NOFOLLOW.
	f := &Fill{dir: filepath.Clean(dir), maxFile: MaxFillFile, fallocate: fallocateMode0}
	d, err := f.openDir(true, true)
	if err != nil {
		return nil, err
	}
	return f, d.Close()
}

// fallocateMode0 allocates blocks for [off, off+length) of fd and extends
// the file to cover them.
func fallocateMode0(fd int, off, length int64) error {
	return unix.Fallocate(fd, 0, off, length)
}

// Resize grows or shrinks the fill files to hold total bytes, in files of
// at most MaxFillFile. Shrinking removes files from the highest number down
// and truncates the last one kept; growing extends the last partial file,
// then adds files. Blocks are allocated with fallocate(2), or, where the
// filesystem refuses it, by writing data and fsync. On ENOSPC it stops,
// keeps what it allocated, and returns an error wrapping syscall.ENOSPC.
// It refuses (and changes nothing) when a fill file name in the directory
// is not a regular file of ours, such as a symlink.
func (f *Fill) Resize(total int64) error {
	if total < 0 {
		return fmt.Errorf("resizing fill in %s: negative total %d", f.dir, total)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.openDir(total > 0, true)
	if err != nil || d == nil {
		return err
	}
	defer d.Close()
	files, err := f.list(d)
	if err != nil {
		return fmt.Errorf("resizing fill to %d bytes: %w", total, err)
	}
	keep, add := planFill(files, total, f.maxFile)
	// Free space first, from the highest number down.
	for i := len(files) - 1; i >= 0; i-- {
		switch {
		case keep[i] == 0:
			if err := f.unlink(d, files[i].name); err != nil {
				return err
			}
		case files[i].size > keep[i]:
			if err := f.truncate(d, &files[i], keep[i]); err != nil {
				return err
			}
		}
	}
	for i, file := range files {
		if keep[i] > 0 && (file.size < keep[i] || file.alloc < keep[i]) {
			if err := f.grow(d, file.name, keep[i], false); err != nil {
				return err
			}
		}
	}
	next := 1
	if len(files) > 0 {
		next = files[len(files)-1].num + 1
	}
	for i, n := range add {
		if next+i > maxFillNumber {
			return fmt.Errorf("resizing fill in %s to %d bytes: no fill file name left after %s", f.dir, total, fillName(maxFillNumber))
		}
		if err := f.grow(d, fillName(next+i), n, true); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns how many fill files there are and the bytes they hold,
// counted by allocated blocks (st_blocks*512), not by file size: a sparse
// file holds nothing, and filesystems differ in how they count. A missing
// directory holds nothing.
func (f *Fill) Usage() (files int, bytes int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.openDir(false, false)
	if err != nil || d == nil {
		return 0, 0, err
	}
	defer d.Close()
	found, err := f.list(d)
	if err != nil {
		return 0, 0, err
	}
	for _, file := range found {
		bytes += file.alloc
	}
	return len(found), bytes, nil
}

// Remove removes every fill file, and the directory when that leaves it
// empty, and returns how many files it removed and the bytes (allocated
// blocks) they held. A fill file name that is not a regular file of ours is
// left in place and reported in the error, after the others are removed;
// the counts are valid even with an error.
func (f *Fill) Remove() (files int, bytes int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.openDir(false, false)
	if err != nil || d == nil {
		return 0, 0, err
	}
	found, bad := f.list(d)
	for i := len(found) - 1; i >= 0; i-- {
		if err := f.unlink(d, found[i].name); err != nil {
			d.Close()
			return files, bytes, errors.Join(bad, err)
		}
		files++
		bytes += found[i].alloc
	}
	d.Close()
	if bad != nil {
		return files, bytes, fmt.Errorf("removing fill: %w", bad)
	}
	// rmdir, unlike os.Remove, never removes a symlink put in the dir's place.
	switch err := unix.Rmdir(f.dir); err {
	case nil, unix.ENOTEMPTY, unix.EEXIST, unix.ENOENT:
	default:
		return files, bytes, &fs.PathError{Op: "rmdir", Path: f.dir, Err: err}
	}
	return files, bytes, nil
}

// openDir opens the fill directory without following a symlink and checks
// that it is a directory of ours. A missing directory is made when create
// is set, and is otherwise returned as nil with no error. With tighten, a
// mode other than 0700 is set to 0700.
func (f *Fill) openDir(create, tighten bool) (*os.File, error) {
	d, err := openDirNoFollow(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, nil
		}
		if err := os.Mkdir(f.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("creating fill dir: %w", err)
		}
		d, err = openDirNoFollow(f.dir)
	}
	if err != nil {
		fi, lerr := os.Lstat(f.dir)
		switch {
		case lerr == nil && fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("fill dir %s: is a symlink, refusing it", f.dir)
		case lerr == nil && !fi.IsDir():
			return nil, fmt.Errorf("fill dir %s: is not a directory", f.dir)
		}
		return nil, fmt.Errorf("opening fill dir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		d.Close()
		return nil, &fs.PathError{Op: "fstat", Path: f.dir, Err: err}
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		d.Close()
		return nil, fmt.Errorf("fill dir %s: owned by uid %d, not by us (uid %d), refusing it", f.dir, st.Uid, uid)
	}
	if tighten && st.Mode&0o7777 != 0o700 {
		if err := unix.Fchmod(int(d.Fd()), 0o700); err != nil {
			d.Close()
			return nil, &fs.PathError{Op: "chmod", Path: f.dir, Err: err}
		}
	}
	return d, nil
}

func openDirNoFollow(dir string) (*os.File, error) {
	return os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
}

// list returns the fill files in d in number order. Fill file names that
// are not regular files of ours are left out and reported in the error.
func (f *Fill) list(d *os.File) ([]fillFile, error) {
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("reading fill dir: %w", err)
	}
	var files []fillFile
	var bad []error
	for _, e := range entries {
		num, ok := parseFillName(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(f.dir, e.Name())
		var st unix.Stat_t
		if err := unix.Fstatat(int(d.Fd()), e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err != unix.ENOENT {
				bad = append(bad, &fs.PathError{Op: "lstat", Path: path, Err: err})
			}
			continue
		}
		if err := checkFillFile(path, &st); err != nil {
			bad = append(bad, err)
			continue
		}
		files = append(files, fillFile{name: e.Name(), num: num, size: st.Size, alloc: st.Blocks * 512})
	}
	slices.SortFunc(files, func(a, b fillFile) int { return a.num - b.num })
	return files, errors.Join(bad...)
}

// checkFillFile refuses anything at a fill file name but a regular file of
// ours with one link, so no write ever lands outside the directory.
func checkFillFile(path string, st *unix.Stat_t) error {
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("fill file %s: is a symlink, refusing it", path)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("fill file %s: is not a regular file, refusing it", path)
	case uint64(st.Nlink) != 1:
		return fmt.Errorf("fill file %s: has %d links, refusing it", path, st.Nlink)
	case st.Uid != uint32(os.Geteuid()):
		return fmt.Errorf("fill file %s: owned by uid %d, not by us, refusing it", path, st.Uid)
	}
	return nil
}

// openFile opens fill file name in d for writing, never following a
// symlink; with create it makes a new file (O_EXCL, mode 0600).
func (f *Fill) openFile(d *os.File, name string, create bool) (*os.File, *unix.Stat_t, error) {
	path := filepath.Join(f.dir, name)
	flags := unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if create {
		flags |= unix.O_CREAT | unix.O_EXCL
	}
	var fd int
	var err error
	for {
		// O_NONBLOCK keeps a FIFO at this name from blocking the open.
		fd, err = unix.Openat(int(d.Fd()), name, flags, 0o600)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.ELOOP {
		return nil, nil, fmt.Errorf("fill file %s: is a symlink, refusing it", path)
	}
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	st := new(unix.Stat_t)
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkFillFile(path, st); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), st, nil
}

// unlink removes fill file name from d; unlinking never follows a symlink.
func (f *Fill) unlink(d *os.File, name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "unlink", Path: filepath.Join(f.dir, name), Err: err}
	}
	return nil
}

// truncate cuts file down to size, which frees the blocks past it, and
// updates file.
func (f *Fill) truncate(d *os.File, file *fillFile, size int64) error {
	fh, _, err := f.openFile(d, file.name, false)
	if err != nil {
		return err
	}
	defer fh.Close()
	if err := fh.Truncate(size); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(fh.Fd()), &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: fh.Name(), Err: err}
	}
	file.size, file.alloc = st.Size, st.Blocks*512
	return nil
}

// grow allocates fill file name up to size bytes, making it with create.
// A new file that got nothing before an error is removed again.
func (f *Fill) grow(d *os.File, name string, size int64, create bool) error {
	fh, st, err := f.openFile(d, name, create)
	if err != nil {
		return err
	}
	from := st.Size
	if st.Blocks*512 < st.Size {
		from = 0 // holes somewhere: fallocate fills only them
	}
	err = f.allocate(fh, from, size)
	if err != nil && create {
		if serr := unix.Fstat(int(fh.Fd()), st); serr == nil && st.Size == 0 && st.Blocks == 0 {
			fh.Close()
			return errors.Join(fmt.Errorf("growing fill file %s to %d bytes: %w", fh.Name(), size, err), f.unlink(d, name))
		}
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	} else {
		err = fmt.Errorf("growing fill file %s to %d bytes: %w", fh.Name(), size, err)
	}
	return err
}

// allocate allocates [from, to) of fh in fillChunk steps with fallocate,
// or, where the filesystem refuses fallocate, by writing fillPattern data
// followed by fsync. It stops at the first error, keeping what it did.
func (f *Fill) allocate(fh *os.File, from, to int64) error {
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

// pathErrno returns the error inside a *fs.PathError, whose path the caller
// already names.
func pathErrno(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
