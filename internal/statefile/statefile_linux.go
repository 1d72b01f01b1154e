package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
	"golang.org/x/sys/unix"
)

// CheckDir checks that dir, as it is (a symlink is not followed), is a
// directory of ours (DirProblem): owned by our effective uid, mode 0700,
// which no group or other user can use: only then is what it holds ours. It never changes the dir; the error
// names what is wrong and how to fix it.
func CheckDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Clean(dir), &st); err != nil {
		return fmt.Errorf("%s is not usable: %w", dir, &fs.PathError{Op: "lstat", Path: dir, Err: err})
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%s is a symlink; cro-exporter needs a real directory (give it the directory the link points to)", dir)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory (it %s)", dir, regfile.Kind(st.Mode))
	case !ownedByUs(&st):
		return fmt.Errorf("%s is owned by uid %d, not by us (uid %d); cro-exporter needs a directory of its own", dir, st.Uid, os.Geteuid())
	case DirProblem(&st) != "":
		return fmt.Errorf("%s has mode %04o; cro-exporter needs 0700 (chmod 700 %s)", dir, st.Mode&0o7777, dir)
	}
	return nil
}

// Open opens path, a file of the state dir, with flag (os.O_RDONLY,
// os.O_RDWR|os.O_CREATE, ...; a file it creates gets mode 0600), and returns
// it only when it is a regular file with one link, owned by our effective
// uid, of at most 1 MiB. A symlink is never followed and a FIFO
// never waited on; a file that is not regular is refused before it is
// opened, so that opening a device has no effect (regfile.Open). A missing
// file is an error wrapping fs.ErrNotExist.
func Open(path string, flag int) (*os.File, error) {
	f, err := regfile.Open(path, flag|unix.O_NOFOLLOW, func(st *unix.Stat_t) error { return checkFile(path, st) })
	if errors.Is(err, unix.ELOOP) {
		// It became a symlink since the lstat.
		return nil, fmt.Errorf("%s is a symlink, not a regular file", path)
	}
	return f, err
}

// checkFile says why the file path, as st describes it, is not one to use.
func checkFile(path string, st *unix.Stat_t) error {
	if err := regfile.Check(path, st, maxSize); err != nil {
		return err
	}
	if problem := FileProblem(st); problem != "" {
		return fmt.Errorf("%s %s", path, problem)
	}
	return nil
}

// Write replaces path with data, all or nothing: into path.tmp, synced,
// renamed over path, and the dir synced to keep the rename. One daemon per
// state dir (the lock) writes it, so the fixed temporary name is safe; a
// leftover one (a crash, or anything planted there: a symlink, a hard link
// to another file) is unlinked, never written through, and the new one is
// created exclusively.
func Write(path string, data []byte) error {
	dirPath, name := filepath.Split(path)
	dirPath = filepath.Clean(dirPath)
	dir, err := os.Open(dirPath)
	if err != nil {
		return err
	}
	defer dir.Close()
	tmp := name + ".tmp"
	if err := unix.Unlinkat(int(dir.Fd()), tmp, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "unlink", Path: path + ".tmp", Err: err}
	}
	if err := createSynced(dir, dirPath, tmp, data); err != nil {
		return err
	}
	if err := unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name); err != nil {
		unix.Unlinkat(int(dir.Fd()), tmp, 0)
		return &os.LinkError{Op: "rename", Old: path + ".tmp", New: path, Err: err}
	}
	if err := dir.Sync(); err != nil {
		return &fs.PathError{Op: "fsync", Path: dirPath, Err: err}
	}
	return nil
}

// MkdirAll makes dir, mode 0700, and its missing parents; an existing dir
// is left as it is, for CheckDir to judge.
func MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
