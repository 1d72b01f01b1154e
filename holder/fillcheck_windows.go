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
		return nil, &fillDirError{dir: dir, found: "has a " + fillMarker + " marker that " + problem, advice: fillAdvice, other: true}
	}
	return m, nil
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

// scanFillDir returns the fill files of ours in dir in number order, and,
// sorted by name, every other entry but the marker. d, open, keeps dir
// naming it.
func scanFillDir(_ *os.File, dir string) ([]fillFile, []foreignEntry, error) {
	entries, err := os.ReadDir(dir)
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
		// Opened to be looked at only: no access that sharing checks, so
		// that the daemon's open fill file does not stop --recover's count.
		h, st, err := openHandle(filepath.Join(dir, name), 0, shareAll, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		if problem := statefile.FileProblem(st); problem != "" {
			h.Close()
			foreign = append(foreign, foreignEntry{name: name, problem: problem})
			continue
		}
		_, alloc, err := sizes(h)
		h.Close()
		if err != nil {
			return nil, nil, err
		}
		files = append(files, fillFile{name: name, num: num, size: st.Size, alloc: alloc})
	}
	slices.SortFunc(files, func(a, b fillFile) int { return a.num - b.num })
	slices.SortFunc(foreign, func(a, b foreignEntry) int { return strings.Compare(a.name, b.name) })
	return files, foreign, nil
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

// isEmptyDir tells whether the dir holds no entry at all. d, open, keeps
// dir naming it.
func isEmptyDir(_ *os.File, dir string) (bool, error) {
	f, err := os.Open(dir)
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
