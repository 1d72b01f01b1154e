package holder

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
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

func TestOpenFill(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rootOnly bool
		// setup prepares parent and returns the dir to open.
		setup    func(t *testing.T, parent string) string
		wantErr  string
		wantMode fs.FileMode
	}{
		{
			name:     "creates a missing dir with mode 0700",
			setup:    func(t *testing.T, parent string) string { return filepath.Join(parent, "fill") },
			wantMode: fs.ModeDir | 0o700,
		},
		{
			name: "refuses our own dir with a wider mode and leaves its mode",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				makeTestFillDir(t, dir, testFillOwner)
				mustFill(t, os.Chmod(dir, 0o755))
				return dir
			},
			wantErr: "has mode 0755, not 0700",
		},
		{
			name: "opens our own dir with files in it",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				makeTestFillDir(t, dir, testFillOwner)
				writeTestFile(t, filepath.Join(dir, "fill-000001"), fillMiB, false)
				return dir
			},
			wantMode: fs.ModeDir | 0o700,
		},
		{
			name: "refuses a dir without a marker, even with only fill files in it",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Mkdir(dir, 0o700))
				writeTestFile(t, filepath.Join(dir, "fill-000001"), fillMiB, false)
				return dir
			},
			wantErr: "has no .cro-exporter marker",
		},
		{
			name: "adopts and marks an empty dir of ours without a marker, as a systemd unit makes it",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Mkdir(dir, 0o700))
				return dir
			},
			wantMode: fs.ModeDir | 0o700,
		},
		{
			name: "refuses an empty dir without a marker with a wider mode",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Mkdir(dir, 0o700))
				mustFill(t, os.Chmod(dir, os.ModeSticky|0o777))
				return dir
			},
			wantErr: "has mode 1777, not 0700",
		},
		{
			name: "refuses a dir whose marker names another state dir",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				makeTestFillDir(t, dir, "/srv/other-state")
				return dir
			},
			wantErr: `belongs to the cro-exporter with state dir "/srv/other-state"; give this one its own --disk.fill-dir`,
		},
		{
			name: "refuses a dir whose marker is a symlink to a file naming us",
			setup: func(t *testing.T, parent string) string {
				named := filepath.Join(parent, "named")
				mustFill(t, os.WriteFile(named, []byte(testFillOwner+"\n"), 0o600))
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Mkdir(dir, 0o700))
				mustFill(t, os.Symlink(named, filepath.Join(dir, fillMarker)))
				return dir
			},
			wantErr: "marker that is a symlink",
		},
		{
			name: "refuses a dir of ours holding a file that is not a fill file",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				makeTestFillDir(t, dir, testFillOwner)
				writeTestFile(t, filepath.Join(dir, "notes.txt"), 10, false)
				return dir
			},
			wantErr: `holds "notes.txt", which is not a fill file of ours; cro-exporter adopts only a directory it made`,
		},
		{
			name:    "refuses a dir whose parent is missing rather than make the tree",
			setup:   func(t *testing.T, parent string) string { return filepath.Join(parent, "missing", "fill") },
			wantErr: "no such file or directory",
		},
		{
			name: "refuses a dir that is a symlink",
			setup: func(t *testing.T, parent string) string {
				target := filepath.Join(parent, "elsewhere")
				mustFill(t, os.Mkdir(target, 0o700))
				mustFill(t, os.Chmod(target, 0o755))
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Symlink(target, dir))
				return dir
			},
			wantErr: "is a symlink",
		},
		{
			name: "refuses a dir that is a symlink even named with a trailing slash",
			setup: func(t *testing.T, parent string) string {
				target := filepath.Join(parent, "elsewhere")
				mustFill(t, os.Mkdir(target, 0o755))
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Symlink(target, dir))
				return dir + "/"
			},
			wantErr: "is a symlink",
		},
		{
			name: "refuses a dir that is a regular file",
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				writeTestFile(t, dir, 10, false)
				return dir
			},
			wantErr: "is not a directory",
		},
		{
			name:     "refuses a dir owned by another uid",
			rootOnly: true,
			setup: func(t *testing.T, parent string) string {
				dir := filepath.Join(parent, "fill")
				mustFill(t, os.Mkdir(dir, 0o755))
				mustFill(t, os.Chown(dir, 65534, 65534))
				return dir
			},
			wantErr: "owned by uid 65534",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly {
				skipShort(t, "needs root")
			}
			if tc.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			parent := t.TempDir()
			dir := tc.setup(t, parent)
			before := lstatModes(t, parent)
			// The CLI's check before anything starts says what openFill says.
			checkErr := CheckFillDir(dir, "", testFillOwner)
			f, err := openFill(dir, "", testFillOwner)
			if tc.wantErr != "" {
				for _, err := range []error{checkErr, err} {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), filepath.Clean(dir)) {
						t.Errorf("CheckFillDir and openFill(%s) = %v, want an error naming the dir and saying %q", dir, err, tc.wantErr)
					}
				}
				if diff := cmp.Diff(before, lstatModes(t, parent)); diff != "" {
					t.Errorf("a refused openFill changed the tree (-before +after):\n%s", diff)
				}
				return
			}
			if checkErr != nil {
				t.Errorf("CheckFillDir(%s): %v", dir, checkErr)
			}
			if err != nil {
				t.Fatalf("openFill(%s): %v", dir, err)
			}
			t.Cleanup(func() { f.Close() })
			if f.Dir() != dir {
				t.Errorf("Dir() = %q, want %q", f.Dir(), dir)
			}
			if marker, err := os.ReadFile(filepath.Join(dir, fillMarker)); err != nil || string(marker) != testFillOwner+"\n" {
				t.Errorf("marker = %q, %v; want the owner", marker, err)
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.wantMode {
				t.Errorf("dir mode = %v, want %v", fi.Mode(), tc.wantMode)
			}
		})
	}
	t.Run("refuses an empty path", func(t *testing.T) {
		if _, err := openFill("", "", testFillOwner); err == nil {
			t.Error("openFill(\"\") succeeded, want an error")
		}
	})
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

