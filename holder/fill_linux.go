package holder

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/linux"
	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// fillMarker is the marker file cro-exporter writes (mode 0600) into a fill
// dir when it makes the dir. It holds the owner: the state dir, absolute
// with symlinks resolved, the value of ownerEnv. A fill dir is ours only
// when its marker names our state dir.
const fillMarker = ".cro-exporter"

// maxMarker is the largest marker read: a path, and a newline.
const maxMarker = unix.PathMax + 1

// fillAdvice is what to do about a fill dir cro-exporter did not make.
const fillAdvice = "cro-exporter adopts only a directory it made; give --disk.fill-dir a path that does not exist yet"

// fillDirError says what is wrong with a fill dir, and what to do. One that
// is not ours (another user's, not 0700, marked by another cro-exporter or
// not at all) is errNotOurs: --recover leaves it alone.
type fillDirError struct {
	dir    string
	found  string // what is wrong, such as "has mode 1777, not 0700"
	advice string // what to do; may be ""
	other  bool   // not ours
	// unmarked is a dir of ours, mode 0700, without a marker: adopted
	// when it is empty.
	unmarked bool
}

// errUnmarked matches a fillDirError of a dir without a marker.
var errUnmarked = errors.New("fill dir without a marker")

func (e *fillDirError) Error() string {
	s := "fill dir " + e.dir + " " + e.found
	if e.advice != "" {
		s += "; " + e.advice
	}
	return s
}

func (e *fillDirError) Is(target error) bool {
	return e.other && target == errNotOurs || e.unmarked && target == errUnmarked
}

// isEmptyDir tells whether the dir d holds no entry at all, read through a
// new open file so that d's own offset stays at the start.
func isEmptyDir(d *os.File, dir string) (bool, error) {
	fd, err := unix.Openat(int(d.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) == 0 && errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return false, nil
}

// CheckFillDir checks, without changing anything, that fillDir can be the
// fill dir of the cro-exporter with the state dir stateDir and the disk
// diskPath: it must be on the filesystem of diskPath (a missing fillDir:
// its parent, which must exist), and, when it exists, be a directory that
// this cro-exporter made: not a symlink, owned by our effective uid, mode
// 0700, with a marker naming stateDir and nothing else in it but fill files
// of ours. An empty dir of ours, mode 0700, without a marker is also fine:
// one made for us, as a systemd unit whose daemon may not write the dir's
// parent does; openFill marks it. The error says what was found and what to
// do. openFill checks the same again, since the dir may change in between.
func CheckFillDir(fillDir, diskPath, stateDir string) error {
	if fillDir == "" || stateDir == "" {
		return errors.New("fill dir: empty path, or no state dir")
	}
	owner, err := resolvePath(stateDir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", stateDir, err)
	}
	dir := filepath.Clean(fillDir)
	d, st, err := openFillDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return parentOnDisk(dir, diskPath)
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if err := checkDisk(dir, st, diskPath); err != nil {
		return err
	}
	if err := checkFillDirOwner(d, st, dir, owner); errors.Is(err, errUnmarked) {
		if empty, eerr := isEmptyDir(d, dir); eerr != nil || !empty {
			return errors.Join(err, eerr)
		}
		return nil
	} else if err != nil {
		return err
	}
	_, foreign, err := scanFillDir(d, dir)
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		return foreignError(dir, foreign, fillAdvice)
	}
	return nil
}

// openFill opens the fill dir dir of the cro-exporter whose state dir is
// owner (absolute, symlinks resolved, as ownerEnv holds it), and holds an
// flock(2) on it until Remove or Close, so that no other cro-exporter uses
// it meanwhile. A missing dir is made, mode 0700, with its marker naming
// owner (its parent must exist). An existing one is adopted only when this
// cro-exporter made it: see CheckFillDir, whose rules it enforces again.
// With diskPath set, the dir must be on the filesystem of diskPath. It
// never changes the mode of a dir, nor anything in one it refuses. The fill
// files found there, from an earlier run, are adopted: every call works on
// the files it finds, and nothing but fill files and the marker is ever
// touched.
func openFill(dir, diskPath, owner string) (*fill, error) {
	f, err := newFill(dir, diskPath, owner)
	if err != nil {
		return nil, err
	}
	d, err := f.take(true, true)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &fillDirError{dir: f.dir, found: "was removed as soon as it was made"}
	}
	return f, d.Close()
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
	f := &fill{dir: filepath.Clean(dir), diskPath: diskPath, owner: owner, maxFile: maxFillFile, fallocate: fallocateMode0}
	if diskPath != "" {
		var st unix.Stat_t
		if err := unix.Stat(diskPath, &st); err != nil {
			return nil, fmt.Errorf("disk path: %w", &fs.PathError{Op: "stat", Path: diskPath, Err: err})
		}
		f.dev = st.Dev
	}
	return f, nil
}

