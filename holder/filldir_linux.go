package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// fillDir is the fill's directory and what makes it ours: it is adopted
// only when its owner, mode and marker say that we made it, or made, and
// held open under flock(2) for as long as the fill owns it, so that no
// other cro-exporter uses it and a dir put in its place is noticed. Its
// user (fill) guards it with its own lock.
type fillDir struct {
	dir string
	// diskPath is a path on the filesystem the fill must be on, "" when
	// that is not checked.
	diskPath string
	// dev is the device of diskPath's filesystem when the fill was made:
	// the only one it is ever on, for the daemon's whole life.
	dev uint64
	// owner is the state dir of the cro-exporter whose fill this is,
	// absolute with symlinks resolved: the content of the dir's marker.
	owner string
	// held is the fill dir, open and flock(2)ed, while the fill owns it;
	// nil before it is made and after Remove or Close.
	held   *os.File
	heldSt unix.Stat_t
}

// release drops the held dir and its lock.
func (f *fillDir) release() error {
	if f.held == nil {
		return nil
	}
	err := f.held.Close()
	f.held = nil
	return err
}

// open returns a new open file of the fill dir, after checking that the
// path still names the dir held. When none is held (before the dir is made,
// after Remove) it adopts or makes one, as openFill does. A missing dir is
// made when create is set, and is otherwise returned as nil with no error.
func (f *fillDir) open(create bool) (*os.File, error) {
	if f.held == nil {
		return f.take(create, true)
	}
	d, st, err := openFillDir(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed or moved away from under us: what it held is not ours
		// to find any more.
		f.release()
		return f.take(create, true)
	}
	if err != nil {
		return nil, err
	}
	if st.Dev != f.heldSt.Dev || st.Ino != f.heldSt.Ino {
		d.Close()
		return nil, &fillDirError{dir: f.dir, found: "is not the directory cro-exporter made there: it was replaced", advice: "move it away, or restart cro-exporter"}
	}
	return d, nil
}

// adopt checks that the existing dir d is ours, locks it and holds it
// (hold), as take says; d is closed on error.
func (f *fillDir) adopt(d *os.File, st *unix.Stat_t, strict bool) (*os.File, error) {
	fail := func(err error) (*os.File, error) {
		d.Close()
		return nil, err
	}
	if err := f.onDisk(st); err != nil {
		return fail(err)
	}
	unmarked := false
	if err := checkFillDirOwner(d, st, f.dir, f.owner); errors.Is(err, errUnmarked) && strict {
		unmarked = true
	} else if err != nil {
		return fail(err)
	}
	if err := lockFillDir(d, f.dir); err != nil {
		return fail(err)
	}
	if unmarked {
		// Made for us and empty (looked at under the lock): ours from now.
		if empty, err := isEmptyDir(d, f.dir); err != nil || !empty {
			return fail(errors.Join(checkFillDirOwner(d, st, f.dir, f.owner), err))
		}
		if err := writeMarker(d, f.dir, f.owner); err != nil {
			return fail(err)
		}
	} else if strict {
		if err := onlyOurs(d, f.dir); err != nil {
			return fail(err)
		}
	}
	return f.hold(d, st)
}

// make makes the missing fill dir, mode 0700, locks it and writes its
// marker. A dir someone else makes at that moment is adopted, or refused,
// as any existing one.
func (f *fillDir) make() (*os.File, error) {
	if err := parentOnDisk(f.dir, f.diskPath); err != nil {
		return nil, err
	}
	var parent unix.Stat_t
	if err := unix.Stat(filepath.Dir(f.dir), &parent); err != nil {
		return nil, &fillDirError{dir: f.dir, found: fmt.Sprintf("cannot be made: its parent: %v", err)}
	}
	if err := f.onDisk(&parent); err != nil {
		return nil, err
	}
	if err := unix.Mkdir(f.dir, 0o700); err == unix.EEXIST {
		return f.take(false, true)
	} else if err != nil {
		return nil, fmt.Errorf("creating fill dir: %w", &fs.PathError{Op: "mkdir", Path: f.dir, Err: err})
	}
	d, st, err := openFillDir(f.dir)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		d.Close()
		return nil, err
	}
	// What was made is checked as it is: a dir put in its place at once, a
	// umask that took the owner's bits.
	if err := f.onDisk(st); err != nil {
		return fail(err)
	}
	if problem := statefile.DirProblem(st); problem != "" {
		return fail(&fillDirError{dir: f.dir, found: problem, advice: fillAdvice})
	}
	if err := lockFillDir(d, f.dir); err != nil {
		return fail(err)
	}
	if err := writeMarker(d, f.dir, f.owner); err != nil {
		// Left without a marker, the dir could never be adopted.
		unix.Unlinkat(int(d.Fd()), fillMarker, 0)
		unix.Rmdir(f.dir)
		return fail(err)
	}
	return f.hold(d, st)
}

