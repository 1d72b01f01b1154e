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

	"github.com/google/go-cmp/cmp"

	"github.com/cro-exporter/cro-exporter/internal/statefile/statefiletest"
)

func TestRegistryRoundTrips(t *testing.T) {
	dir := t.TempDir()
	entries := []holderEntry{
		{Pid: 100, StartTime: 5000, Kind: kindMemory, Size: 32 << 20},
		{Pid: 101, StartTime: 5001, Kind: kindCPU, Duty: 0.25},
	}
	if err := saveRegistry(dir, entries); err != nil {
		t.Fatal(err)
	}
	got, err := loadRegistry(dir, time.Now(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entries, got); diff != "" {
		t.Errorf("registry (-saved +loaded):\n%s", diff)
	}
	data, err := os.ReadFile(filepath.Join(dir, registryFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": 1`, `"pid": 100`, `"start_time": 5000`, `"kind": "memory"`, `"size": 33554432`, `"kind": "cpu"`, `"duty": 0.25`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("registry lacks %s:\n%s", want, data)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, registryFile+".tmp")); err == nil {
		t.Errorf("the temporary file is left behind")
	}
}

func TestMissingRegistryIsEmpty(t *testing.T) {
	got, err := loadRegistry(t.TempDir(), time.Now(), slog.New(slog.DiscardHandler))
	if err != nil || got != nil {
		t.Errorf("loadRegistry of a missing file = %v, %v; want nothing", got, err)
	}
}

func TestCorruptRegistryIsMovedAsideAndEmpty(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"JSON cut short", `{"version": 1, "holders": [{"pid": 12`},
		{"another version", `{"version": 2, "holders": []}`},
		{"an unknown field", `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "cpu", "owner": "x"}]}`},
		{"an unknown kind", `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "disk"}]}`},
		{"pid 1", `{"version": 1, "holders": [{"pid": 1, "start_time": 3, "kind": "cpu"}]}`},
		{"no start time", `{"version": 1, "holders": [{"pid": 12, "kind": "cpu"}]}`},
		{"a negative size", `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "memory", "size": -1}]}`},
		{"a duty above 1", `{"version": 1, "holders": [{"pid": 12, "start_time": 3, "kind": "cpu", "duty": 1.5}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, registryFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var log strings.Builder
			now := time.Unix(1700000000, 0)
			got, err := loadRegistry(dir, now, slog.New(slog.NewTextHandler(&log, nil)))
			if err != nil || got != nil {
				t.Fatalf("loadRegistry = %v, %v; want nothing", got, err)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("the corrupt registry is still in place")
			}
			aside, err := os.ReadFile(path + ".corrupt-1700000000")
			if err != nil || string(aside) != tc.content {
				t.Errorf("moved aside: %q, %v; want the corrupt content", aside, err)
			}
			if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "moved_to=") {
				t.Errorf("no warning naming where it went: %s", log.String())
			}
		})
	}
}

func TestCorruptRegistryNeverOverwritesAnEarlierOne(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, registryFile)
	now := time.Unix(1700000000, 0)
	for _, content := range []string{"first", "second"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadRegistry(dir, now, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{".corrupt-1700000000": "first", ".corrupt-1700000000.1": "second"} {
		if got, err := os.ReadFile(path + name); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
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
