package holder

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
