package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/statefile/statefiletest"
)

// plants are the files a state file's name must never be read as: those
// every state file is tested with, and a directory and a file too large.
func plants() []statefiletest.Plant {
	return append(statefiletest.Plants(),
		statefiletest.Plant{Name: "a directory", Make: func(t *testing.T, path string, _ []byte) string {
			must(t, os.Mkdir(path, 0o700))
			return ""
		}, Want: "is a directory"},
		statefiletest.Plant{Name: "a file over 1 MiB", Make: func(t *testing.T, path string, _ []byte) string {
			must(t, os.WriteFile(path, make([]byte, maxSize+1), 0o600))
			return ""
		}, Want: "larger than 1048576 bytes"},
	)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadRefusesAnythingButASmallRegularFileOfOurs(t *testing.T) {
	for _, p := range plants() {
		t.Run(p.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			p.Make(t, path, []byte(`{"version": 1}`))
			var data []byte
			var err error
			statefiletest.Within(t, 5*time.Second, func() { data, err = read(path) })
			if err == nil || !strings.Contains(err.Error(), p.Want) || !strings.Contains(err.Error(), path) {
				t.Errorf("read = %d bytes, %v; want an error naming %s and %q", len(data), err, path, p.Want)
			}
		})
	}
}

func TestReadOfAMissingFileIsNotExist(t *testing.T) {
	if _, err := read(filepath.Join(t.TempDir(), "state.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestReadStopsAtMaxSizeWhateverTheSizeSays(t *testing.T) {
	// /proc/kallsyms is a regular file of root's, one link, whose size
	// says 0 while it holds megabytes.
	statefiletest.NeedRoot(t)
	const path = "/proc/kallsyms"
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Size != 0 {
		t.Skipf("%s: size %d, %v", path, st.Size, err)
	}
	if data, err := os.ReadFile(path); err != nil || len(data) <= maxSize {
		t.Skipf("%s holds %d bytes, %v", path, len(data), err)
	}
	if data, err := read(path); err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("read = %d bytes, %v; want it too large after maxSize+1 bytes", len(data), err)
	}
}

// A temporary file left where Write puts its own, planted to lead the
// write elsewhere, is never written through.
func TestWriteNeverWritesThroughAPlantedTemporary(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(oldname, newname string) error
	}{
		{"a symlink", os.Symlink},
		// Root may link a file of its own even with fs.protected_hardlinks=1.
		{"a hard link", os.Link},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "outside")
			must(t, os.WriteFile(outside, []byte("keep"), 0o600))
			path := filepath.Join(dir, "state.json")
			must(t, tc.plant(outside, path+".tmp"))
			if err := Write(path, []byte("new")); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(outside); string(got) != "keep" {
				t.Errorf("the file outside became %q", got)
			}
			if got, _ := os.ReadFile(path); string(got) != "new" {
				t.Errorf("the state file holds %q", got)
			}
			var st unix.Stat_t
			if err := unix.Stat(outside, &st); err != nil || st.Nlink != 1 {
				t.Errorf("the file outside has %d links (%v), want 1", st.Nlink, err)
			}
		})
	}
}

func TestWriteReplacesALeftoverTemporary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	must(t, os.WriteFile(path+".tmp", []byte("a crash left this, longer than the new content"), 0o644))
	if err := Write(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Errorf("the state file holds %q", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the state file: %v, %v; want mode 0600", fi, err)
	}
}

