package holder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
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
// the disk share the controller asks for. One per operating system, so
// that another is a new file (fill_linux.go has Linux's, fill_windows.go
// Windows'); its methods are safe for concurrent use.
type diskFill interface {
	// Resize makes the fill total bytes.
	Resize(total int64) error
	// Usage returns the fill files found and the bytes they hold.
	Usage() (files int, bytes int64, err error)
	// Remove removes every fill file and gives up the directory.
	Remove() (files int, bytes int64, err error)
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
