package holder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// fill is Windows' diskFill: files allocated for real (never sparse), in a
// directory held open and locked (fillDir). Windows has no fallocate:
// allocate reserves the blocks with FileAllocationInfo and sets the end of
// file (NTFS then counts them as used), and writes fillPattern data where
// that does not allocate (Wine: WINDOWS.md).
type fill struct {
	// fillDir is the directory, held while the fill owns it; mu guards it.
	fillDir
	// maxFile is the largest fill file: MaxFillFile, smaller in tests.
	maxFile int64

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
	f := &fill{fillDir: fillDir{dir: filepath.Clean(dir), diskPath: diskPath, owner: owner}, maxFile: MaxFillFile}
	if diskPath != "" {
		var err error
		if f.volume, err = diskVolume(diskPath); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Close releases the fill dir's lock, leaving the fill files in place.
// Calling it again does nothing; calling another method takes the dir
// again, as openFill does.
func (f *fill) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.release()
}

// Resize grows or shrinks the fill files to hold total bytes, in files of
// at most MaxFillFile. Shrinking removes files from the highest number down
// and truncates the last one kept; growing extends the last partial file,
// then adds files (allocate). On a full volume it stops, keeps what it
// allocated, and returns an error wrapping ERROR_DISK_FULL.
//
// While the dir holds anything but the marker and fill files of ours,
// Resize still shrinks but never grows, and returns an error saying so
// whose text stays the same for as long as that entry is there. A missing
// dir is made again, as openFill makes it.
func (f *fill) Resize(total int64) error {
	if total < 0 {
		return fmt.Errorf("resizing fill in %s: negative total %d", f.dir, total)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
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
			if err := f.truncate(&files[i], keep[i]); err != nil {
				return err
			}
		}
	}
	if len(foreign) > 0 {
		return foreignError(f.dir, foreign, "the fill does not grow while it is there")
	}
	for i, file := range files {
		if keep[i] > 0 && (file.size < keep[i] || file.alloc < keep[i]) {
			if err := f.grow(file.name, keep[i], false); err != nil {
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
		if err := f.grow(fillName(next+i), n, true); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns how many fill files of ours there are and the bytes they
// hold, counted by allocated size (AllocationSize), not by file size: a
// sparse file holds nothing. Anything else in the dir is not counted
// (Resize reports it). A missing directory holds nothing. While a resize
// is under way it answers at once with what it found last.
func (f *fill) Usage() (files int, bytes int64, err error) {
	if !f.mu.TryLock() {
		f.seenMu.Lock()
		defer f.seenMu.Unlock()
		return f.seen.files, f.seen.bytes, nil
	}
	defer f.mu.Unlock()
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

// Remove removes every fill file of ours, one by one (never os.RemoveAll,
// which Wine 8 cannot do), then the marker and the dir (when its parent
// lets us), and releases the dir; a later Resize makes the dir again. It
// returns how many files it removed and the bytes (allocated size) they
// held, which are valid even with an error. It never removes anything
// else: when the dir holds anything but fill files of ours and the marker,
// those and the dir are left in place, and the error names what is there.
func (f *fill) Remove() (files int, bytes int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.release()
	d, found, foreign, err := f.scan()
	if err != nil || d == nil {
		return 0, 0, err
	}
	removed, err := f.removeFiles(d, found)
	// The dir cannot be removed while it is open.
	d.Close()
	files, bytes = removed.files, removed.bytes
	if err != nil {
		return files, bytes, err
	}
	if len(foreign) > 0 {
		return files, bytes, foreignError(f.dir, foreign, "left it and the dir in place")
	}
	return files, bytes, f.removeEmpty()
}

// openFile opens fill file name for writing, never following a symlink or
// junction, and sharing only reading (--recover's count opens it to look
// only); with create it makes a new file, which gets the dir's inheritable
// ACE: us alone.
func (f *fill) openFile(name string, create bool) (*os.File, *statefile.Stat, error) {
	disposition := uint32(windows.OPEN_EXISTING)
	if create {
		disposition = windows.CREATE_NEW
	}
	path := filepath.Join(f.dir, name)
	fh, st, err := openHandle(path, windows.GENERIC_WRITE, windows.FILE_SHARE_READ, disposition, 0)
	if err != nil {
		return nil, nil, err
	}
	if problem := statefile.FileProblem(st); problem != "" {
		fh.Close()
		return nil, nil, fmt.Errorf("fill file %s: %s, refusing it", path, problem)
	}
	return fh, st, nil
}

// truncate cuts file down to size, which frees the clusters past it, and
// updates file.
func (f *fill) truncate(file *fillFile, size int64) error {
	fh, _, err := f.openFile(file.name, false)
	if err != nil {
		return err
	}
	defer fh.Close()
	if err := fh.Truncate(size); err != nil {
		return err
	}
	alloc, err := allocated(fh)
	if err != nil {
		return err
	}
	file.size, file.alloc = size, alloc
	return nil
}

// grow allocates fill file name up to size bytes, making it with create.
// A new file that got nothing before an error is removed again.
func (f *fill) grow(name string, size int64, create bool) error {
	fh, st, err := f.openFile(name, create)
	if err != nil {
		return err
	}
	from := st.Size
	alloc, err := allocated(fh)
	if err == nil {
		if alloc < st.Size {
			from = 0 // sparse somewhere: written over whole
		}
		err = f.allocate(fh, from, size)
	}
	if err != nil && create {
		if a, aerr := allocated(fh); aerr == nil && a == 0 {
			fh.Close()
			return errors.Join(fmt.Errorf("growing fill file %s to %d bytes: %w", fh.Name(), size, err), f.unlink(nil, name))
		}
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	} else {
		err = fmt.Errorf("growing fill file %s to %d bytes: %w", fh.Name(), size, err)
	}
	return err
}

// allocate allocates [from, to) of fh in fillChunk steps: each step
// reserves clusters up to its end (FileAllocationInfo) and moves the end of
// file there, which on NTFS leaves them allocated and counted as used, not
// sparse; where the volume refuses the reservation or the file's
// AllocationSize then falls short of the end (Wine 8: "not implemented",
// and a sparse end of file), the rest is written with fillPattern data and
// flushed. It stops at the first error, keeping what it did.
func (f *fill) allocate(fh *os.File, from, to int64) error {
	h := windows.Handle(fh.Fd())
	var buf []byte
	var err error
	for off := from; off < to && err == nil; {
		n := min(fillChunk, to-off)
		if buf == nil {
			var ok bool
			if ok, err = reserve(fh, off+n); err == nil && !ok {
				buf = fillPattern()
			}
		}
		if buf != nil {
			stampFill(buf[:n], off)
			if _, werr := fh.WriteAt(buf[:n], off); werr != nil {
				err = fmt.Errorf("write at offset %d: %w", off, pathErrno(werr))
			}
		}
		off += n
	}
	if buf != nil {
		if serr := windows.FlushFileBuffers(h); serr != nil {
			err = errors.Join(err, fmt.Errorf("FlushFileBuffers: %w", serr))
		}
	}
	return err
}

// reserve allocates fh up to end bytes and extends it to end, and tells
// whether the clusters are allocated now; false, with no error, where the
// volume cannot reserve them, and the caller writes them instead.
func reserve(fh *os.File, end int64) (bool, error) {
	h := windows.Handle(fh.Fd())
	size := end
	err := windows.SetFileInformationByHandle(h, windows.FileAllocationInfo, (*byte)(unsafe.Pointer(&size)), uint32(unsafe.Sizeof(size)))
	switch {
	case errors.Is(err, windows.ERROR_CALL_NOT_IMPLEMENTED), errors.Is(err, windows.ERROR_INVALID_PARAMETER),
		errors.Is(err, windows.ERROR_NOT_SUPPORTED), errors.Is(err, windows.ERROR_INVALID_FUNCTION):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("FileAllocationInfo to %d bytes: %w", end, err)
	}
	if err := windows.SetFileInformationByHandle(h, windows.FileEndOfFileInfo, (*byte)(unsafe.Pointer(&size)), uint32(unsafe.Sizeof(size))); err != nil {
		return false, fmt.Errorf("FileEndOfFileInfo to %d bytes: %w", end, err)
	}
	alloc, err := allocated(fh)
	return alloc >= end, err
}
