package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// fillDir is the fill's directory and what makes it ours: it is adopted
// only when its owner, DACL and marker say that we made it, or made, and
// held for as long as the fill owns it: the dir open without
// FILE_SHARE_DELETE, so that it can be neither renamed nor removed and its
// path keeps naming it (Windows has no openat: the fill works by paths),
// and its marker open and locked (LockFileEx), so that no other
// cro-exporter uses it. Its user (fill) guards it with its own lock.
type fillDir struct {
	dir string
	// diskPath is a path on the volume the fill must be on, "" when that
	// is not checked.
	diskPath string
	// volume is diskPath's volume when the fill was made (host.VolumeOf): the
	// only one it is ever on, for the daemon's whole life.
	volume string
	// owner is the state dir of the cro-exporter whose fill this is,
	// absolute with symlinks resolved: the content of the dir's marker.
	owner string
	// held is the fill dir, open, and marker its marker, open and locked,
	// while the fill owns the dir; both nil before it is made and after
	// Remove or Close.
	held, marker *os.File
}

// markerLock is where the marker's lock lies: far past its end, so that
// reading the marker (checkFillDirOwner, --recover's count) is never
// refused by the lock another cro-exporter holds.
const markerLock = 1 << 62

// release drops the held dir and the marker's lock.
func (f *fillDir) release() error {
	if f.held == nil {
		return nil
	}
	err := errors.Join(f.marker.Close(), f.held.Close())
	f.held, f.marker = nil, nil
	return err
}

// open returns a new open file of the fill dir. When none is held (before
// the dir is made, after Remove) it adopts or makes one, as openFill does.
// A missing dir is made when create is set, and is otherwise returned as
// nil with no error. A held dir cannot have been moved or replaced.
func (f *fillDir) open(create bool) (*os.File, error) {
	if f.held == nil {
		return f.take(create, true)
	}
	d, _, err := openFillDir(f.dir)
	return d, err
}

// adopt checks that the existing dir d is ours, locks its marker and holds
// both (hold), as take says; d is closed on error.
func (f *fillDir) adopt(d *os.File, st *statefile.Stat, strict bool) (*os.File, error) {
	fail := func(err error) (*os.File, error) {
		d.Close()
		return nil, err
	}
	if err := f.onDisk(); err != nil {
		return fail(err)
	}
	err := checkFillDirOwner(d, st, f.dir, f.owner)
	if errors.Is(err, errUnmarked) && strict {
		// Made for us: ours once marked, when it is empty. Two
		// cro-exporters marking it at once: the second's CREATE_NEW fails.
		if empty, eerr := isEmptyDir(d, f.dir); eerr != nil || !empty {
			return fail(errors.Join(err, eerr))
		}
		err = writeMarker(d, f.dir, f.owner)
	}
	if err != nil {
		return fail(err)
	}
	m, err := lockMarker(f.dir)
	if err != nil {
		return fail(err)
	}
	if strict {
		if err := onlyOurs(d, f.dir); err != nil {
			m.Close()
			return fail(err)
		}
	}
	return f.hold(d, m)
}

// make makes the missing fill dir, with a DACL of us alone, writes its
// marker and locks it. A dir someone else makes at that moment is
// adopted, or refused, as any existing one.
func (f *fillDir) make() (*os.File, error) {
	if err := parentOnDisk(f.dir, f.diskPath); err != nil {
		return nil, err
	}
	if err := f.onDisk(); err != nil {
		return nil, err
	}
	sa, err := privateDir()
	if err != nil {
		return nil, fmt.Errorf("creating fill dir %s: %w", f.dir, err)
	}
	p, err := windows.UTF16PtrFromString(f.dir)
	if err != nil {
		return nil, &fs.PathError{Op: "CreateDirectory", Path: f.dir, Err: err}
	}
	if err := windows.CreateDirectory(p, sa); err == windows.ERROR_ALREADY_EXISTS {
		return f.take(false, true)
	} else if err != nil {
		return nil, fmt.Errorf("creating fill dir: %w", &fs.PathError{Op: "CreateDirectory", Path: f.dir, Err: err})
	}
	d, st, err := openFillDir(f.dir)
	if err != nil {
		return nil, err
	}
	// What was made is checked as it is: a dir put in its place at once,
	// a DACL the volume did not keep.
	if problem := statefile.DirProblem(st); problem != "" {
		d.Close()
		return nil, &fillDirError{dir: f.dir, found: problem, advice: fillAdvice}
	}
	if err := writeMarker(d, f.dir, f.owner); err != nil {
		// Left without a marker, the dir could never be adopted; writeMarker
		// removed a marker written in part.
		d.Close()
		windows.RemoveDirectory(p)
		return nil, err
	}
	m, err := lockMarker(f.dir)
	if err != nil {
		d.Close()
		return nil, err
	}
	return f.hold(d, m)
}

