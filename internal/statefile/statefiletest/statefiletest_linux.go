// Package statefiletest holds what the tests of every state file share:
// the files a hostile local user plants at a state file's name, and the
// guards such tests need. Only Linux's tests import it: the plants are
// Linux's (FIFOs, other uids); Windows' tests make their own.
package statefiletest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ForeignUID owns the files and dirs of tests that need another user's; no
// such user needs to exist.
const ForeignUID = 54321

// NeedRoot skips a test that plants files only root can, and every such
// test under go test -short.
func NeedRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("short: needs root")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// Within runs f and fails the test binary at once when f takes longer than
// d: a read stuck on a FIFO, or eating /dev/zero, must not outlive the test.
func Within(t *testing.T, d time.Duration, f func()) {
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

// Plant is a file planted at a state file's name, which must never be read,
// written through or changed.
type Plant struct {
	Name string
	// Make plants it at path; outside, when not "", is a file elsewhere,
	// holding valid, that must stay as it is.
	Make func(t *testing.T, path string, valid []byte) (outside string)
	// Want is what the error says of it, after the path.
	Want string
	// Type is its file type (unix.S_IFMT bits), as moved aside.
	Type uint32
}

// Plants are the files a state file's name must never be used as.
func Plants() []Plant {
	// elsewhere makes path, with link, a link to a file outside that holds
	// valid.
	elsewhere := func(link func(oldname, newname string) error) func(t *testing.T, path string, valid []byte) string {
		return func(t *testing.T, path string, valid []byte) string {
			outside := filepath.Join(t.TempDir(), "outside")
			must(t, os.WriteFile(outside, valid, 0o600))
			must(t, link(outside, path))
			return outside
		}
	}
	return []Plant{
		{"a symlink to /dev/zero", func(t *testing.T, path string, _ []byte) string {
			must(t, os.Symlink("/dev/zero", path))
			return ""
		}, "is a symlink", unix.S_IFLNK},
		{"a symlink to a valid file elsewhere", elsewhere(os.Symlink), "is a symlink", unix.S_IFLNK},
		{"a FIFO", func(t *testing.T, path string, _ []byte) string {
			must(t, unix.Mkfifo(path, 0o600))
			return ""
		}, "is a FIFO", unix.S_IFIFO},
		{"a device", func(t *testing.T, path string, _ []byte) string {
			NeedRoot(t)
			must(t, unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5)))) // /dev/zero
			return ""
		}, "is a device", unix.S_IFCHR},
		// Root may link a file of its own even with fs.protected_hardlinks=1.
		{"a hard link to a valid file elsewhere", elsewhere(os.Link), "has 2 links", unix.S_IFREG},
		{"another user's valid file", func(t *testing.T, path string, valid []byte) string {
			NeedRoot(t)
			must(t, os.WriteFile(path, valid, 0o600))
			must(t, os.Chown(path, ForeignUID, ForeignUID))
			return ""
		}, "is owned by uid 54321", unix.S_IFREG},
	}
}

// ModeDir makes, for a table of dirs, a fresh dir with mode: t.TempDir()
// makes 0777 less the umask.
func ModeDir(mode os.FileMode) func(t *testing.T) string {
	return func(t *testing.T) string {
		dir := t.TempDir()
		must(t, os.Chmod(dir, mode))
		return dir
	}
}

// RegularFile makes an empty regular file in a fresh dir: what must never
// be taken for a dir.
func RegularFile(t *testing.T) string {
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o600))
	return file
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
