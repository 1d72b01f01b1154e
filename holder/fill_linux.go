package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// fill is Linux's diskFill: files preallocated with fallocate(2), in a
// directory held open and locked (fillDir).
type fill struct {
	// fillDir is the directory, held while the fill owns it; mu guards it.
	fillDir
	// maxFile is the largest fill file: MaxFillFile, smaller in tests.
	maxFile int64
	// fallocate allocates [off, off+length) of fd with fallocate(2) mode 0;
	// tests replace it to force the write fallback or ENOSPC.
	fallocate func(fd int, off, length int64) error

	mu sync.Mutex

	// seen is what Usage found last: it answers with it while a resize,
	// which may take seconds, holds mu.
	seenMu sync.Mutex
	seen   fillUsage
}

// newFill is a fill of dir that holds nothing yet.
func newFill(dir, diskPath, owner string) (*fill, error) {
	if dir == "" {
		return nil, errors.New("fill dir: empty path")
	}
	if owner == "" {
		return nil, fmt.Errorf("fill dir %s: no owner", dir)
	}
	// Clean drops a trailing slash, which would make the kernel follow a
	// symlink in spite of O_NOFOLLOW.
	f := &fill{fillDir: fillDir{dir: filepath.Clean(dir), diskPath: diskPath, owner: owner}, maxFile: MaxFillFile, fallocate: fallocateMode0}
	if diskPath != "" {
		var st unix.Stat_t
		if err := unix.Stat(diskPath, &st); err != nil {
			return nil, fmt.Errorf("disk path: %w", &fs.PathError{Op: "stat", Path: diskPath, Err: err})
		}
		f.dev = st.Dev
	}
	return f, nil
}

// checkLost is what every method does first: while the fill's filesystem
// is gone from diskPath (see lost), it removes the fill files from the dir
// held through its descriptor, never by path, and lets the dir go (a
// filesystem unmounted lazily is then no longer kept busy); the marker
// stays, so that the dir is adopted again should the filesystem come back.
// It returns the goneError, nil while the filesystem is there, what it
// removed, and the error of removing it.
func (f *fill) checkLost() (lost error, removed fillUsage, err error) {
	if lost = f.lost(); lost == nil {
		return nil, fillUsage{}, nil
	}
	f.setSeen(fillUsage{})
	if f.held == nil {
		return lost, fillUsage{}, nil
	}
	defer f.release()
	fd, err := unix.Openat(int(f.held.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return lost, fillUsage{}, &fs.PathError{Op: "open", Path: f.dir, Err: err}
	}
	d := os.NewFile(uintptr(fd), f.dir)
	defer d.Close()
	found, _, err := scanFillDir(d, f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return lost, fillUsage{}, nil // the dir was deleted, and its files with it
	}
	if err != nil {
		return lost, fillUsage{}, fmt.Errorf("releasing the fill: %w", err)
	}
	removed, err = f.removeFiles(d, found)
	return lost, removed, err
}

// Close releases the fill dir's lock, leaving the fill files in place.
// Calling it again does nothing; calling another method takes the dir
// again, as openFill does.
func (f *fill) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.release()
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
//
// While the dir holds anything but the marker and fill files of ours (a
// file someone put there, a symlink at a fill file name), Resize still
// shrinks but never grows, and returns an error saying so whose text stays
// the same for as long as that entry is there, so that a caller can log it
// once. A missing dir is made again, as openFill makes it.
func (f *fill) Resize(total int64) error {
	if total < 0 {
		return fmt.Errorf("resizing fill in %s: negative total %d", f.dir, total)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if lost, _, err := f.checkLost(); lost != nil {
		if total > 0 {
			err = errors.Join(lost, err)
		}
		return err
	}
	d, err := f.open(total > 0)
	if err != nil || d == nil {
		return err
	}
	defer d.Close()
	files, foreign, err := scanFillDir(d, f.dir)
	if err != nil {
		return fmt.Errorf("resizing fill: %w", err)
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
	if len(foreign) > 0 {
		return foreignError(f.dir, foreign, "the fill does not grow while it is there")
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

// Usage returns how many fill files of ours there are and the bytes they
// hold, counted by allocated blocks (st_blocks*512), not by file size: a
// sparse file holds nothing, and filesystems differ in how they count.
// Anything else in the dir is not counted (Resize reports it). A missing
// directory holds nothing. While a resize is under way (seconds, where the
// filesystem needs the fill written) it answers at once with what it found
// last.
func (f *fill) Usage() (files int, bytes int64, err error) {
	if !f.mu.TryLock() {
		f.seenMu.Lock()
		defer f.seenMu.Unlock()
		return f.seen.files, f.seen.bytes, nil
	}
	defer f.mu.Unlock()
	if lost, _, err := f.checkLost(); lost != nil {
		return 0, 0, err
	}
	d, found, _, err := f.scan()
	if err != nil || d == nil {
		return 0, 0, err
	}
	defer d.Close()
	for _, file := range found {
		bytes += file.alloc
	}
	f.setSeen(fillUsage{len(found), bytes})
	return len(found), bytes, nil
}

// scan opens the dir, when there is one, and lists the fill files of ours
// in it and anything else there; the caller closes d, which is nil without
// a dir.
func (f *fill) scan() (d *os.File, found []fillFile, foreign []foreignEntry, err error) {
	if d, err = f.open(false); err != nil || d == nil {
		return nil, nil, nil, err
	}
	if found, foreign, err = scanFillDir(d, f.dir); err != nil {
		d.Close()
		return nil, nil, nil, fmt.Errorf("scanning the fill: %w", err)
	}
	return d, found, foreign, nil
}

// Remove removes every fill file of ours, then the marker and the dir (when
// its parent lets us), and releases the dir's lock; a later Resize makes the
// dir again. It returns how many files it removed and the bytes (allocated
// blocks) they held, which are valid even with an error. It never removes anything else: when the dir
// holds anything but fill files of ours and the marker, those and the dir
// are left in place, and the error names what is there.
func (f *fill) Remove() (files int, bytes int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.release()
	if lost, removed, err := f.checkLost(); lost != nil {
		return removed.files, removed.bytes, err
	}
	d, found, foreign, err := f.scan()
	if err != nil || d == nil {
		return 0, 0, err
	}
	defer d.Close()
	removed, err := f.removeFiles(d, found)
	files, bytes = removed.files, removed.bytes
	if err != nil {
		return files, bytes, err
	}
	if len(foreign) > 0 {
		return files, bytes, foreignError(f.dir, foreign, "left it and the dir in place")
	}
	return files, bytes, f.removeEmpty(d)
}

// openFile opens fill file name in d for writing, never following a
// symlink; with create it makes a new file (O_EXCL, mode 0600).
func (f *fill) openFile(d *os.File, name string, create bool) (*os.File, *unix.Stat_t, error) {
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
func (f *fillDir) unlink(d *os.File, name string) error {
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "unlink", Path: filepath.Join(f.dir, name), Err: err}
	}
	return nil
}

// truncate cuts file down to size, which frees the blocks past it, and
// updates file.
func (f *fill) truncate(d *os.File, file *fillFile, size int64) error {
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
func (f *fill) grow(d *os.File, name string, size int64, create bool) error {
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
