package holder

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// foreignStateUID owns the files of tests that need another user's; no such
// user needs to exist.
const foreignStateUID = 54321

// stateWithin runs f and fails the test binary at once when f takes longer
// than d: a read stuck on a FIFO, or eating /dev/zero, must not outlive the
// test.
func stateWithin(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		panic(t.Name() + ": still running after " + d.String())
	}
}

// stateFilePlant is a file planted at a state file's name that must not be
// used: make plants it at path and returns a file elsewhere that must stay
// as it is, or "".
type stateFilePlant struct {
	name string
	make func(t *testing.T, path string, valid []byte) (outside string)
	want string
}

// stateFilePlants are the attacks on the name of the registry or the lock.
func stateFilePlants() []stateFilePlant {
	return []stateFilePlant{
		{"a symlink to /dev/zero", func(t *testing.T, path string, _ []byte) string {
			mustFill(t, os.Symlink("/dev/zero", path))
			return ""
		}, "is a symlink"},
		{"a symlink to a file elsewhere", func(t *testing.T, path string, valid []byte) string {
			outside := filepath.Join(t.TempDir(), "outside")
			mustFill(t, os.WriteFile(outside, valid, 0o600))
			mustFill(t, os.Symlink(outside, path))
			return outside
		}, "is a symlink"},
		{"a FIFO", func(t *testing.T, path string, _ []byte) string {
			mustFill(t, unix.Mkfifo(path, 0o600))
			return ""
		}, "is a FIFO"},
		{"a hard link to a file elsewhere", func(t *testing.T, path string, valid []byte) string {
			// Root may link a file of its own even with
			// fs.protected_hardlinks=1.
			outside := filepath.Join(t.TempDir(), "outside")
			mustFill(t, os.WriteFile(outside, valid, 0o600))
			mustFill(t, os.Link(outside, path))
			return outside
		}, "has 2 links"},
		{"another user's file", func(t *testing.T, path string, valid []byte) string {
			skipShort(t, "chowns to another user, as root")
			if os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			mustFill(t, os.WriteFile(path, valid, 0o600))
			mustFill(t, os.Chown(path, foreignStateUID, foreignStateUID))
			return ""
		}, "is owned by uid 54321"},
	}
}

func TestLockRefusesALockFileThatIsNotOurs(t *testing.T) {
	const content = "a file that is not ours\n"
	for _, p := range stateFilePlants() {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, lockFile)
			outside := p.make(t, path, []byte(content))
			var before unix.Stat_t
			mustFill(t, unix.Lstat(path, &before))
			var l *stateLock
			var err error
			stateWithin(t, 5*time.Second, func() { l, err = lockStateDir(dir) })
			if err == nil {
				l.release()
			}
			if err == nil || !strings.Contains(err.Error(), "lock file") || !strings.Contains(err.Error(), path+" "+p.want) {
				t.Errorf("lockStateDir = %v; want it refused: %s %s", err, path, p.want)
			}
			if outside != "" {
				if got, _ := os.ReadFile(outside); string(got) != content {
					t.Errorf("the file outside became %q", got)
				}
			}
			var after unix.Stat_t
			mustFill(t, unix.Lstat(path, &after))
			if after.Ino != before.Ino || after.Size != before.Size || after.Mode != before.Mode || after.Uid != before.Uid {
				t.Errorf("the planted %s was changed", lockFile)
			}
		})
	}
}

func TestLoadRegistryMovesAsideAFileThatIsNotOurs(t *testing.T) {
	valid := []byte(`{"version": 1, "holders": [{"pid": 4242, "start_time": 5000, "kind": "cpu", "duty": 0.5}]}`)
	for _, p := range stateFilePlants() {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, registryFile)
			outside := p.make(t, path, valid)
			var log bytes.Buffer
			now := time.Unix(1700000000, 0)
			var entries []holderEntry
			var err error
			stateWithin(t, 5*time.Second, func() {
				entries, err = loadRegistry(dir, now, slog.New(slog.NewJSONHandler(&log, nil)))
			})
			if err != nil || entries != nil {
				t.Errorf("loadRegistry = %v, %v; want nothing", entries, err)
			}
			var warning struct {
				Level, Err string
				MovedTo    string `json:"moved_to"`
			}
			json.Unmarshal(log.Bytes(), &warning)
			aside := path + ".corrupt-1700000000"
			if warning.Level != "WARN" || !strings.Contains(warning.Err, path+" "+p.want) || warning.MovedTo != aside {
				t.Errorf("logged %s; want a warning that %s %s, moved to %s", log.String(), path, p.want, aside)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("%s is still there (%v)", path, err)
			}
			if _, err := os.Lstat(aside); err != nil {
				t.Errorf("not moved aside: %v", err)
			}
			if outside != "" {
				if got, _ := os.ReadFile(outside); !bytes.Equal(got, valid) {
					t.Errorf("the file outside became %q", got)
				}
			}
		})
	}
}

func TestLoadRegistryWarnsOfALongStringInShort(t *testing.T) {
	long := strings.Repeat("A", 900_000)
	for name, content := range map[string]string{
		"a 10 MB kind": `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "` + strings.Repeat("A", 10<<20) + `"}]}`,
		"a long kind":  `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "` + long + `"}]}`,
		"a long field": `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "cpu", "` + long + `": 1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, registryFile)
			mustFill(t, os.WriteFile(path, []byte(content), 0o600))
			var log bytes.Buffer
			if _, err := loadRegistry(dir, time.Unix(1700000000, 0), slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
				t.Fatal(err)
			}
			if log.Len() >= 1024 || !strings.Contains(log.String(), `"level":"WARN"`) {
				t.Errorf("logged %d bytes, want one warning under 1 KiB: %.2000s", log.Len(), log.String())
			}
			if moved, err := os.ReadFile(path + ".corrupt-1700000000"); err != nil || string(moved) != content {
				t.Errorf("moved aside %d bytes (%v), want the %d of the file", len(moved), err, len(content))
			}
		})
	}
}
