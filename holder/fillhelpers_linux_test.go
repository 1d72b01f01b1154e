package holder

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests never fill the real disk: every total is a few MiB in a test's
// temp dir, and ENOSPC is forced or met on a 32 MiB tmpfs the test mounts.

// fillFilesystems are where the tests put their fill dirs: the temp dir
// (the disk's own filesystem) and, as root, a tmpfs, which counts blocks
// its own way.
var fillFilesystems = []struct {
	name   string
	parent func(*testing.T) string
}{
	{name: "on the temp dir", parent: func(t *testing.T) string { return t.TempDir() }},
	{name: "on a tmpfs", parent: func(t *testing.T) string { return mountFillTmpfs(t) }},
}

// mountFillTmpfs mounts a 32 MiB tmpfs on a new temp dir, unmounted when
// the test ends however it ends, and skips the test when not root.
func mountFillTmpfs(t *testing.T) string {
	t.Helper()
	skipShort(t, "mounts a tmpfs, as root")
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=32m"); err != nil {
		t.Skipf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the tmpfs on %s: %v", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// testFillOwner is the state dir the tests' fill dirs belong to.
const testFillOwner = "/var/lib/cro-exporter-test"

// openTestFill opens a fill of testFillOwner on dir with 2 MiB files, so a
// few MiB make several files. Cleanup releases its lock.
func openTestFill(t *testing.T, dir string) *fill {
	t.Helper()
	f, err := openFill(dir, "", testFillOwner)
	if err != nil {
		t.Fatalf("openFill(%s): %v", dir, err)
	}
	t.Cleanup(func() { f.Close() })
	f.maxFile = 2 * fillMiB
	return f
}

// makeTestFillDir makes dir as cro-exporter makes a fill dir of owner:
// mode 0700, with its marker.
func makeTestFillDir(t *testing.T, dir, owner string) {
	t.Helper()
	mustFill(t, os.Mkdir(dir, 0o700))
	mustFill(t, os.WriteFile(filepath.Join(dir, fillMarker), []byte(owner+"\n"), 0o600))
}

// fillSizes returns the size (st_size) of every regular file in dir with
// a fill file name.
func fillSizes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	sizes := map[string]int64{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return sizes
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := parseFillName(e.Name()); !ok {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			sizes[e.Name()] = fi.Size()
		}
	}
	return sizes
}

// fillUse is what Usage reports, with bytes rounded to 64 KiB: a
// filesystem may count a block or two of metadata.
type fillUse struct {
	Files int
	Bytes int64
}

func usageOf(t *testing.T, f *fill) fillUse {
	t.Helper()
	files, n, err := f.Usage()
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return fillUse{Files: files, Bytes: roundFill(n)}
}

func roundFill(n int64) int64 {
	const q = 64 << 10
	return (n + q/2) / q * q
}

// writeTestFile makes a file of size bytes: written with a pattern, or
// sparse (a size and no blocks).
func writeTestFile(t *testing.T, path string, size int64, sparse bool) {
	t.Helper()
	var data []byte
	if !sparse {
		data = bytes.Repeat([]byte{0xab}, int(size))
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// lstatModes returns the mode of everything under root, not following
// symlinks.
func lstatModes(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	modes := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		modes[path] = fi.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return modes
}

func mustFill(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fileSnapshot is a file as another user left it: content, mode, owner.
type fileSnapshot struct {
	Data []byte
	Mode fs.FileMode
	UID  uint32
}

func snapshotOf(t *testing.T, path string) fileSnapshot {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileSnapshot{Data: data, Mode: fi.Mode(), UID: fi.Sys().(*syscall.Stat_t).Uid}
}

// entriesOf lists the names in dir.
func entriesOf(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
