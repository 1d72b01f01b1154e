package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// maxMarker is the largest marker read: a path of up to 32767 UTF-16
// units, each at most 3 bytes of UTF-8, and a newline.
const maxMarker = 3*32767 + 1

// openHandle opens path with CreateFile, never following a symlink or
// junction (FILE_FLAG_OPEN_REPARSE_POINT: the link itself is opened, and
// refused by statefile's checks), for access, sharing share, and returns
// it with statefile.Fstat's view of it. flags adds to the open flags
// (FILE_FLAG_BACKUP_SEMANTICS opens dirs too); disposition is
// windows.OPEN_EXISTING or windows.CREATE_NEW. A missing file is an error
// wrapping fs.ErrNotExist.
func openHandle(path string, access, share, disposition, flags uint32) (*os.File, *statefile.Stat, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, access|windows.READ_CONTROL|windows.FILE_READ_ATTRIBUTES, share, nil, disposition,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT|flags, 0)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(h), path)
	st, err := statefile.Fstat(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// shareAll lets others read, write and delete what we open only to look at.
const shareAll = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE

// openFillDir opens the fill dir itself (a symlink or junction there is
// refused, never followed) without FILE_SHARE_DELETE, so that while it is
// open the dir can be neither renamed nor removed and its path names it. A
// missing dir is an error wrapping fs.ErrNotExist. It asks GENERIC_READ
// (listing) because a handle with attribute and security access alone
// takes no part in sharing checks, and would keep nothing out.
func openFillDir(dir string) (*os.File, *statefile.Stat, error) {
	d, st, err := openHandle(dir, windows.GENERIC_READ, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE,
		windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening fill dir: %w", err)
	}
	found := ""
	switch {
	case st.Attributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		found = "is a symlink or junction"
	case st.Attributes&windows.FILE_ATTRIBUTE_DIRECTORY == 0:
		found = "is not a directory"
	default:
		return d, st, nil
	}
	d.Close()
	return nil, nil, &fillDirError{dir: dir, found: found, advice: "give --disk.fill-dir a real directory, or a path that does not exist yet"}
}

// checkFillDirOwner checks that the existing fill dir d is ours: owned by
// one of us, its DACL granting no one else write access, and its marker,
// as much ours, names owner. d, open, keeps dir naming it.
func checkFillDirOwner(_ *os.File, st *statefile.Stat, dir, owner string) error {
	if problem := statefile.DirProblem(st); problem != "" {
		return &fillDirError{dir: dir, found: problem, advice: fillAdvice, other: true}
	}
	m, err := openMarker(dir, shareAll)
	if errors.Is(err, fs.ErrNotExist) {
		return &fillDirError{dir: dir, found: "has no " + fillMarker + " marker, so cro-exporter did not make it", advice: fillAdvice, other: true, unmarked: true}
	}
	if err != nil {
		return err
	}
	defer m.Close()
	return checkMarker(m, dir, owner)
}

// openMarker opens the marker of dir for reading, sharing share, and
// returns it only when it is a file we wrote (markerProblem); a marker
// that is not is a fillDirError of a dir not ours.
func openMarker(dir string, share uint32) (*os.File, error) {
	m, st, err := openHandle(filepath.Join(dir, fillMarker), windows.GENERIC_READ, share, windows.OPEN_EXISTING, 0)
	if err != nil {
		return nil, err
	}
	if problem := markerProblem(st); problem != "" {
		m.Close()
		return nil, badMarker(dir, problem)
	}
	return m, nil
}

// listFillDir lists the entries of the fill dir. d, open, keeps dir
// naming it.
func listFillDir(_ *os.File, dir string) ([]fs.DirEntry, error) { return os.ReadDir(dir) }

// statFillFile looks at fill file name, never following a symlink or
// junction: why it is not ours (statefile.FileProblem), its size and its
// allocated bytes. A missing file is an error wrapping fs.ErrNotExist. d,
// open, keeps dir naming it.
func statFillFile(_ *os.File, dir, name string) (problem string, size, alloc int64, err error) {
	// Opened to be looked at only: no access that sharing checks, so that
	// the daemon's open fill file does not stop --recover's count.
	h, st, err := openHandle(filepath.Join(dir, name), 0, shareAll, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS)
	if err != nil {
		return "", 0, 0, err
	}
	defer h.Close()
	if problem := statefile.FileProblem(st); problem != "" {
		return problem, 0, 0, nil
	}
	_, alloc, err = sizes(h)
	return "", st.Size, alloc, err
}

// fileStandardInfo is FILE_STANDARD_INFO (winbase.h).
type fileStandardInfo struct {
	AllocationSize int64
	EndOfFile      int64
	NumberOfLinks  uint32
	DeletePending  bool
	Directory      bool
}

// sizes returns the size of f (FILE_STANDARD_INFO's EndOfFile) and the
// bytes it holds on its volume: AllocationSize, Windows' st_blocks*512
// (Wine's is exactly that).
func sizes(f *os.File) (size, alloc int64, err error) {
	var info fileStandardInfo
	if err := windows.GetFileInformationByHandleEx(windows.Handle(f.Fd()), windows.FileStandardInfo,
		(*byte)(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		return 0, 0, &fs.PathError{Op: "GetFileInformationByHandleEx", Path: f.Name(), Err: err}
	}
	return info.EndOfFile, info.AllocationSize, nil
}

// reopenDir returns a new open file of the dir d, with an offset of its
// own. d, open, keeps dir naming it.
func reopenDir(_ *os.File, dir string) (*os.File, error) { return os.Open(dir) }
