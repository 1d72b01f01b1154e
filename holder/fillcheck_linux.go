package holder

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	if problem := statefile.FileProblem(st); problem != "" {
		return problem
	}
	if st.Size > maxMarker {
		return "is too large"
	}
	return ""
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
		if problem := statefile.FileProblem(&st); problem != "" {
			foreign = append(foreign, foreignEntry{name: name, problem: problem})
			continue
		}
		files = append(files, fillFile{name: name, num: num, size: st.Size, alloc: st.Blocks * 512})
	}
	slices.SortFunc(files, func(a, b fillFile) int { return a.num - b.num })
	slices.SortFunc(foreign, func(a, b foreignEntry) int { return strings.Compare(a.name, b.name) })
	return files, foreign, nil
}

// checkFillFile refuses anything at a fill file name but a regular file of
// ours with one link.
func checkFillFile(path string, st *unix.Stat_t) error {
	if problem := statefile.FileProblem(st); problem != "" {
		return fmt.Errorf("fill file %s: %s, refusing it", path, problem)
	}
	return nil
}
