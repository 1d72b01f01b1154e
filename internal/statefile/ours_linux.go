package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// What is ours is decided here once, for every dir and file cro-exporter
// keeps (the state dir and its files, the fill dir, its marker and its
// fill files), as the README's Safety section says:
//
//   - a dir is ours when it is owned by our effective uid with mode 0700
//     exactly, the mode cro-exporter makes its dirs with: no group or other
//     user may use it, and nothing (setgid, sticky) changes what is made in
//     it;
//   - a file in a dir of ours is ours when it is a regular file owned by
//     our effective uid with one link: no symlink or hard link leads a write
//     out of the dir, and its mode matters no more, since nobody else can
//     reach it through the dir.

// dirMode is the mode of every dir of ours.
const dirMode = 0o700

// Stat is what Linux says of a dir or file (fstat(2), lstat(2)), named as
// Windows' Stat is, so that code over both systems names one type.
type Stat = unix.Stat_t

// ownedByUs tells whether st, a dir or file, is owned by our effective uid.
func ownedByUs(st *unix.Stat_t) bool { return int(st.Uid) == os.Geteuid() }

// DirProblem says why a dir, as st describes it (from fstat, or from lstat
// when it is known to be a dir), is not ours: "is owned by uid 5, not by us
// (uid 0)" or "has mode 1777, not 0700", to follow the dir's name; "" when
// it is ours.
func DirProblem(st *unix.Stat_t) string {
	if !ownedByUs(st) {
		return fmt.Sprintf("is owned by uid %d, not by us (uid %d)", st.Uid, os.Geteuid())
	}
	if mode := st.Mode & 0o7777; mode != dirMode {
		return fmt.Sprintf("has mode %04o, not %04o", mode, dirMode)
	}
	return ""
}

// FileProblem says why a file in a dir of ours, as st describes it (from
// lstat or fstat), is not ours: "is a symlink", "is not a regular file",
// "has 2 links, not one" or "is owned by uid 5, not by us (uid 0)", to
// follow the file's name; "" when it is ours.
func FileProblem(st *unix.Stat_t) string {
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return "is a symlink"
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return "is not a regular file"
	case st.Nlink != 1:
		return fmt.Sprintf("has %d links, not one", st.Nlink)
	case !ownedByUs(st):
		return fmt.Sprintf("is owned by uid %d, not by us (uid %d)", st.Uid, os.Geteuid())
	}
	return ""
}

// WriteNew makes the file name in the open dir dir (named dirPath in
// errors): new (O_EXCL, mode 0600, never through a symlink), holding data,
// fsynced and closed, then fsyncs dir so that the new entry survives a
// crash. A file that could not be written whole is removed again.
func WriteNew(dir *os.File, dirPath, name string, data []byte) error {
	if err := createSynced(dir, dirPath, name, data); err != nil {
		return err
	}
	if err := dir.Sync(); err != nil {
		return &fs.PathError{Op: "fsync", Path: dirPath, Err: err}
	}
	return nil
}

// createSynced is WriteNew without the fsync of the dir.
func createSynced(dir *os.File, dirPath, name string, data []byte) error {
	path := filepath.Join(dirPath, name)
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if uerr := unix.Unlinkat(int(dir.Fd()), name, 0); uerr != nil && !errors.Is(uerr, unix.ENOENT) {
			err = errors.Join(err, &fs.PathError{Op: "unlink", Path: path, Err: uerr})
		}
		return err
	}
	return nil
}