// privateDir is a dir's security: a protected DACL granting us, our
// token's user, full control, inherited by all made in it, and no one else
// anything: Linux's mode 0700. The owner is the token's default.
func privateDir() (*windows.SecurityAttributes, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, fmt.Errorf("reading our token's user: %w", err)
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;" + u.User.Sid.String() + ")")
	if err != nil {
		return nil, err
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	return sa, nil
}

// hold keeps d and the locked marker m as the held dir, and returns a new
// open file of the dir for the caller's work.
func (f *fillDir) hold(d, m *os.File) (*os.File, error) {
	work, _, err := openFillDir(f.dir)
	if err != nil {
		d.Close()
		m.Close()
		return nil, err
	}
	f.release()
	f.held, f.marker = d, m
	return work, nil
}

// lockMarker opens the marker of dir, sharing only reading (no one may
// write, rename or delete it while it is held), and takes its lock without
// waiting: one cro-exporter holds it at a time.
func lockMarker(dir string) (*os.File, error) {
	m, err := openMarker(dir, windows.FILE_SHARE_READ)
	if errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
		return nil, &fillDirError{dir: dir, found: "is in use: its " + fillMarker + " marker is open for writing or deleting elsewhere", advice: "give this one its own --disk.fill-dir"}
	}
	if err != nil {
		return nil, err
	}
	ol := windows.Overlapped{OffsetHigh: markerLock >> 32}
	err = windows.LockFileEx(windows.Handle(m.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	switch {
	case err == nil:
		return m, nil
	case err == windows.ERROR_LOCK_VIOLATION:
		err = &fillDirError{dir: dir, found: "is in use by another cro-exporter (it holds the marker's lock)", advice: "give this one its own --disk.fill-dir"}
	default:
		err = &fs.PathError{Op: "LockFileEx", Path: m.Name(), Err: err}
	}
	m.Close()
	return nil, err
}

// unlink removes fill file name from the dir; DeleteFile removes a symlink
// itself, and never a dir.
func (f *fillDir) unlink(_ *os.File, name string) error {
	path := filepath.Join(f.dir, name)
	p, err := windows.UTF16PtrFromString(path)
	if err == nil {
		err = windows.DeleteFile(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "DeleteFile", Path: path, Err: err}
	}
	return nil
}

// removeEmpty lets the dir, emptied of fill files, go, then removes its
// marker and the dir itself where its parent lets us. A marker that is not
// one we wrote is left, and the dir with it. The open dir d and the held
// handles go first: they keep the marker and the dir from being deleted;
// the caller's own Close of d then does nothing.
func (f *fillDir) removeEmpty(d *os.File) error {
	d.Close()
	if err := f.release(); err != nil {
		return err
	}
	m, err := openMarker(f.dir, shareAll)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		var notOurs *fillDirError
		if errors.As(err, &notOurs) {
			notOurs.found += "; left it and the dir in place"
			notOurs.advice = ""
		}
		return err
	default:
		m.Close()
		if err := f.unlink(nil, fillMarker); err != nil {
			return err
		}
	}
	// A parent we may not write keeps the emptied dir: unmarked, it holds
	// nothing of ours, and an empty dir of ours is adopted again.
	p, err := windows.UTF16PtrFromString(f.dir)
	if err == nil {
		err = windows.RemoveDirectory(p)
	}
	switch err {
	case nil, windows.ERROR_FILE_NOT_FOUND, windows.ERROR_PATH_NOT_FOUND, windows.ERROR_ACCESS_DENIED, windows.ERROR_WRITE_PROTECT:
		return nil
	}
	return &fs.PathError{Op: "RemoveDirectory", Path: f.dir, Err: err}
}
