package holder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// fillSys is what Windows' fill adds: nothing. Windows has no fallocate:
// allocate reserves the blocks with FileAllocationInfo and sets the end of
// file (NTFS then counts them as used), and writes fillPattern data where
// that does not allocate (Wine: WINDOWS.md).
type fillSys struct{}

func newFillSys() fillSys { return fillSys{} }

// pinDisk records the volume of diskPath: the only one the fill is ever
// on.
func (f *fillDir) pinDisk() (err error) {
	f.volume, err = diskVolume(f.diskPath)
	return err
}

// openFile opens fill file name for writing, never following a symlink or
// junction, and sharing only reading (--recover's count opens it to look
// only), and returns it with its size and allocated bytes; with create it
// makes a new file, which gets the dir's inheritable ACE: us alone. d, open,
// keeps the dir naming it.
func (f *fill) openFile(_ *os.File, name string, create bool) (fh *os.File, size, alloc int64, err error) {
	disposition := uint32(windows.OPEN_EXISTING)
	if create {
		disposition = windows.CREATE_NEW
	}
	path := filepath.Join(f.dir, name)
	fh, st, err := openHandle(path, windows.GENERIC_WRITE, windows.FILE_SHARE_READ, disposition, 0)
	if err != nil {
		return nil, 0, 0, err
	}
	if problem := statefile.FileProblem(st); problem != "" {
		fh.Close()
		return nil, 0, 0, fmt.Errorf("fill file %s: %s, refusing it", path, problem)
	}
	if size, alloc, err = sizes(fh); err != nil {
		fh.Close()
		return nil, 0, 0, err
	}
	return fh, size, alloc, nil
}

// holdsNothing tells whether fh, a fill file just made, got nothing: no
// clusters, whatever its end of file, which reserve moves before they are
// there (and which Wine leaves sparse).
func holdsNothing(fh *os.File) bool {
	_, alloc, err := sizes(fh)
	return err == nil && alloc == 0
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
	_, alloc, err := sizes(fh)
	return alloc >= end, err
}
