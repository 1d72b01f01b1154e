package statefile

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteReplacesTheFileAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second"} {
		if err := Write(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Errorf("after writing %q: %q, %v", content, got, err)
		}
	}
	if _, err := os.Lstat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
}

func TestMoveAsideKeepsEveryEarlierCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	now := time.Unix(1700000000, 0)
	var moved []string
	for _, content := range []string{"one", "two"} {
		os.WriteFile(path, []byte(content), 0o600)
		aside, err := moveAside(path, now)
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, aside)
	}
	want := []string{path + ".corrupt-1700000000", path + ".corrupt-1700000000.1"}
	for i, content := range []string{"one", "two"} {
		if moved[i] != want[i] {
			t.Errorf("moved to %s, want %s", moved[i], want[i])
		}
		if got, _ := os.ReadFile(want[i]); string(got) != content {
			t.Errorf("%s holds %q, want %q", want[i], got, content)
		}
	}
}
