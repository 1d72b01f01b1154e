package holder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// diskVolume is the volume of diskPath, which must exist.
func diskVolume(diskPath string) (string, error) {
	if _, err := os.Stat(diskPath); err != nil {
		return "", fmt.Errorf("disk path: %w", err)
	}
	return host.VolumeOf(diskPath)
}

// checkDisk checks that the fill dir is on the volume of diskPath; ""
// checks nothing. The dir is looked at by its path, which names it while
// it is open (openFillDir's handle keeps it from being moved); st is for
// Linux, which goes by the open dir's device.
func checkDisk(dir string, _ *statefile.Stat, diskPath string) error {
	_, err := dirOnDisk(dir, diskPath)
	return err
}

// dirOnDisk returns the volume of the fill dir (of its parent, when it is
// missing), checked to be diskPath's; "" without a diskPath.
func dirOnDisk(dir, diskPath string) (string, error) {
	if diskPath == "" {
		return "", nil
	}
	want, err := diskVolume(diskPath)
	if err != nil {
		return "", err
	}
	got, err := host.VolumeOf(dir)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(got, want) {
		return "", &fillDirError{dir: dir, found: fmt.Sprintf("is on another volume (%s) than --disk.path %s (%s)", got, diskPath, want),
			advice: "cro-exporter measures only that one; give a --disk.fill-dir on it"}
	}
	return got, nil
}

// onDisk checks that the fill dir (or, when it is missing, its parent) is
// on the volume of diskPath, and that this is still the one the fill was
// opened on.
func (f *fillDir) onDisk() error {
	got, err := dirOnDisk(f.dir, f.diskPath)
	if err != nil {
		return err
	}
	if f.diskPath != "" && !strings.EqualFold(got, f.volume) {
		return &fillDirError{dir: f.dir, found: "is on another volume than --disk.path " + f.diskPath + " was on at start",
			advice: "cro-exporter fills only that one"}
	}
	return nil
}

// parentOnDisk checks that the parent of the missing fill dir exists, so
// that the dir can be made, and is on the volume of diskPath.
func parentOnDisk(dir, diskPath string) error {
	parent := filepath.Dir(dir)
	fi, err := os.Stat(parent)
	if err != nil {
		return &fillDirError{dir: dir, found: fmt.Sprintf("cannot be made: its parent %s: %v", parent, err), advice: "make the parent, or give another --disk.fill-dir"}
	}
	if !fi.IsDir() {
		return &fillDirError{dir: dir, found: fmt.Sprintf("cannot be made: its parent %s is not a directory", parent), advice: "give another --disk.fill-dir"}
	}
	return checkDisk(dir, nil, diskPath)
}

// lost tells whether diskPath still leads to the volume the fill was
// opened on: nil while it does (and always without a diskPath), a
// goneError once it cannot be looked at, or leads to another volume (a
// drive letter given to another disk, a volume mounted in its place).
func (f *fillDir) lost() error {
	if f.diskPath == "" {
		return nil
	}
	switch now, err := host.VolumeOf(f.diskPath); {
	case err != nil:
		return &goneError{diskPath: f.diskPath, now: err.Error(), was: f.volume}
	case !strings.EqualFold(now, f.volume):
		return &goneError{diskPath: f.diskPath, now: "on " + now, was: f.volume}
	}
	return nil
}
