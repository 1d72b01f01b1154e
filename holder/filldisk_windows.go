package holder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// volumeOf names the volume path is on: its volume GUID path
// (\\?\Volume{GUID}\), which internal/host's reader names the disk by and
// which names one volume wherever it is mounted. Where the mount point has
// none (a network share, a SUBST drive; under Wine, any Unix mount point
// other than a drive's root) it is the mount point itself, which tells
// volumes apart as well within one run. path need not exist.
func volumeOf(path string) (string, error) {
	p, err := windows.UTF16FromString(path)
	if err != nil {
		return "", fmt.Errorf("volume of %s: %w", path, err)
	}
	// The mount point is at most the path and a backslash.
	root := make([]uint16, max(len(p)+1, windows.MAX_PATH+1))
	if err := windows.GetVolumePathName(&p[0], &root[0], uint32(len(root))); err != nil {
		return "", fmt.Errorf("volume of %s: GetVolumePathName: %w", path, err)
	}
	mount := windows.UTF16ToString(root)
	if !strings.HasSuffix(mount, `\`) {
		// Wine leaves it off where the path has none; the next call needs it.
		mount += `\`
	}
	m, err := windows.UTF16PtrFromString(mount)
	if err != nil {
		return "", fmt.Errorf("volume of %s: %w", path, err)
	}
	var guid [50]uint16
	if err := windows.GetVolumeNameForVolumeMountPoint(m, &guid[0], uint32(len(guid))); err != nil {
		return mount, nil
	}
	return windows.UTF16ToString(guid[:]), nil
}

// diskVolume is the volume of diskPath, which must exist.
func diskVolume(diskPath string) (string, error) {
	if _, err := os.Stat(diskPath); err != nil {
		return "", fmt.Errorf("disk path: %w", err)
	}
	return volumeOf(diskPath)
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
	got, err := volumeOf(dir)
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