// errGone matches the error of a fill whose filesystem is no longer the one
// at diskPath.
var errGone = errors.New("the filesystem of the disk path is gone")

// goneError says that diskPath no longer leads to the filesystem the fill
// was opened on, and what it leads to instead.
type goneError struct {
	diskPath string
	now      string // "device 0:53", or why it could not be looked at
	dev      uint64 // the device at start
}

func (e *goneError) Error() string {
	return fmt.Sprintf("--disk.path %s is no longer on the filesystem it was on at start (device %s), but %s; the fill there is released and not grown until it is back",
		e.diskPath, linux.DeviceName(e.dev), e.now)
}

func (e *goneError) Is(target error) bool { return target == errGone }

// lost tells whether diskPath still leads to the filesystem the fill was
// opened on: nil while it does (and always without a diskPath), a goneError
// once it was unmounted (lazily too), deleted, or another filesystem was
// mounted or linked in its place.
func (f *fill) lost() error {
	if f.diskPath == "" {
		return nil
	}
	var st unix.Stat_t
	switch err := unix.Stat(f.diskPath, &st); {
	case err != nil:
		return &goneError{diskPath: f.diskPath, now: "stat says " + err.Error(), dev: f.dev}
	case st.Dev != f.dev:
		return &goneError{diskPath: f.diskPath, now: "on device " + linux.DeviceName(st.Dev), dev: f.dev}
	}
	return nil
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
	for i := len(found) - 1; i >= 0; i-- {
		if err := f.unlink(d, found[i].name); err != nil {
			return lost, removed, err
		}
		removed.files++
		removed.bytes += found[i].alloc
	}
	return lost, removed, nil
}

// setSeen records what Usage found last.
func (f *fill) setSeen(u fillUsage) {
	f.seenMu.Lock()
	f.seen = u
	f.seenMu.Unlock()
}

// Close releases the fill dir's lock, leaving the fill files in place.
// Calling it again does nothing; calling another method takes the dir
// again, as openFill does.
func (f *fill) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.release()
}

// release drops the held dir and its lock.
func (f *fill) release() error {
	if f.held == nil {
		return nil
	}
	err := f.held.Close()
	f.held = nil
	return err
}

// fallocateMode0 allocates blocks for [off, off+length) of fd and extends
// the file to cover them.
func fallocateMode0(fd int, off, length int64) error {
	return unix.Fallocate(fd, 0, off, length)
}

// Resize grows or shrinks the fill files to hold total bytes, in files of
// at most maxFillFile. Shrinking removes files from the highest number down
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
	d, err := f.open(false)
	if err != nil || d == nil {
		return 0, 0, err
	}
	defer d.Close()
	found, _, err := scanFillDir(d, f.dir)
	if err != nil {
		return 0, 0, err
	}
	for _, file := range found {
		bytes += file.alloc
	}
	f.setSeen(fillUsage{len(found), bytes})
	return len(found), bytes, nil
}

