package regfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cro-exporter/cro-exporter/internal/wintest"
)

// ReadFile returns a small regular file and refuses anything else at once,
// without waiting on it or reading it whole: a directory, a device, a file
// over the cap.
func TestReadFileRefusesAnythingButASmallRegularFile(t *testing.T) {
	dir := wintest.TempDir(t)
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(path("small"), []byte("ok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("large"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	testReadFile(t, []readCase{
		{path("small"), ""},
		{dir, dir + " is a directory, not a regular file"},
		{path("large"), path("large") + " is larger than 1024 bytes"},
		{"NUL", "NUL is a device, not a regular file"},
	})
}

// A file that is not regular is refused before it is opened.
func TestOpenRefusesBeforeOpening(t *testing.T) {
	checked := 0
	_, err := Open("NUL", os.O_RDONLY, func(fi os.FileInfo) error {
		checked++
		return Check("NUL", fi, 1)
	})
	if err == nil || !strings.Contains(err.Error(), "is a device") || checked != 1 {
		t.Errorf("Open = %v after %d checks; want it refused at the first, before opening", err, checked)
	}
}
