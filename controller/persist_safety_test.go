package controller

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/statefile/statefiletest"
)

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// privateDir is a fresh dir of ours with mode 0700: t.TempDir() makes 0777
// less the umask.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o700))
	return dir
}

// savedAverages is the content of a valid averages file and the averages
// it holds.
func savedAverages(t *testing.T) ([]byte, *Averages) {
	t.Helper()
	dir := t.TempDir()
	a := NewAverages(window, maxSpan)
	traceAverages(t, a, rand.New(rand.NewPCG(3, 4)), start, start.Add(day))
	must(t, a.save(dir))
	data, err := os.ReadFile(filepath.Join(dir, averagesFile))
	must(t, err)
	return data, a
}

// fileType is the type of the file at path, not following a symlink.
func fileType(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	return st.Mode & unix.S_IFMT
}

func TestLoadMovesAsideAStateFileThatIsNotOurs(t *testing.T) {
	valid, _ := savedAverages(t)
	for _, p := range statefiletest.Plants() {
		t.Run(p.Name, func(t *testing.T) {
			dir := privateDir(t)
			path := filepath.Join(dir, averagesFile)
			outside := p.Make(t, path, valid)
			var log bytes.Buffer
			a := NewAverages(window, maxSpan)
			var err error
			statefiletest.Within(t, 5*time.Second, func() {
				err = a.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil)))
			})
			must(t, err)
			if diff := cmp.Diff(NewAverages(window, maxSpan), a, allowAverages); diff != "" {
				t.Errorf("averages (-fresh +loaded):\n%s", diff)
			}
			var warning struct {
				Level, File, Err string
				MovedTo          string `json:"moved_to"`
			}
			json.Unmarshal(log.Bytes(), &warning)
			aside := path + ".corrupt-1767225600"
			if warning.Level != "WARN" || warning.File != path || !strings.Contains(warning.Err, p.Want) || warning.MovedTo != aside {
				t.Errorf("logged %s; want a warning that %s %s, moved to %s", log.String(), path, p.Want, aside)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("%s is still there (%v)", path, err)
			}
			if got := fileType(t, aside); got != p.Type {
				t.Errorf("moved aside a file of type %#o, want %#o", got, p.Type)
			}
			if outside != "" {
				if got, _ := os.ReadFile(outside); !bytes.Equal(got, valid) {
					t.Errorf("the file outside became %q", got)
				}
			}
		})
	}
}

// longValues are averages files holding a long string from the file in
// each place an error could quote it.
func longValues() map[string]string {
	resources := func(cpu string) string {
		return `{"version": 1, "resources": {"cpu": ` + cpu + `}}`
	}
	long := strings.Repeat("A", 900_000)
	return map[string]string{
		"a 10 MB string":  resources(`{"value": 0.3, "weight": 0.5, "last": "` + strings.Repeat("A", 10<<20) + `"}`),
		"a long time":     resources(`{"value": 0.3, "weight": 0.5, "last": "` + long + `"}`),
		"a long field":    resources(`{"value": 0.3, "` + long + `": 1}`),
		"a long resource": `{"version": 1, "resources": {"` + long + `": {"value": 0.3}}}`,
		"a long number":   resources(`{"value": 1` + strings.Repeat("0", 900_000) + `}`),
	}
}

func TestLoadWarnsOfALongStringInShort(t *testing.T) {
	for name, content := range longValues() {
		t.Run(name, func(t *testing.T) {
			dir := privateDir(t)
			path := filepath.Join(dir, averagesFile)
			must(t, os.WriteFile(path, []byte(content), 0o600))
			var log bytes.Buffer
			must(t, NewAverages(window, maxSpan).Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil))))
			if log.Len() >= 1024 || !strings.Contains(log.String(), `"level":"WARN"`) {
				t.Errorf("logged %d bytes, want one warning under 1 KiB: %.2000s", log.Len(), log.String())
			}
			if moved, err := os.ReadFile(path + ".corrupt-1767225600"); err != nil || string(moved) != content {
				t.Errorf("moved aside %d bytes (%v), want the %d of the file", len(moved), err, len(content))
			}
		})
	}
}

