package regfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ReadFile returns a small regular file, through a symlink too, and refuses
// anything else at once, without waiting on it or reading it whole.
func TestReadFileRefusesAnythingButASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(path("small"), []byte("ok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path("small"), path("link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(path("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", path("zero")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("large"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path("large"), 1<<30); err != nil { // sparse
		t.Fatal(err)
	}
	testReadFile(t, []readCase{
		{path("small"), ""},
		{path("link"), ""},
		{path("fifo"), path("fifo") + " is a FIFO, not a regular file"},
		{path("zero"), path("zero") + " is a device, not a regular file"},
		{dir, dir + " is a directory, not a regular file"},
		{path("large"), path("large") + " is larger than 1024 bytes"},
		// Regular, of size 0, yet longer than the cap: read up to it.
		{"/proc/self/smaps", "/proc/self/smaps is larger than 1024 bytes"},
	})
}

// A file that is not regular is refused before it is opened: Open never
// calls open(2) on it, so that opening a device has no effect.
func TestOpenRefusesBeforeOpening(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	checked := 0
	_, err := Open(fifo, os.O_RDONLY, func(st *unix.Stat_t) error {
		checked++
		return Check(fifo, st, 1)
	})
	if err == nil || !strings.Contains(err.Error(), "is a FIFO") || checked != 1 {
		t.Errorf("Open = %v after %d checks; want it refused at the first, before opening", err, checked)
	}
}