func TestFillResize(t *testing.T) {
	const mib = fillMiB
	for _, tc := range []struct {
		name      string
		totals    []int64
		wantSizes map[string]int64
	}{
		{
			name:      "grows from nothing to 5 MiB in three files",
			totals:    []int64{5 * mib},
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": 2 * mib, "fill-000003": mib},
		},
		{
			name:      "fills a whole number of files without an empty one after them",
			totals:    []int64{4 * mib},
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": 2 * mib},
		},
		{
			name:      "shrinks by removing the highest files and truncating the last one kept",
			totals:    []int64{5 * mib, 3 * mib},
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": mib},
		},
		{
			name:      "shrinks inside the first file",
			totals:    []int64{5 * mib, mib / 2},
			wantSizes: map[string]int64{"fill-000001": mib / 2},
		},
		{
			name:      "grows again by extending the partial file before adding files",
			totals:    []int64{5 * mib, 3 * mib, 7 * mib},
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": 2 * mib, "fill-000003": 2 * mib, "fill-000004": mib},
		},
		{
			name:      "keeps an unchanged total as it is",
			totals:    []int64{3 * mib, 3 * mib},
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": mib},
		},
		{
			name:      "shrinks to zero by removing every file",
			totals:    []int64{5 * mib, 0},
			wantSizes: map[string]int64{},
		},
		{
			name:      "holds a total that is not a whole number of blocks",
			totals:    []int64{mib + 100},
			wantSizes: map[string]int64{"fill-000001": mib + 100},
		},
	} {
		for _, fsys := range fillFilesystems {
			t.Run(fsys.name+"/"+tc.name, func(t *testing.T) {
				dir := filepath.Join(fsys.parent(t), "fill")
				f := openTestFill(t, dir)
				for _, total := range tc.totals {
					if err := f.Resize(total); err != nil {
						t.Fatalf("Resize(%d): %v", total, err)
					}
				}
				got := fillSizes(t, dir)
				if diff := cmp.Diff(tc.wantSizes, got); diff != "" {
					t.Errorf("fill files (-want +got):\n%s", diff)
				}
				var want int64
				for _, n := range tc.wantSizes {
					want += n
				}
				if diff := cmp.Diff(fillUse{Files: len(tc.wantSizes), Bytes: roundFill(want)}, usageOf(t, f)); diff != "" {
					t.Errorf("Usage (-want +got):\n%s", diff)
				}
				for name := range got {
					fi, err := os.Lstat(filepath.Join(dir, name))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode() != 0o600 {
						t.Errorf("%s has mode %v, want -rw-------", name, fi.Mode())
					}
				}
			})
		}
	}
}