func TestSaveNeverWritesThroughAHardLinkedTemporary(t *testing.T) {
	// Root may link a file of its own even with fs.protected_hardlinks=1.
	dir := privateDir(t)
	outside := filepath.Join(t.TempDir(), "outside")
	must(t, os.WriteFile(outside, []byte("root's own file"), 0o600))
	must(t, os.Link(outside, filepath.Join(dir, averagesFile+".tmp")))
	_, a := savedAverages(t)
	must(t, a.save(dir))
	if got, _ := os.ReadFile(outside); string(got) != "root's own file" {
		t.Errorf("the file outside became %q", got)
	}
	loaded := NewAverages(window, maxSpan)
	must(t, loaded.Load(dir, loadedAt, discard()))
	if diff := cmp.Diff(a, loaded, allowAverages); diff != "" {
		t.Errorf("loaded averages (-saved +loaded):\n%s", diff)
	}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestReadRestoresTheAveragesAndChangesNothing(t *testing.T) {
	valid, saved := savedAverages(t)
	dir := privateDir(t)
	path := filepath.Join(dir, averagesFile)
	must(t, os.WriteFile(path, valid, 0o600))
	var log bytes.Buffer
	a := NewAverages(window, maxSpan)
	a.Read(dir, textLogger(&log))
	if diff := cmp.Diff(saved, a, allowAverages); diff != "" {
		t.Errorf("read averages (-saved +read):\n%s", diff)
	}
	if log.Len() > 0 {
		t.Errorf("logged %s", log.String())
	}

	missing := filepath.Join(t.TempDir(), "missing")
	a.Read(missing, textLogger(&log))
	if diff := cmp.Diff(saved, a, allowAverages); diff != "" {
		t.Errorf("a missing file changed the averages (-before +after):\n%s", diff)
	}
	if _, err := os.Lstat(missing); !os.IsNotExist(err) || log.Len() > 0 {
		t.Errorf("a missing state dir: %v, logged %q", err, log.String())
	}
}

func TestReadLeavesAnUnusableFileAsItIs(t *testing.T) {
	valid, _ := savedAverages(t)
	plants := statefiletest.Plants()
	for name, content := range longValues() {
		plants = append(plants, statefiletest.Plant{Name: name, Make: func(t *testing.T, path string, _ []byte) string {
			must(t, os.WriteFile(path, []byte(content), 0o600))
			return ""
		}, Type: unix.S_IFREG})
	}
	plants = append(plants, statefiletest.Plant{Name: "a corrupt file", Make: func(t *testing.T, path string, _ []byte) string {
		must(t, os.WriteFile(path, []byte(`{"version": 1,`), 0o600))
		return ""
	}, Want: "unexpected end of JSON input", Type: unix.S_IFREG})
	for _, p := range plants {
		t.Run(p.Name, func(t *testing.T) {
			dir := privateDir(t)
			path := filepath.Join(dir, averagesFile)
			p.Make(t, path, valid)
			var before unix.Stat_t
			must(t, unix.Lstat(path, &before))
			var log bytes.Buffer
			a := NewAverages(window, maxSpan)
			statefiletest.Within(t, 5*time.Second, func() { a.Read(dir, slog.New(slog.NewJSONHandler(&log, nil))) })
			if diff := cmp.Diff(NewAverages(window, maxSpan), a, allowAverages); diff != "" {
				t.Errorf("averages (-fresh +read):\n%s", diff)
			}
			var warning struct{ Level, File, Err string }
			json.Unmarshal(log.Bytes(), &warning)
			if log.Len() >= 1024 || warning.Level != "WARN" || warning.File != path || !strings.Contains(warning.Err, p.Want) {
				t.Errorf("logged %.2000s; want one warning under 1 KiB that %s %s", log.String(), path, p.Want)
			}
			var after unix.Stat_t
			must(t, unix.Lstat(path, &after))
			if after.Ino != before.Ino || after.Size != before.Size || after.Mtim != before.Mtim {
				t.Errorf("%s changed", path)
			}
			if diff := cmp.Diff([]string{averagesFile}, dirNames(t, dir)); diff != "" {
				t.Errorf("state dir (-want +got):\n%s", diff)
			}
		})
	}
}

// statOf is what path names, or the symlink itself when it dangles.
func statOf(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		must(t, unix.Lstat(path, &st))
	}
	return st
}

// The rules themselves are statefile.CheckDir's, tested there; these cases
// check that CheckStateDir applies them before it creates or probes
// anything, with and without write.
func TestCheckStateDirRefusesADirThatIsNotOurs(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T) string
		want string // after the dir's name
	}{
		{"mode 1777", func(t *testing.T) string {
			dir := t.TempDir()
			must(t, os.Chmod(dir, os.ModeSticky|0o777))
			return dir
		}, "has mode 1777; cro-exporter needs 0700 (chmod 700 "},
		{"a dangling symlink", func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "state")
			must(t, os.Symlink(filepath.Join(t.TempDir(), "missing"), link))
			return link
		}, "is a symlink"},
		{"a regular file", func(t *testing.T) string {
			file := filepath.Join(t.TempDir(), "state")
			must(t, os.WriteFile(file, nil, 0o600))
			return file
		}, "not a directory"},
	} {
		for _, write := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "", false: " (read only)"}[write], func(t *testing.T) {
				dir := tc.make(t)
				before := statOf(t, dir)
				err := CheckStateDir(dir, write)
				if err == nil || !strings.HasPrefix(err.Error(), "state dir "+dir+" ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("CheckStateDir = %v; want an error naming %s and %q", err, dir, tc.want)
				}
				after := statOf(t, dir)
				if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
					t.Errorf("CheckStateDir changed the dir's mode or owner")
				}
				if after.Mode&unix.S_IFMT == unix.S_IFDIR && len(dirNames(t, dir)) > 0 {
					t.Errorf("CheckStateDir wrote %v", dirNames(t, dir))
				}
			})
		}
	}
}

func TestCheckStateDirReadOnlyCreatesNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "a", "state")
	if err := CheckStateDir(missing, false); err != nil {
		t.Errorf("a missing dir: %v", err)
	}
	if _, err := os.Lstat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("created %s (%v)", filepath.Dir(missing), err)
	}
	dir := privateDir(t)
	if err := CheckStateDir(dir, false); err != nil {
		t.Errorf("a dir of ours: %v", err)
	}
	if names := dirNames(t, dir); len(names) > 0 {
		t.Errorf("wrote %v", names)
	}
}
