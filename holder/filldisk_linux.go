package holder

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/linux"
)

// lost tells whether diskPath still leads to the filesystem the fill was
// opened on: nil while it does (and always without a diskPath), a goneError
// once it was unmounted (lazily too), deleted, or another filesystem was
// mounted or linked in its place.
func (f *fillDir) lost() error {
	if f.diskPath == "" {
		return nil
	}
	var st unix.Stat_t
	switch err := unix.Stat(f.diskPath, &st); {
	case err != nil:
		return &goneError{diskPath: f.diskPath, now: "stat says " + err.Error(), was: "device " + linux.DeviceName(f.dev)}
	case st.Dev != f.dev:
		return &goneError{diskPath: f.diskPath, now: "on device " + linux.DeviceName(st.Dev), was: "device " + linux.DeviceName(f.dev)}
	}
	return nil
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
func (f *fillDir) onDisk(st *unix.Stat_t) error {
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
