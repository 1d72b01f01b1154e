package holder

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// maxMarker is the largest marker read: a path, and a newline.
const maxMarker = unix.PathMax + 1

// fileKind describes a file that is not a directory, as statefile.CheckDir
// does: "is a symlink", "is not a directory (it is a FIFO)".
func fileKind(mode uint32) string {
	if mode&unix.S_IFMT == unix.S_IFLNK {
		return "is a symlink"
	}
	return "is not a directory (it " + regfile.Kind(mode) + ")"
}

// checkFillDirOwner checks that the existing fill dir d is ours: owned by
// us, mode 0700, and its marker names owner.
func checkFillDirOwner(d *os.File, st *unix.Stat_t, dir, owner string) error {
	if problem := statefile.DirProblem(st); problem != "" {
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
		return badMarker(dir, problem)
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
		return badMarker(dir, problem)
	}
	return checkMarker(m, dir, owner)
}

// listFillDir lists the entries of the fill dir d.
func listFillDir(d *os.File, _ string) ([]fs.DirEntry, error) { return d.ReadDir(-1) }

// statFillFile looks at fill file name in d, never following a symlink:
// why it is not ours (statefile.FileProblem), its size and its allocated
// bytes (st_blocks*512). A missing file is an error wrapping
// fs.ErrNotExist.
func statFillFile(d *os.File, dir, name string) (problem string, size, alloc int64, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", 0, 0, &fs.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err}
	}
	return statefile.FileProblem(&st), st.Size, st.Blocks * 512, nil
}

// checkFillFile refuses anything at a fill file name but a regular file of
// ours with one link.
func checkFillFile(path string, st *unix.Stat_t) error {
	if problem := statefile.FileProblem(st); problem != "" {
		return fmt.Errorf("fill file %s: %s, refusing it", path, problem)
	}
	return nil
}
