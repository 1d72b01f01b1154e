package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// removeFill removes every fill file of ours in the fill dir, then its
// marker and the dir (fill.Remove). It touches the dir only when its marker
// names this state dir: another cro-exporter's, or one without a marker, is
// left alone with a note. A missing dir holds none.
func (rep *Report) removeFill(r resolved) {
	dir := r.FillDir
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return
	}
	owner := r.owner
	if owner == "" {
		// No state dir: the fill dir may still be its leftover.
		var err error
		if owner, err = resolvePath(r.StateDir); err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("state dir %s: %v", r.StateDir, err))
			return
		}
	}
	f, err := newFill(dir, "", owner)
	var d *os.File
	if err == nil {
		d, err = f.take(false, false)
	}
	var notOurs *fillDirError
	switch {
	case errors.As(err, &notOurs) && errors.Is(err, errNotOurs):
		rep.Notes = append(rep.Notes, fmt.Sprintf("fill dir %s %s; left it alone", notOurs.dir, notOurs.found))
		return
	case err != nil:
		rep.Failures = append(rep.Failures, err.Error())
		return
	case d == nil:
		return // gone since the look
	}
	d.Close()
	files, bytes, err := f.Remove()
	rep.FillDir, rep.FillFiles, rep.FillBytes = f.Dir(), files, bytes
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	} else if _, err := os.Lstat(f.Dir()); err == nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("fill dir %s is empty and left in place: its parent is not ours to write", f.Dir()))
	}
}

// removeTemp removes the temporary files (*.tmp) of the state dir: what a
// save interrupted by a crash left. Nothing else there is touched.
func (rep *Report) removeTemp(dir string) {
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("temporary files in %s: %v", dir, err))
		return
	}
	for _, tmp := range tmps {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			rep.Failures = append(rep.Failures, fmt.Sprintf("temporary file %s: %v", tmp, err))
			continue
		}
		rep.TempFiles = append(rep.TempFiles, tmp)
	}
}

// countFill counts the fill files in dir, a fill dir whose marker names
// owner, without taking its lock (the daemon holds it) or changing
// anything; ok is false when dir is missing or not owner's.
func countFill(dir, owner string) (files int, bytes int64, ok bool) {
	d, st, err := openFillDir(filepath.Clean(dir))
	if err != nil {
		return 0, 0, false
	}
	defer d.Close()
	if checkFillDirOwner(d, st, dir, owner) != nil {
		return 0, 0, false
	}
	found, _, err := scanFillDir(d, dir)
	if err != nil {
		return 0, 0, false
	}
	for _, f := range found {
		bytes += f.alloc
	}
	return len(found), bytes, true
}