// hold keeps d, locked, as the held dir, and returns a new open file of it
// for the caller's work: flock belongs to the open file description, which
// the new one does not share, and closing it leaves the lock held.
func (f *fillDir) hold(d *os.File, st *unix.Stat_t) (*os.File, error) {
	work, err := reopenDir(d, f.dir)
	if err != nil {
		d.Close()
		return nil, err
	}
	f.release()
	f.held, f.heldSt = d, *st
	return work, nil
}

// lockFillDir takes the exclusive flock on the fill dir d without waiting.
func lockFillDir(d *os.File, dir string) error {
	for {
		err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return nil
		case unix.EWOULDBLOCK:
			return &fillDirError{dir: dir, found: "is in use by another cro-exporter (it holds the dir's lock)", advice: "give this one its own --disk.fill-dir"}
		case unix.EINTR:
			continue
		}
		return &fs.PathError{Op: "flock", Path: dir, Err: err}
	}
}

// openFillDir opens the fill dir without following a symlink (or blocking
// on a FIFO) and fstats it. A missing dir is an error wrapping
// fs.ErrNotExist.
func openFillDir(dir string) (*os.File, *unix.Stat_t, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if err != nil {
		var st unix.Stat_t
		if lerr := unix.Lstat(dir, &st); lerr == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, nil, &fillDirError{dir: dir, found: fileKind(st.Mode), advice: "give --disk.fill-dir a real directory, or a path that does not exist yet"}
		}
		return nil, nil, fmt.Errorf("opening fill dir: %w", err)
	}
	st := new(unix.Stat_t)
	if err := unix.Fstat(int(d.Fd()), st); err != nil {
		d.Close()
		return nil, nil, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	return d, st, nil
}

// reopenDir returns a new open file of the dir d, with an offset (and an
// open file description, which flock belongs to) of its own.
func reopenDir(d *os.File, dir string) (*os.File, error) {
	fd, err := unix.Openat(int(d.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// removeEmpty removes the marker of the dir d, emptied of fill files, then
// the dir itself where its parent lets us. A marker that is not one we
// wrote is left, and the dir with it.
func (f *fillDir) removeEmpty(d *os.File) error {
	var st unix.Stat_t
	switch err := unix.Fstatat(int(d.Fd()), fillMarker, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return &fs.PathError{Op: "lstat", Path: filepath.Join(f.dir, fillMarker), Err: err}
	case markerProblem(&st) != "":
		return &fillDirError{dir: f.dir, found: "has a " + fillMarker + " that " + markerProblem(&st) + "; left it and the dir in place"}
	default:
		if err := f.unlink(d, fillMarker); err != nil {
			return err
		}
	}
	// rmdir, unlike os.Remove, never removes a symlink put in the dir's
	// place. A parent we may not write (/, for the default fill dir of a
	// daemon run as a service user) keeps the emptied dir: unmarked, it
	// holds nothing of ours, and an empty dir of ours is adopted again.
	switch err := unix.Rmdir(f.dir); err {
	case nil, unix.ENOENT, unix.EACCES, unix.EPERM, unix.EROFS:
	default:
		return &fs.PathError{Op: "rmdir", Path: f.dir, Err: err}
	}
	return nil
}
