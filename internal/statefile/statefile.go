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
// is echoed in an error at more than about a hundred bytes. On Windows
// (ours_windows.go) "ours" is an owner SID and a DACL instead of a uid and
// a mode.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cro-exporter/cro-exporter/internal/regfile"

	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
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
