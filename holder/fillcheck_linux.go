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

	"github.com/cro-exporter/cro-exporter/internal/regfile"
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
