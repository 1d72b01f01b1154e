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

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// The fill dir's rules, the same on every operating system; what checks
// them against the system (openFillDir, checkFillDirOwner, listFillDir,
// statFillFile, reopenDir, checkDisk, parentOnDisk) is in each one's own
// files.

// fillMarker is the marker file cro-exporter writes (mode 0600) into a fill
// dir when it makes the dir. It holds the owner: the state dir, absolute
// with symlinks resolved, the value of ownerEnv. A fill dir is ours only
// when its marker names our state dir.
const fillMarker = ".cro-exporter"

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
	return onlyOurs(d, dir)
}

// onlyOurs checks that the fill dir d holds nothing but fill files of ours
// and the marker.
func onlyOurs(d *os.File, dir string) error {
	_, foreign, err := scanFillDir(d, dir)
	if err == nil && len(foreign) > 0 {
		err = foreignError(dir, foreign, fillAdvice)
	}
	return err
}

// badMarker is the error of a fill dir whose marker is not one we wrote,
// for problem (markerProblem): not ours.
func badMarker(dir, problem string) error {
	return &fillDirError{dir: dir, found: "has a " + fillMarker + " marker that " + problem, advice: fillAdvice, other: true}
}

// checkMarker reads the marker m of the fill dir and checks that it names
// owner.
func checkMarker(m *os.File, dir, owner string) error {
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
func markerProblem(st *statefile.Stat) string {
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
	entries, err := listFillDir(d, dir)
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
		problem, size, alloc, err := statFillFile(d, dir, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		if problem != "" {
			foreign = append(foreign, foreignEntry{name: name, problem: problem})
			continue
		}
		files = append(files, fillFile{name: name, num: num, size: size, alloc: alloc})
	}
	slices.SortFunc(files, func(a, b fillFile) int { return a.num - b.num })
	slices.SortFunc(foreign, func(a, b foreignEntry) int { return strings.Compare(a.name, b.name) })
	return files, foreign, nil
}

// isEmptyDir tells whether the dir d holds no entry at all, read through a
// new open file so that d's own offset stays at the start.
func isEmptyDir(d *os.File, dir string) (bool, error) {
	f, err := reopenDir(d, dir)
	if err != nil {
		return false, err
	}
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

// writeMarker writes the marker naming owner into the dir d, which we just
// made, and makes it durable: a dir whose marker a crash lost would be
// refused at the next start.
func writeMarker(d *os.File, dir, owner string) error {
	if err := statefile.WriteNew(d, dir, fillMarker, []byte(owner+"\n")); err != nil {
		return fmt.Errorf("writing the fill dir's marker: %w", err)
	}
	return nil
}
