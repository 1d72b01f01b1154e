package statefile

import (
	"os"
	"path/filepath"
	"strings"
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

func TestDecodeIsStrict(t *testing.T) {
	type file struct {
		Version int `json:"version"`
		Value   int `json:"value"`
	}
	var f file
	if err := Decode([]byte(`{"version":1,"value":7}`), 1, &f); err != nil || f.Value != 7 {
		t.Errorf("a good file: %+v, %v", f, err)
	}
	for in, want := range map[string]string{
		`{"version":2,"value":7}`: "version 2, want 1",
		`{"version":1,"valeu":7}`: "valeu",
		`{"version":1,`:           "parsing JSON",
	} {
		if err := Decode([]byte(in), 1, &file{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %q", in, err, want)
		}
	}
}
