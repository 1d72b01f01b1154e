package holder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
)

// MaxFillFile is the largest fill file, in bytes: the fill is as many
// files as it takes.
const MaxFillFile = 1 << 30

// fillChunk is what one fallocate call or one write covers while growing.
// It is small so that ENOSPC keeps nearly all that was allocated before it:
// tmpfs undoes a refused fallocate call whole.
const fillChunk = 1 << 20

// Fill file names are fillPrefix and six digits, "fill-000001" upwards.
// Nothing else in the directory is ours but its marker, fillMarker.
const (
	fillPrefix    = "fill-"
	fillDigits    = 6
	maxFillNumber = 999999
)

// diskFill is the fill: files in one private directory, allocated so that
// the filesystem counts them as used, as df does, and that together hold
// the disk share the controller asks for. fill is the one there is, over
// each operating system's calls in its own files (fill*_linux.go,
// fill*_windows.go); its methods are safe for concurrent use.
type diskFill interface {
	// Resize makes the fill total bytes.
	Resize(total int64) error
	// Usage returns the fill files found and the bytes they hold.
	Usage() (files int, bytes int64, err error)
	// Remove removes every fill file and gives up the directory.
	Remove() (files int, bytes int64, err error)
}

// fill is the diskFill: files allocated for real (never sparse), in a
// directory held open and locked (fillDir). The flow is here; what each
// operating system does is behind small functions in its files (openFile,
// sizes, holdsNothing, allocate, unlink, removeEmpty, lost).
type fill struct {
	// fillDir is the directory, held while the fill owns it; mu guards it.
	fillDir
	// maxFile is the largest fill file: MaxFillFile, smaller in tests.
	maxFile int64
	// fillSys is what one operating system's fill adds.
	fillSys

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
	// Clean drops a trailing slash, which would make Linux follow a
	// symlink in spite of O_NOFOLLOW.
	f := &fill{fillDir: fillDir{dir: filepath.Clean(dir), diskPath: diskPath, owner: owner}, maxFile: MaxFillFile, fillSys: newFillSys()}
	if diskPath != "" {
		if err := f.pinDisk(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// fillUsage is the fill files found and the bytes they hold.
type fillUsage struct {
	files int
	bytes int64
}

// fillFile is one fill file as found in the directory.
type fillFile struct {
	name  string
	num   int
	size  int64 // st_size
	alloc int64 // st_blocks*512
}

// fillName returns the name of fill file n.
func fillName(n int) string { return fmt.Sprintf("%s%0*d", fillPrefix, fillDigits, n) }

// parseFillName returns the number of a fill file name, and false for any
// other name.
func parseFillName(name string) (int, bool) {
	if len(name) != len(fillPrefix)+fillDigits || name[:len(fillPrefix)] != fillPrefix {
		return 0, false
	}
	n := 0
	for _, c := range name[len(fillPrefix):] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// planFill decides the layout for total bytes: the length each existing
// file (in number order) should have, 0 meaning remove it, and the lengths
// of the files to add after them. Files are filled in number order up to
// maxFile each, so shrinking removes the highest numbers and truncates the
// last one kept, and growing extends the last partial file before adding.
func planFill(files []fillFile, total, maxFile int64) (keep, add []int64) {
	left := total
	keep = make([]int64, len(files))
	for i := range files {
		keep[i] = min(left, maxFile)
		left -= keep[i]
	}
	for left > 0 {
		n := min(left, maxFile)
		add = append(add, n)
		left -= n
	}
	return keep, add
}

// fillPattern returns a fillChunk buffer of random bytes for the write
// fallback: data that neither zero detection nor compression can shrink.
func fillPattern() []byte {
	b := make([]byte, fillChunk)
	var seed [32]byte
	for i := 0; i < len(seed); i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], rand.Uint64())
	}
	_, _ = rand.NewChaCha8(seed).Read(b) // never fails
	return b
}

// stampFill writes the file offset of every 4 KiB page of b, which is
// written at off, into the page, so no two pages are alike and block
// deduplication cannot share them.
func stampFill(b []byte, off int64) {
	for p := 0; p+8 <= len(b); p += 4096 {
		binary.LittleEndian.PutUint64(b[p:], uint64(off+int64(p))|1<<63)
	}
}

// openFill opens the fill dir dir of the cro-exporter whose state dir is
// owner (absolute, symlinks resolved, as ownerEnv holds it), and holds it
// locked until Remove or Close (Linux: an flock(2) on the dir; Windows: a
// lock on its marker), so that no other cro-exporter uses it meanwhile. A
// missing dir is made, private to us (Linux: mode 0700; Windows: a DACL of
// us alone), with its marker naming owner (its parent must exist). An
// existing one is adopted only when this cro-exporter made it: see
// CheckFillDir, whose rules it enforces again. With diskPath set, the dir
// must be on the filesystem of diskPath. It never changes the mode or ACL
// of a dir, nor anything in one it refuses. The fill
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
// then adds files (allocate: Linux allocates with fallocate(2), or, where
// the filesystem refuses it, by writing data and fsync). When the disk is
// full it stops, keeps what it allocated, and returns an error wrapping
// syscall.ENOSPC (Windows: ERROR_DISK_FULL).
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
// hold, counted by allocated blocks (Linux: st_blocks*512; Windows:
// AllocationSize), not by file size: a sparse file holds nothing, and
// filesystems differ in how they count. Anything else in the dir is not
// counted (Resize reports it). A missing directory holds nothing. While a
// resize is under way (seconds, where the filesystem needs the fill
// written) it answers at once with what it found last.
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

// Remove removes every fill file of ours, one by one (never os.RemoveAll,
// which Wine 8 cannot do), then the marker and the dir (when its parent
// lets us), and releases the dir's lock; a later Resize makes the dir
// again. It returns how many files it removed and the bytes (allocated
// blocks) they held, which are valid even with an error. It never removes
// anything else: when the dir holds anything but fill files of ours and
// the marker, those and the dir are left in place, and the error names
// what is there.
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

// truncate cuts file down to size, which frees the blocks past it, and
// updates file.
func (f *fill) truncate(d *os.File, file *fillFile, size int64) error {
	fh, _, _, err := f.openFile(d, file.name, false)
	if err != nil {
		return err
	}
	defer fh.Close()
	if err := fh.Truncate(size); err != nil {
		return err
	}
	size, alloc, err := sizes(fh)
	if err != nil {
		return err
	}
	file.size, file.alloc = size, alloc
	return nil
}

// grow allocates fill file name up to size bytes, making it with create.
// A new file that got nothing before an error is removed again.
func (f *fill) grow(d *os.File, name string, size int64, create bool) error {
	fh, from, alloc, err := f.openFile(d, name, create)
	if err != nil {
		return err
	}
	if alloc < from {
		from = 0 // holes somewhere: allocate goes over the file from the start
	}
	err = f.allocate(fh, from, size)
	if err != nil && create && holdsNothing(fh) {
		fh.Close()
		return errors.Join(fmt.Errorf("growing fill file %s to %d bytes: %w", fh.Name(), size, err), f.unlink(d, name))
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	} else {
		err = fmt.Errorf("growing fill file %s to %d bytes: %w", fh.Name(), size, err)
	}
	return err
}

// removeFiles removes the fill files found in d, from the highest number
// down, and returns how many it removed and the bytes they held, valid
// even with an error.
func (f *fill) removeFiles(d *os.File, found []fillFile) (removed fillUsage, err error) {
	for i := len(found) - 1; i >= 0; i-- {
		if err := f.unlink(d, found[i].name); err != nil {
			return removed, err
		}
		removed.files++
		removed.bytes += found[i].alloc
	}
	return removed, nil
}

// setSeen records what Usage found last.
func (f *fill) setSeen(u fillUsage) {
	f.seenMu.Lock()
	f.seen = u
	f.seenMu.Unlock()
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

// Dir returns the directory that holds the fill files.
func (f *fill) Dir() string { return f.dir }

// errGone matches the error of a fill whose filesystem is no longer the one
// at diskPath.
var errGone = errors.New("the filesystem of the disk path is gone")

// goneError says that diskPath no longer leads to the filesystem the fill
// was opened on, and what it leads to instead.
type goneError struct {
	diskPath string
	now      string // "on device 0:53", or why it could not be looked at
	was      string // the filesystem at start: "device 0:52", a volume
}

func (e *goneError) Error() string {
	return fmt.Sprintf("--disk.path %s is no longer on the filesystem it was on at start (%s), but %s; the fill there is released and not grown until it is back",
		e.diskPath, e.was, e.now)
}

func (e *goneError) Is(target error) bool { return target == errGone }

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
	d, err := reopenDir(f.held, f.dir)
	if err != nil {
		return lost, fillUsage{}, err
	}
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
