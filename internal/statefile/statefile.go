// Package statefile writes the files of the state dir so that neither a
// crash nor a power cut leaves one half written, reads them strictly and
// only when they are plain files of ours, and moves a corrupt one aside
// rather than deleting it. The averages (controller), the holder registry
// and the lock (holder) all use it.
//
// The state dir is ours (CheckDir), but a file in it is still never trusted
// to be: it is opened without following a symlink and without blocking on a
// FIFO, and used only when fstat shows a regular file with one link, owned
// by our effective uid, of at most 1 MiB. Nothing read from a file
// is echoed in an error at more than about a hundred bytes.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// maxSize is the largest state file read: the real ones hold a few hundred
// bytes.
const maxSize = 1 << 20

// maxQuote is the most bytes of untrusted text Quote shows.
const maxQuote = 100

// maxErrorText is the longest text of an error from parsing a file that
// ParseFile passes on: room for its own words and about maxQuote bytes of
// the file.
const maxErrorText = 2 * maxQuote

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

// read returns the content of path, a file of the state dir, with the
// checks of Open: at most maxSize bytes are ever read, even from a file
// whose size changes or was reported wrong.
func read(path string) ([]byte, error) {
	f, err := Open(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return regfile.ReadAll(f, path, maxSize)
}

// ParseFile reads path with read and hands its content to parse. A missing
// file is no error: parse is not called. An error from parse is cut to a
// couple of hundred bytes, so that whatever of the file it quotes stays
// short (encoding/json quotes a misspelt field name or a bad time whole).
func ParseFile(path string, parse func(data []byte) error) error {
	data, err := read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return bound(parse(data))
}

// Load is ParseFile for a daemon, which moves a file it cannot use aside,
// to path.corrupt-<unix time of now> (moveAside), so that the next save does
// not overwrite it. It returns:
//   - "", nil: the file was parsed, or there was none;
//   - the new name and why the file was not usable: it was moved aside;
//   - "", an error: the file was not usable and could not be moved aside.
func Load(path string, now time.Time, parse func(data []byte) error) (aside string, err error) {
	err = ParseFile(path, parse)
	if err == nil {
		return "", nil
	}
	aside, moveErr := moveAside(path, now)
	if moveErr != nil {
		return "", fmt.Errorf("%s is not usable (%v) and cannot be moved aside: %w", path, err, moveErr)
	}
	return aside, err
}

// boundedError is an error whose text is cut short; it still unwraps to
// the whole one.
type boundedError struct {
	text string
	err  error
}

func (e *boundedError) Error() string { return e.text }
func (e *boundedError) Unwrap() error { return e.err }

// bound returns err, its text cut to maxErrorText bytes.
func bound(err error) error {
	if err == nil || len(err.Error()) <= maxErrorText {
		return err
	}
	text := err.Error()
	return &boundedError{text: cut(text, maxErrorText) + fmt.Sprintf("... (%d bytes in all)", len(text)), err: err}
}

// Quote quotes s, text from a file, as strconv.Quote does, but shows at
// most its first hundred bytes, and then how long it is.
func Quote(s string) string {
	if len(s) <= maxQuote {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(cut(s, maxQuote)), len(s))
}

// cut returns at most the first n bytes of s, not splitting a UTF-8
// character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
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

// moveAside renames path to path.corrupt-<unix time of now>, with a suffix
// should that name be taken, so that no earlier corrupt file is overwritten,
// and returns the new name.
func moveAside(path string, now time.Time) (string, error) {
	aside := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	for i := 1; ; i++ {
		// Any error but "exists" is left for the rename to report.
		if _, err := os.Lstat(aside); err != nil {
			break
		}
		aside = fmt.Sprintf("%s.corrupt-%d.%d", path, now.Unix(), i)
	}
	return aside, os.Rename(path, aside)
}

// Decode parses data, a state file of the given format version, into v
// strictly: another version, bad JSON, or a field v lacks (a misspelt one
// would otherwise read as zero) is an error. Its errors may quote data at
// length: ParseFile cuts them.
func Decode(data []byte, version int, v any) error {
	// The version first, so that a later format is reported as such and
	// not as whatever field it added.
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("parsing JSON: %w", err)
	}
	if head.Version != version {
		return fmt.Errorf("version %d, want %d", head.Version, version)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parsing JSON: %w", err)
	}
	return nil
}
