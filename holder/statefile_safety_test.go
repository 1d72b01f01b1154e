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

	"github.com/cro-exporter/cro-exporter/internal/statefile/statefiletest"
)

func TestLockRefusesALockFileThatIsNotOurs(t *testing.T) {
	const content = "a file that is not ours\n"
	for _, p := range statefiletest.Plants() {
		t.Run(p.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, lockFile)
			outside := p.Make(t, path, []byte(content))
			var before unix.Stat_t
			mustFill(t, unix.Lstat(path, &before))
			var l *stateLock
			var err error
			statefiletest.Within(t, 5*time.Second, func() { l, err = lockStateDir(dir, time.Time{}) })
			if err == nil {
				l.release()
			}
			if err == nil || !strings.Contains(err.Error(), "lock file") || !strings.Contains(err.Error(), path+" "+p.Want) {
				t.Errorf("lockStateDir = %v; want it refused: %s %s", err, path, p.Want)
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
	for _, p := range statefiletest.Plants() {
		t.Run(p.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, registryFile)
			outside := p.Make(t, path, valid)
			var log bytes.Buffer
			now := time.Unix(1700000000, 0)
			var entries []holderEntry
			var err error
			statefiletest.Within(t, 5*time.Second, func() {
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
			if warning.Level != "WARN" || !strings.Contains(warning.Err, path+" "+p.Want) || warning.MovedTo != aside {
				t.Errorf("logged %s; want a warning that %s %s, moved to %s", log.String(), path, p.Want, aside)
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