func TestFillUsage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  fillUse
	}{
		{
			name:  "counts an empty dir as nothing",
			setup: func(t *testing.T, dir string) {},
			want:  fillUse{},
		},
		{
			name: "counts a sparse fill file by its blocks, not its size",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "fill-000001"), 1<<30, true)
			},
			want: fillUse{Files: 1},
		},
		{
			name: "counts a written fill file by its blocks",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "fill-000001"), fillMiB, false)
				writeTestFile(t, filepath.Join(dir, "fill-000004"), fillMiB/2, false)
			},
			want: fillUse{Files: 2, Bytes: fillMiB + fillMiB/2},
		},
		{
			name: "counts no file of another name",
			setup: func(t *testing.T, dir string) {
				for _, name := range []string{"notes", "fill-000001.tmp", "fill-1", "fill-0000001", "FILL-000001"} {
					writeTestFile(t, filepath.Join(dir, name), fillMiB, false)
				}
			},
			want: fillUse{},
		},
		{
			name:  "counts a missing dir as nothing",
			setup: func(t *testing.T, dir string) { mustFill(t, os.RemoveAll(dir)) },
			want:  fillUse{},
		},
	} {
		for _, fsys := range fillFilesystems {
			t.Run(fsys.name+"/"+tc.name, func(t *testing.T) {
				dir := filepath.Join(fsys.parent(t), "fill")
				f := openTestFill(t, dir)
				tc.setup(t, dir)
				if diff := cmp.Diff(tc.want, usageOf(t, f)); diff != "" {
					t.Errorf("Usage (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestFillAdoption(t *testing.T) {
	const mib = fillMiB
	for _, tc := range []struct {
		name      string
		setup     func(t *testing.T, dir string)
		total     int64
		wantSizes map[string]int64
	}{
		{
			name: "a second openFill grows the files of the first instead of adding beside them",
			setup: func(t *testing.T, dir string) {
				first := openTestFill(t, dir)
				mustFill(t, first.Resize(3*mib))
				mustFill(t, first.Close())
			},
			total:     5 * mib,
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": 2 * mib, "fill-000003": mib},
		},
		{
			name: "a second openFill shrinks the files of the first",
			setup: func(t *testing.T, dir string) {
				first := openTestFill(t, dir)
				mustFill(t, first.Resize(5*mib))
				mustFill(t, first.Close())
			},
			total:     mib,
			wantSizes: map[string]int64{"fill-000001": mib},
		},
		{
			name: "numbers new files after the highest adopted one",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "fill-000007"), mib, false)
			},
			total:     3 * mib,
			wantSizes: map[string]int64{"fill-000007": 2 * mib, "fill-000008": mib},
		},
		{
			name: "shrinks adopted files from the highest number down",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "fill-000001"), 2*mib, false)
				writeTestFile(t, filepath.Join(dir, "fill-000003"), 2*mib, false)
			},
			total:     3 * mib,
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000003": mib},
		},
		{
			name: "cuts an adopted sparse file to the limit and allocates it",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "fill-000001"), 1<<30, true)
			},
			total:     3 * mib,
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": mib},
		},
		{
			name: "allocates the holes of an adopted file of the right size",
			setup: func(t *testing.T, dir string) {
				writeTestFile(t, filepath.Join(dir, "fill-000001"), 2*mib, true)
			},
			total:     2 * mib,
			wantSizes: map[string]int64{"fill-000001": 2 * mib},
		},
	} {
		for _, fsys := range fillFilesystems {
			t.Run(fsys.name+"/"+tc.name, func(t *testing.T) {
				dir := filepath.Join(fsys.parent(t), "fill")
				makeTestFillDir(t, dir, testFillOwner)
				tc.setup(t, dir)
				f := openTestFill(t, dir)
				if err := f.Resize(tc.total); err != nil {
					t.Fatalf("Resize(%d): %v", tc.total, err)
				}
				if diff := cmp.Diff(tc.wantSizes, fillSizes(t, dir)); diff != "" {
					t.Errorf("fill files (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(fillUse{Files: len(tc.wantSizes), Bytes: tc.total}, usageOf(t, f)); diff != "" {
					t.Errorf("Usage (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestFillLeavesForeignFilesAlone(t *testing.T) {
	foreign := []string{"notes.txt", "fill-000001.tmp", "fill-1", "fill-0000001", "FILL-000002", "sub/fill-000001"}
	// Each op but counting says what is in the way: the fill does not grow,
	// nor is the dir removed, while anything not ours is there.
	for _, tc := range []struct {
		name    string
		op      func(f *fill) error
		wantErr bool
	}{
		{name: "growing", op: func(f *fill) error { return f.Resize(5 * fillMiB) }, wantErr: true},
		{name: "shrinking", op: func(f *fill) error { return f.Resize(fillMiB) }, wantErr: true},
		{name: "counting", op: func(f *fill) error { _, _, err := f.Usage(); return err }},
		{name: "removing", op: func(f *fill) error { _, _, err := f.Remove(); return err }, wantErr: true},
	} {
		t.Run(tc.name+" leaves foreign files as they were", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fill")
			f := openTestFill(t, dir)
			mustFill(t, f.Resize(3*fillMiB))
			mustFill(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
			want := map[string]string{}
			for i, name := range foreign {
				data := strings.Repeat(name, 1000+i)
				mustFill(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o640))
				want[name] = data
			}
			before := lstatModes(t, dir)
			err := tc.op(f)
			const says = `holds "FILL-000002", which is not a fill file of ours, and other entries that are not`
			if tc.wantErr && (err == nil || !strings.Contains(err.Error(), says)) || !tc.wantErr && err != nil {
				t.Errorf("got error %v, want one saying %q: %v", err, says, tc.wantErr)
			}
			got := map[string]string{}
			for _, name := range foreign {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				got[name] = string(data)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("foreign files changed (-want +got):\n%s", diff)
			}
			after := lstatModes(t, dir)
			for path, mode := range before {
				if _, ok := parseFillName(filepath.Base(path)); ok && filepath.Dir(path) == dir {
					continue
				}
				if after[path] != mode {
					t.Errorf("%s: mode %v, was %v", path, after[path], mode)
				}
			}
		})
	}
}

func TestFillRefusesWhatIsNotAFillFile(t *testing.T) {
	const mib = fillMiB
	// Every case has a precious file outside the fill dir, and must leave
	// it as it was.
	precious := bytes.Repeat([]byte("precious"), 3*mib/8)
	symlinkOutside := func(name string) func(t *testing.T, f *fill, outside string) {
		return func(t *testing.T, f *fill, outside string) {
			path := filepath.Join(f.Dir(), name)
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			mustFill(t, os.Symlink(outside, path))
		}
	}
	for _, tc := range []struct {
		name      string
		start     int64 // total before setup
		setup     func(t *testing.T, f *fill, outside string)
		op        func(f *fill) error
		wantErr   string
		wantSizes map[string]int64 // regular fill files afterwards
	}{
		{
			name:      "refuses to grow through a fill name that is a symlink to a file outside",
			setup:     symlinkOutside("fill-000001"),
			op:        func(f *fill) error { return f.Resize(3 * mib) },
			wantErr:   `holds "fill-000001", which is not a fill file of ours (it is a symlink)`,
			wantSizes: map[string]int64{},
		},
		{
			name:      "refuses to grow through a fill file replaced by a symlink",
			start:     3 * mib,
			setup:     symlinkOutside("fill-000002"),
			op:        func(f *fill) error { return f.Resize(5 * mib) },
			wantErr:   `holds "fill-000002", which is not a fill file of ours (it is a symlink)`,
			wantSizes: map[string]int64{"fill-000001": 2 * mib},
		},
		{
			name:      "shrinks its own files, never through a fill file replaced by a symlink",
			start:     5 * mib,
			setup:     symlinkOutside("fill-000002"),
			op:        func(f *fill) error { return f.Resize(mib) },
			wantErr:   `holds "fill-000002", which is not a fill file of ours (it is a symlink)`,
			wantSizes: map[string]int64{"fill-000001": mib},
		},
		{
			name:  "counts its own files, not a fill file replaced by a symlink",
			start: 3 * mib,
			setup: symlinkOutside("fill-000002"),
			op: func(f *fill) error {
				files, n, err := f.Usage()
				if err == nil && (files != 1 || roundFill(n) != 2*mib) {
					err = fmt.Errorf("counted %d files, %d bytes", files, n)
				}
				return err
			},
			wantSizes: map[string]int64{"fill-000001": 2 * mib},
		},
		{
			name: "refuses to grow through a fill name that is a hard link to a file outside",
			setup: func(t *testing.T, f *fill, outside string) {
				mustFill(t, os.Link(outside, filepath.Join(f.Dir(), "fill-000001")))
			},
			op:        func(f *fill) error { return f.Resize(5 * mib) },
			wantErr:   `holds "fill-000001", which is not a fill file of ours (it has 2 links, not one)`,
			wantSizes: map[string]int64{"fill-000001": 3 * mib}, // the link, untouched
		},
		{
			name: "refuses a fill name that is a directory",
			setup: func(t *testing.T, f *fill, outside string) {
				mustFill(t, os.Mkdir(filepath.Join(f.Dir(), "fill-000001"), 0o700))
			},
			op:        func(f *fill) error { return f.Resize(mib) },
			wantErr:   `holds "fill-000001", which is not a fill file of ours (it is not a regular file)`,
			wantSizes: map[string]int64{},
		},
		{
			name: "refuses a fill name that is a FIFO without blocking on it",
			setup: func(t *testing.T, f *fill, outside string) {
				mustFill(t, unix.Mkfifo(filepath.Join(f.Dir(), "fill-000001"), 0o600))
			},
			op:        func(f *fill) error { return f.Resize(mib) },
			wantErr:   `holds "fill-000001", which is not a fill file of ours (it is not a regular file)`,
			wantSizes: map[string]int64{},
		},
		{
			name:  "refuses a fill dir swapped for a symlink after it was opened",
			start: mib,
			setup: func(t *testing.T, f *fill, outside string) {
				moved := filepath.Join(filepath.Dir(f.Dir()), "moved")
				mustFill(t, os.Rename(f.Dir(), moved))
				mustFill(t, os.Symlink(moved, f.Dir()))
			},
			op:        func(f *fill) error { return f.Resize(3 * mib) },
			wantErr:   "is a symlink",
			wantSizes: map[string]int64{"fill-000001": mib},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			mustFill(t, os.WriteFile(outside, precious, 0o600))
			f := openTestFill(t, filepath.Join(parent, "fill"))
			mustFill(t, f.Resize(tc.start))
			tc.setup(t, f, outside)

			err := tc.op(f)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("got error %v, want one saying %q", err, tc.wantErr)
			}
			got, rerr := os.ReadFile(outside)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !bytes.Equal(got, precious) {
				t.Errorf("the file outside changed: %d bytes, was %d", len(got), len(precious))
			}
			// Through a swapped dir's symlink, this reads the moved dir.
			if diff := cmp.Diff(tc.wantSizes, fillSizes(t, f.Dir())); diff != "" {
				t.Errorf("fill files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFillWithoutFallocate(t *testing.T) {
	const mib = fillMiB
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
	}{
		{name: "writes the data where fallocate is not supported", errno: unix.EOPNOTSUPP},
		{name: "writes the data where fallocate is not implemented", errno: unix.ENOSYS},
	} {
		for _, fsys := range fillFilesystems {
			t.Run(fsys.name+"/"+tc.name, func(t *testing.T) {
				dir := filepath.Join(fsys.parent(t), "fill")
				f := openTestFill(t, dir)
				f.fallocate = func(int, int64, int64) error { return tc.errno }
				for _, step := range []struct {
					total int64
					want  map[string]int64
				}{
					{total: 3 * mib, want: map[string]int64{"fill-000001": 2 * mib, "fill-000002": mib}},
					{total: 5 * mib, want: map[string]int64{"fill-000001": 2 * mib, "fill-000002": 2 * mib, "fill-000003": mib}},
					{total: mib / 2, want: map[string]int64{"fill-000001": mib / 2}},
				} {
					if err := f.Resize(step.total); err != nil {
						t.Fatalf("Resize(%d): %v", step.total, err)
					}
					if diff := cmp.Diff(step.want, fillSizes(t, dir)); diff != "" {
						t.Errorf("after Resize(%d), fill files (-want +got):\n%s", step.total, diff)
					}
					if diff := cmp.Diff(fillUse{Files: len(step.want), Bytes: step.total}, usageOf(t, f)); diff != "" {
						t.Errorf("after Resize(%d), Usage (-want +got):\n%s", step.total, diff)
					}
				}
				data, err := os.ReadFile(filepath.Join(dir, "fill-000001"))
				if err != nil {
					t.Fatal(err)
				}
				if zeros := bytes.Count(data, []byte{0}); zeros > len(data)/64 {
					t.Errorf("fill-000001 has %d zero bytes of %d, want random data", zeros, len(data))
				}
				if bytes.Equal(data[:4096], data[4096:8192]) {
					t.Error("fill-000001 repeats its first page")
				}
			})
		}
	}
}

func TestFillOutOfSpace(t *testing.T) {
	const mib = fillMiB
	// failAfter lets n fallocate calls through, then returns ENOSPC.
	failAfter := func(n int) func(fd int, off, length int64) error {
		return func(fd int, off, length int64) error {
			if n--; n < 0 {
				return unix.ENOSPC
			}
			return fallocateMode0(fd, off, length)
		}
	}
	for _, tc := range []struct {
		name      string
		tmpfs     bool
		fallocate func(fd int, off, length int64) error
		total     int64
		wantSizes map[string]int64 // nil: a full tmpfs, checked by usage
	}{
		{
			name:      "stops at ENOSPC and keeps what it allocated",
			fallocate: failAfter(3),
			total:     5 * mib,
			wantSizes: map[string]int64{"fill-000001": 2 * mib, "fill-000002": mib},
		},
		{
			name:      "removes a new file that got nothing before ENOSPC",
			fallocate: failAfter(2),
			total:     5 * mib,
			wantSizes: map[string]int64{"fill-000001": 2 * mib},
		},
		{
			name:      "stops at ENOSPC on a full tmpfs and keeps what it allocated",
			tmpfs:     true,
			fallocate: fallocateMode0,
			total:     48 * mib,
		},
		{
			name:      "stops writing at ENOSPC on a full tmpfs and keeps what it wrote",
			tmpfs:     true,
			fallocate: func(int, int64, int64) error { return unix.EOPNOTSUPP },
			total:     48 * mib,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir
			if tc.tmpfs {
				parent = func() string { return mountFillTmpfs(t) }
			}
			dir := filepath.Join(parent(), "fill")
			f := openTestFill(t, dir)
			f.fallocate = tc.fallocate
			err := f.Resize(tc.total)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Resize(%d) = %v, want ENOSPC", tc.total, err)
			}
			got := usageOf(t, f)
			if tc.wantSizes != nil {
				if diff := cmp.Diff(tc.wantSizes, fillSizes(t, dir)); diff != "" {
					t.Errorf("fill files (-want +got):\n%s", diff)
				}
				var want int64
				for _, n := range tc.wantSizes {
					want += n
				}
				if diff := cmp.Diff(fillUse{Files: len(tc.wantSizes), Bytes: want}, got); diff != "" {
					t.Errorf("Usage (-want +got):\n%s", diff)
				}
			} else if got.Bytes < 30*mib || got.Bytes > 32*mib {
				t.Errorf("Usage = %+v, want most of the 32 MiB tmpfs", got)
			}
			// What was kept shrinks as usual afterwards.
			if err := f.Resize(mib); err != nil {
				t.Fatalf("Resize(1 MiB) after ENOSPC: %v", err)
			}
			if diff := cmp.Diff(fillUse{Files: 1, Bytes: mib}, usageOf(t, f)); diff != "" {
				t.Errorf("Usage after shrinking (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFillRemove(t *testing.T) {
	const mib = fillMiB
	for _, tc := range []struct {
		name      string
		setup     func(t *testing.T, f *fill)
		wantFiles int
		wantBytes int64
		wantErr   string
		wantDir   bool     // the dir is still there
		wantLeft  []string // names left in the dir
	}{
		{
			name:      "removes every fill file and the dir they leave empty",
			setup:     func(t *testing.T, f *fill) { mustFill(t, f.Resize(5*mib)) },
			wantFiles: 3, wantBytes: 5 * mib,
		},
		{
			name: "keeps the dir, its marker and the foreign files in it, and says so",
			setup: func(t *testing.T, f *fill) {
				mustFill(t, f.Resize(5*mib))
				writeTestFile(t, filepath.Join(f.Dir(), "fill-000004.tmp"), mib, false)
			},
			wantFiles: 3, wantBytes: 5 * mib,
			wantErr: `holds "fill-000004.tmp", which is not a fill file of ours; left it and the dir in place`,
			wantDir: true, wantLeft: []string{fillMarker, "fill-000004.tmp"},
		},
		{
			name: "counts a sparse fill file as freeing nothing",
			setup: func(t *testing.T, f *fill) {
				writeTestFile(t, filepath.Join(f.Dir(), "fill-000001"), 1<<30, true)
			},
			wantFiles: 1,
		},
		{
			name: "finds nothing the second time",
			setup: func(t *testing.T, f *fill) {
				mustFill(t, f.Resize(5*mib))
				if _, _, err := f.Remove(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "leaves a fill name that is a symlink, says so, and removes the rest",
			setup: func(t *testing.T, f *fill) {
				mustFill(t, f.Resize(3*mib))
				outside := filepath.Join(filepath.Dir(f.Dir()), "outside")
				writeTestFile(t, outside, mib, false)
				mustFill(t, os.Symlink(outside, filepath.Join(f.Dir(), "fill-000009")))
			},
			wantFiles: 2, wantBytes: 3 * mib,
			wantErr: `holds "fill-000009", which is not a fill file of ours (it is a symlink)`,
			wantDir: true, wantLeft: []string{fillMarker, "fill-000009"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fill")
			f := openTestFill(t, dir)
			tc.setup(t, f)
			files, n, err := f.Remove()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Remove error = %v, want %q", err, tc.wantErr)
			}
			if diff := cmp.Diff(fillUse{Files: tc.wantFiles, Bytes: tc.wantBytes}, fillUse{Files: files, Bytes: roundFill(n)}); diff != "" {
				t.Errorf("Remove freed (-want +got):\n%s", diff)
			}
			var left []string
			entries, err := os.ReadDir(dir)
			if gotDir := err == nil; gotDir != tc.wantDir {
				t.Errorf("dir there after Remove = %v (%v), want %v", gotDir, err, tc.wantDir)
			}
			for _, e := range entries {
				left = append(left, e.Name())
			}
			if diff := cmp.Diff(tc.wantLeft, left); diff != "" {
				t.Errorf("left in the dir (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a later Resize makes the removed dir again with mode 0700 and its marker", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "fill")
		f := openTestFill(t, dir)
		mustFill(t, f.Resize(3*mib))
		if _, _, err := f.Remove(); err != nil {
			t.Fatal(err)
		}
		mustFill(t, f.Resize(0))
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Resize(0) made the dir again: %v", err)
		}
		mustFill(t, f.Resize(mib))
		fi, err := os.Lstat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != fs.ModeDir|0o700 {
			t.Errorf("dir mode = %v, want drwx------", fi.Mode())
		}
		if marker, err := os.ReadFile(filepath.Join(dir, fillMarker)); err != nil || string(marker) != testFillOwner+"\n" {
			t.Errorf("marker = %q, %v; want the owner", marker, err)
		}
		if diff := cmp.Diff(fillUse{Files: 1, Bytes: mib}, usageOf(t, f)); diff != "" {
			t.Errorf("Usage (-want +got):\n%s", diff)
		}
	})
}

func TestFillNegativeTotal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total int64
	}{
		{name: "refuses minus one byte and allocates nothing", total: -1},
		{name: "refuses the most negative total and allocates nothing", total: math.MinInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fill")
			f := openTestFill(t, dir)
			mustFill(t, f.Resize(3*fillMiB))
			before := fillSizes(t, dir)
			if err := f.Resize(tc.total); err == nil {
				t.Errorf("Resize(%d) succeeded, want an error", tc.total)
			}
			if diff := cmp.Diff(before, fillSizes(t, dir)); diff != "" {
				t.Errorf("fill files changed (-before +after):\n%s", diff)
			}
		})
	}
}