// Remove removes every fill file of ours, then the marker and the dir (when
// its parent lets us), and releases the dir's lock; a later Resize makes the dir again. It returns
// how many files it removed and the bytes (allocated blocks) they held, which
// are valid even with an error. It never removes anything else: when the dir
// holds anything but fill files of ours and the marker, those and the dir
// are left in place, and the error names what is there.
func (f *fill) Remove() (files int, bytes int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.release()
	if lost, removed, err := f.checkLost(); lost != nil {
		return removed.files, removed.bytes, err
	}
	d, err := f.open(false)
	if err != nil || d == nil {
		return 0, 0, err
	}
	defer d.Close()
	found, foreign, err := scanFillDir(d, f.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("removing fill: %w", err)
	}
	for i := len(found) - 1; i >= 0; i-- {
		if err := f.unlink(d, found[i].name); err != nil {
			return files, bytes, err
		}
		files++
		bytes += found[i].alloc
	}
	if len(foreign) > 0 {
		return files, bytes, foreignError(f.dir, foreign, "left it and the dir in place")
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(int(d.Fd()), fillMarker, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
	case err != nil:
		return files, bytes, &fs.PathError{Op: "lstat", Path: filepath.Join(f.dir, fillMarker), Err: err}
	case markerProblem(&st) != "":
		return files, bytes, &fillDirError{dir: f.dir, found: "has a " + fillMarker + " that " + markerProblem(&st) + "; left it and the dir in place"}
	default:
		if err := f.unlink(d, fillMarker); err != nil {
			return files, bytes, err
		}
	}
	// rmdir, unlike os.Remove, never removes a symlink put in the dir's
	// place. A parent we may not write (/, for the default fill dir of a
	// daemon run as a service user) keeps the emptied dir: unmarked, it
	// holds nothing of ours, and an empty dir of ours is adopted again.
	switch err := unix.Rmdir(f.dir); err {
	case nil, unix.ENOENT, unix.EACCES, unix.EPERM, unix.EROFS:
	default:
		return files, bytes, &fs.PathError{Op: "rmdir", Path: f.dir, Err: err}
	}
	return files, bytes, nil
}

// open returns a new open file of the fill dir, after checking that the
// path still names the dir held. When none is held (before the dir is made,
// after Remove) it adopts or makes one, as openFill does. A missing dir is
// made when create is set, and is otherwise returned as nil with no error.
func (f *fill) open(create bool) (*os.File, error) {
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

// take adopts the fill dir, or makes it when it is missing and create is
// set, locks it and holds it, and returns a new open file of it; nil with
// no error when it is missing and create is not set. With strict, a dir
// holding anything but fill files of ours and the marker is refused (openFill);
// without, it is taken (--recover, which removes only what is ours).
func (f *fill) take(create, strict bool) (*os.File, error) {
	d, st, err := openFillDir(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, nil
		}
		return f.make()
	}
	if err != nil {
		return nil, err
	}
	if err := f.adopt(d, st, strict); err != nil {
		d.Close()
		return nil, err
	}
	return f.hold(d, st)
}

// adopt checks that the existing dir d is ours, and locks it.
func (f *fill) adopt(d *os.File, st *unix.Stat_t, strict bool) error {
	if err := f.onDisk(st); err != nil {
		return err
	}
	unmarked := false
	if err := checkFillDirOwner(d, st, f.dir, f.owner); errors.Is(err, errUnmarked) && strict {
		unmarked = true
	} else if err != nil {
		return err
	}
	if err := lockFillDir(d, f.dir); err != nil {
		return err
	}
	if unmarked {
		// Made for us and empty (looked at under the lock): ours from now.
		if empty, err := isEmptyDir(d, f.dir); err != nil || !empty {
			return errors.Join(checkFillDirOwner(d, st, f.dir, f.owner), err)
		}
		return writeMarker(d, f.dir, f.owner)
	}
	if !strict {
		return nil
	}
	_, foreign, err := scanFillDir(d, f.dir)
	if err == nil && len(foreign) > 0 {
		err = foreignError(f.dir, foreign, fillAdvice)
	}
	return err
}

// make makes the missing fill dir, mode 0700, locks it and writes its
// marker. A dir someone else makes at that moment is adopted, or refused,
// as any existing one.
func (f *fill) make() (*os.File, error) {
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
	if problem := dirProblem(st); problem != "" {
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
func (f *fill) hold(d *os.File, st *unix.Stat_t) (*os.File, error) {
	fd, err := unix.Openat(int(d.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		d.Close()
		return nil, &fs.PathError{Op: "open", Path: f.dir, Err: err}
	}
	f.release()
	f.held, f.heldSt = d, *st
	return os.NewFile(uintptr(fd), f.dir), nil
}

// writeMarker writes the marker naming owner into the dir d, which we just
// made, and makes it durable: a dir whose marker a crash lost would be
// refused at the next start.
func writeMarker(d *os.File, dir, owner string) error {
	path := filepath.Join(dir, fillMarker)
	fd, err := unix.Openat(int(d.Fd()), fillMarker, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the fill dir's marker: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	m := os.NewFile(uintptr(fd), path)
	_, err = m.WriteString(owner + "\n")
	if err == nil {
		err = m.Sync()
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.Sync()
	}
	if err != nil {
		return fmt.Errorf("writing the fill dir's marker: %w", err)
	}
	return nil
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

// fileKind describes a file that is not a directory: "is a symlink".
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "is a symlink"
	case unix.S_IFREG:
		return "is not a directory (a regular file)"
	}
	return "is not a directory"
}

// dirProblem says why a dir, as st describes it, is not one we made, or "".
func dirProblem(st *unix.Stat_t) string {
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return fmt.Sprintf("is owned by uid %d, not by us (uid %d)", st.Uid, uid)
	}
	if mode := st.Mode & 0o7777; mode != 0o700 {
		return fmt.Sprintf("has mode %04o, not 0700", mode)
	}
	return ""
}

// checkFillDirOwner checks that the existing fill dir d is ours: owned by
// us, mode 0700, and its marker names owner.
func checkFillDirOwner(d *os.File, st *unix.Stat_t, dir, owner string) error {
	if problem := dirProblem(st); problem != "" {
		return &fillDirError{dir: dir, found: problem, advice: fillAdvice, other: true}
	}
	var mst unix.Stat_t
	err := unix.Fstatat(int(d.Fd()), fillMarker, &mst, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return &fillDirError{dir: dir, found: "has no " + fillMarker + " marker, so cro-exporter did not make it", advice: fillAdvice, other: true, unmarked: true}
	}
	if err != nil {
		return &fs.PathError{Op: "lstat", Path: filepath.Join(dir, fillMarker), Err: err}
	}
	if problem := markerProblem(&mst); problem != "" {
		return &fillDirError{dir: dir, found: "has a " + fillMarker + " marker that " + problem, advice: fillAdvice, other: true}
	}
	fd, err := unix.Openat(int(d.Fd()), fillMarker, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: filepath.Join(dir, fillMarker), Err: err}
	}
	m := os.NewFile(uintptr(fd), filepath.Join(dir, fillMarker))
	defer m.Close()
	if err := unix.Fstat(fd, &mst); err != nil {
		return &fs.PathError{Op: "fstat", Path: m.Name(), Err: err}
	}
	if problem := markerProblem(&mst); problem != "" {
		return &fillDirError{dir: dir, found: "has a " + fillMarker + " marker that " + problem, advice: fillAdvice, other: true}
	}
	data, err := io.ReadAll(io.LimitReader(m, maxMarker+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", m.Name(), err)
	}
	if got := strings.TrimSuffix(string(data), "\n"); got != owner {
		return &fillDirError{dir: dir, found: "belongs to the cro-exporter with state dir " + statefile.Quote(got),
			advice: "give this one its own --disk.fill-dir", other: true}
	}
	return nil
}

// markerProblem says why a marker, as st describes it, is not one we wrote,
// or "": it must be a file of ours as a fill file is, and small.
func markerProblem(st *unix.Stat_t) string {
	if problem := fillFileProblem(st); problem != "" {
		return problem
	}
	if st.Size > maxMarker {
		return "is too large"
	}
	return ""
}

// checkDisk checks that the fill dir, as st describes it, is on the
// filesystem of diskPath; "" checks nothing.
func checkDisk(dir string, st *unix.Stat_t, diskPath string) error {
	if diskPath == "" {
		return nil
	}
	var dst unix.Stat_t
	if err := unix.Stat(diskPath, &dst); err != nil {
		return fmt.Errorf("disk path: %w", &fs.PathError{Op: "stat", Path: diskPath, Err: err})
	}
	if st.Dev != dst.Dev {
		return &fillDirError{dir: dir, found: "is on another filesystem than --disk.path " + diskPath,
			advice: "cro-exporter measures only that one; give a --disk.fill-dir on it"}
	}
	return nil
}

// onDisk checks that the fill dir (or its parent), as st describes it, is
// on the filesystem of diskPath, and that this is still the one the fill
// was opened on.
func (f *fill) onDisk(st *unix.Stat_t) error {
	if err := checkDisk(f.dir, st, f.diskPath); err != nil {
		return err
	}
	if f.diskPath != "" && st.Dev != f.dev {
		return &fillDirError{dir: f.dir, found: "is on another filesystem than --disk.path " + f.diskPath + " was on at start",
			advice: "cro-exporter fills only that one"}
	}
	return nil
}

// parentOnDisk checks that the parent of the missing fill dir exists, so
// that the dir can be made, and is on the filesystem of diskPath.
func parentOnDisk(dir, diskPath string) error {
	parent := filepath.Dir(dir)
	var st unix.Stat_t
	if err := unix.Stat(parent, &st); err != nil {
		return &fillDirError{dir: dir, found: fmt.Sprintf("cannot be made: its parent %s: %v", parent, err), advice: "make the parent, or give another --disk.fill-dir"}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &fillDirError{dir: dir, found: fmt.Sprintf("cannot be made: its parent %s is not a directory", parent), advice: "give another --disk.fill-dir"}
	}
	return checkDisk(dir, &st, diskPath)
}

// foreignEntry is an entry of the fill dir that is neither a fill file of
// ours nor the marker.
type foreignEntry struct {
	name    string
	problem string // why a fill file name is not ours; "" for another name
}

// foreignError says what the fill dir holds that is not ours: the first
// entry by name, quoted short, so that the text stays the same as long as
// that entry is there.
func foreignError(dir string, foreign []foreignEntry, advice string) error {
	e := foreign[0]
	found := "holds " + statefile.Quote(e.name) + ", which is not a fill file of ours"
	if e.problem != "" {
		found += " (it " + e.problem + ")"
	}
	if len(foreign) > 1 {
		found += ", and other entries that are not"
	}
	return &fillDirError{dir: dir, found: found, advice: advice}
}

// scanFillDir returns the fill files of ours in d in number order, and,
// sorted by name, every other entry but the marker.
func scanFillDir(d *os.File, dir string) ([]fillFile, []foreignEntry, error) {
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, nil, fmt.Errorf("reading fill dir: %w", err)
	}
	var files []fillFile
	var foreign []foreignEntry
	for _, e := range entries {
		name := e.Name()
		if name == fillMarker {
			continue
		}
		num, ok := parseFillName(name)
		if !ok {
			foreign = append(foreign, foreignEntry{name: name})
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed since the listing
			}
			return nil, nil, &fs.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err}
		}
		if problem := fillFileProblem(&st); problem != "" {
			foreign = append(foreign, foreignEntry{name: name, problem: problem})
			continue
		}
		files = append(files, fillFile{name: name, num: num, size: st.Size, alloc: st.Blocks * 512})
	}
	slices.SortFunc(files, func(a, b fillFile) int { return a.num - b.num })
	slices.SortFunc(foreign, func(a, b foreignEntry) int { return strings.Compare(a.name, b.name) })
	return files, foreign, nil
}

// fillFileProblem says why the file at a fill file name, as st describes
// it, is not ours: only a regular file of ours with one link is, so that no
// write ever lands outside the directory. "" when it is ours.
func fillFileProblem(st *unix.Stat_t) string {
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return "is a symlink"
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return "is not a regular file"
	case st.Nlink != 1:
		return "has more than one link"
	case st.Uid != uint32(os.Geteuid()):
		return "is owned by another user"
	}
	return ""
}

// checkFillFile refuses anything at a fill file name but a regular file of
// ours with one link.
func checkFillFile(path string, st *unix.Stat_t) error {
	if problem := fillFileProblem(st); problem != "" {
		return fmt.Errorf("fill file %s: %s, refusing it", path, problem)
	}
	return nil
}

// resolvePath is path made absolute with its symlinks resolved, as ownerOf
// makes it, also when path, or its end, does not exist yet: the part that
// exists is resolved and the rest appended.
func resolvePath(path string) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		resolved, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
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
func (f *fill) unlink(d *os.File, name string) error {
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

// pathErrno returns the error inside a *fs.PathError, whose path the caller
// already names.
func pathErrno(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
