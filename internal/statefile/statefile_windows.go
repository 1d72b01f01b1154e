package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
	"golang.org/x/sys/windows"
)

// CheckDir checks that dir, as it is (a symlink or junction is not
// followed), is a directory of ours (DirProblem): owned by one of us, its
// DACL granting no one else write access. It never changes the dir; the
// error names what is wrong and how to fix it.
func CheckDir(dir string) error {
	dir = filepath.Clean(dir)
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%s is not usable: %w", dir, err)
	}
	switch {
	case fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 && !fi.IsDir():
		return fmt.Errorf("%s is a symlink or junction; cro-exporter needs a real directory (give it the directory the link points to)", dir)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (it %s)", dir, regfile.Kind(fi.Mode()))
	}
	f, err := openNoFollow(dir, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("%s is not usable: %w", dir, err)
	}
	defer f.Close()
	st, err := Fstat(f)
	if err != nil {
		return fmt.Errorf("%s is not usable: %w", dir, err)
	}
	if problem := DirProblem(st); problem != "" {
		return fmt.Errorf("%s %s; cro-exporter needs a directory of its own, which no one else may write to "+
			"(icacls %s /inheritance:r /grant:r *%s:(OI)(CI)F, and /remove the others)", dir, problem, dir, st.Owner)
	}
	return nil
}

// Open opens path, a file of the state dir, with flag (os.O_RDONLY,
// os.O_RDWR|os.O_CREATE, ...; os.O_EXCL too, nothing else), and returns it
// only when it is a regular file with one link, ours (FileProblem), of at
// most 1 MiB. A symlink or junction is never followed: the handle is
// opened on the reparse point itself (FILE_FLAG_OPEN_REPARSE_POINT) and
// refused. A path that os.Lstat shows not to be a regular file (a device
// such as NUL, a named pipe, a dir) is refused before it is opened, so that
// opening it has no effect. A missing file is an error wrapping
// fs.ErrNotExist. A file it creates gets the dir's inheritable ACEs and
// our token's default owner.
func Open(path string, flag int) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symlink, not a regular file", path)
		}
		if err := regfile.Check(path, fi, maxSize); err != nil {
			return nil, err
		}
	}
	f, err := openNoFollow(path, flag)
	if err != nil {
		return nil, err
	}
	st, err := Fstat(f)
	if err == nil {
		err = checkFile(path, st)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkFile says why the file path, as st describes it, is not one to use.
func checkFile(path string, st *Stat) error {
	if problem := FileProblem(st); problem != "" {
		return fmt.Errorf("%s %s", path, problem)
	}
	if st.Size > maxSize {
		return regfile.TooLarge(path, maxSize)
	}
	return nil
}

// openFlags are the flags openNoFollow takes.
const openFlags = os.O_RDONLY | os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_EXCL

// openNoFollow opens path with flag (openFlags) through CreateFile with
// FILE_FLAG_OPEN_REPARSE_POINT, so that a symlink or junction is opened
// itself and never followed, and FILE_FLAG_BACKUP_SEMANTICS, so that a dir
// opens too. Every sharing mode is granted, as on Linux: a reader does not
// stop a Write from renaming over the file. The handle has READ_CONTROL,
// for Fstat.
func openNoFollow(path string, flag int) (*os.File, error) {
	if flag&^openFlags != 0 {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("flag %#x is not supported on Windows", flag&^openFlags)}
	}
	access := uint32(windows.READ_CONTROL | windows.FILE_READ_ATTRIBUTES)
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		access |= windows.GENERIC_READ
	case os.O_WRONLY:
		access |= windows.GENERIC_WRITE
	case os.O_RDWR:
		access |= windows.GENERIC_READ | windows.GENERIC_WRITE
	}
	disposition := uint32(windows.OPEN_EXISTING)
	switch {
	case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		disposition = windows.CREATE_NEW
	case flag&os.O_CREATE != 0:
		disposition = windows.OPEN_ALWAYS
	}
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(name, access,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil, disposition,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT|windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// Write replaces path with data, all or nothing: into path.tmp, flushed
// (FlushFileBuffers), and moved over path with MoveFileEx
// (MOVEFILE_REPLACE_EXISTING|MOVEFILE_WRITE_THROUGH, which returns once the
// move is on disk; Windows has no fsync of a dir). One daemon per state dir
// (the lock) writes it, so the fixed temporary name is safe; a leftover one
// (a crash, or anything planted there) is removed, never written through,
// and the new one is created exclusively.
func Write(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := createSynced(tmp, data); err != nil {
		return err
	}
	from, err := windows.UTF16PtrFromString(tmp)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	to, err := windows.UTF16PtrFromString(path)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := windows.MoveFileEx(from, to, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH); err != nil {
		os.Remove(tmp)
		return &os.LinkError{Op: "MoveFileEx", Old: tmp, New: path, Err: err}
	}
	return nil
}

// WriteNew makes the file name in the dir dirPath, which the caller holds
// open as dir: new (CREATE_NEW, never through a symlink), holding data,
// flushed and closed. A file that could not be written whole is removed
// again. Unlike Linux's, it creates by path, not relative to dir (NtCreateFile
// with a RootDirectory would be openat's match; WINDOWS.md): dir, opened by
// os.Open without FILE_SHARE_DELETE, cannot be renamed or removed while it
// is open, so dirPath still names it. There is no fsync of a dir to make.
func WriteNew(dir *os.File, dirPath, name string, data []byte) error {
	return createSynced(filepath.Join(dirPath, name), data)
}

// createSynced makes path new, holding data, flushed and closed; a file
// that could not be written whole is removed again.
func createSynced(path string, data []byte) error {
	f, err := openNoFollow(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return err
	}
	return nil
}

// MkdirAll makes dir, with a protected DACL that grants our token's user
// alone full control (inherited by what is made in it), and its missing
// parents, which inherit their parents' ACLs; an existing dir is left as
// it is, for CheckDir to judge. Without it a dir under ProgramData would
// inherit its write access for Users, and CheckDir would refuse it.
func MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tr, err := us()
	if err != nil {
		return err
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;" + tr.user + ")")
	if err != nil {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	sa := windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(sa))
	if err := windows.CreateDirectory(p, &sa); err != nil && !errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		return &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	return nil
}