func TestCheckDir(t *testing.T) {
	// t.TempDir() makes 0777 less the umask.
	good := t.TempDir()
	must(t, os.Chmod(good, 0o700))
	for _, tc := range []struct {
		name string
		make func(t *testing.T) string
		want string // "" when usable
	}{
		{"a dir of ours with mode 0700", func(t *testing.T) string { return good }, ""},
		{"a dir of ours, named with a trailing slash", func(t *testing.T) string { return good + "/" }, ""},
		{"mode 1777", statefiletest.ModeDir(os.ModeSticky | 0o777), "has mode 1777; cro-exporter needs 0700 (chmod 700 "},
		{"mode 0750", statefiletest.ModeDir(0o750), "has mode 0750"},
		{"another user's", func(t *testing.T) string {
			statefiletest.NeedRoot(t)
			dir := t.TempDir()
			must(t, os.Chown(dir, statefiletest.ForeignUID, statefiletest.ForeignUID))
			return dir
		}, "is owned by uid 54321, not by us (uid 0)"},
		{"a symlink to a dir of ours", func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "link")
			must(t, os.Symlink(good, link))
			return link
		}, "is a symlink"},
		{"a symlink named with a trailing slash", func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "link")
			must(t, os.Symlink(good, link))
			return link + "/"
		}, "is a symlink"},
		{"a regular file", statefiletest.RegularFile, "is not a directory (it is a regular file)"},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.make(t)
			var before unix.Stat_t
			unix.Lstat(filepath.Clean(dir), &before)
			err := CheckDir(dir)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckDir(%s) = %v", dir, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir)):
				t.Errorf("CheckDir(%s) = %v; want an error naming it and %q", dir, err, tc.want)
			}
			var after unix.Stat_t
			unix.Lstat(filepath.Clean(dir), &after)
			if after.Mode != before.Mode || after.Uid != before.Uid {
				t.Errorf("CheckDir changed the mode or owner")
			}
		})
	}
}

func TestLoadMovesAsideWhatItCannotUse(t *testing.T) {
	now := time.Unix(1700000000, 0)
	parsed := func(got *string) func([]byte) error {
		return func(data []byte) error {
			if string(data) != "good" {
				return errors.New("not good")
			}
			*got = string(data)
			return nil
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	var got string
	if aside, err := Load(path, now, parsed(&got)); aside != "" || err != nil || got != "" {
		t.Errorf("Load of a missing file = %q, %v (parsed %q); want nothing", aside, err, got)
	}
	must(t, os.WriteFile(path, []byte("good"), 0o600))
	if aside, err := Load(path, now, parsed(&got)); aside != "" || err != nil || got != "good" {
		t.Errorf("Load of a good file = %q, %v (parsed %q)", aside, err, got)
	}
	must(t, os.WriteFile(path, []byte("bad"), 0o600))
	aside, err := Load(path, now, parsed(&got))
	if aside != path+".corrupt-1700000000" || err == nil || err.Error() != "not good" {
		t.Errorf("Load of a bad file = %q, %v; want it moved aside, saying why", aside, err)
	}
	if data, _ := os.ReadFile(aside); string(data) != "bad" {
		t.Errorf("moved aside: %q", data)
	}
	// Under a regular file, a name can be neither read nor renamed.
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o600))
	aside, err = Load(filepath.Join(file, "state.json"), now, parsed(&got))
	if aside != "" || err == nil || !strings.Contains(err.Error(), "is not usable (open ") || !strings.Contains(err.Error(), "cannot be moved aside: rename ") {
		t.Errorf("Load of a file that cannot be moved aside = %q, %v; want an error saying both", aside, err)
	}
}

func TestErrorsFromParsingAreShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	long := strings.Repeat("A", 500_000)
	must(t, os.WriteFile(path, []byte(`{"version": 1, "`+long+`": 1}`), 0o600))
	var v struct {
		Version int `json:"version"`
	}
	err := ParseFile(path, func(data []byte) error { return Decode(data, 1, &v) })
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), `parsing JSON: json: unknown field "AAA`) {
		t.Errorf("error of %d bytes: %.400s", len(err.Error()), err)
	}
	sentinel := errors.New(long)
	if err := ParseFile(path, func([]byte) error { return sentinel }); !errors.Is(err, sentinel) || len(err.Error()) > 300 {
		t.Errorf("a long error cut short keeps what it wraps: %.400v", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"gpu":                           `"gpu"`,
		"a\nb":                          `"a\nb"`,
		strings.Repeat("x", 100):        `"` + strings.Repeat("x", 100) + `"`,
		strings.Repeat("x", 101):        `"` + strings.Repeat("x", 100) + `"... (101 bytes)`,
		strings.Repeat("é", 1000):       `"` + strings.Repeat("é", 50) + `"... (2000 bytes)`,
		"x" + strings.Repeat("é", 1000): `"x` + strings.Repeat("é", 49) + `"... (2001 bytes)`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%.20q...) = %s, want %s", in, got, want)
		}
	}
}

func TestOpenCreatesAFileOfOurs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	f, err := Open(path, os.O_RDWR|os.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		t.Errorf("created %v, %v; want a regular file of ours, mode 0600", fi, err)
	}
}
