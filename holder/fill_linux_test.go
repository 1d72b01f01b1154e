package holder

import (
	"bytes"
	"errors"
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

// fillResizeCase is one case of TestFillResize.
type fillResizeCase struct {
	name      string
	totals    []int64
	wantSizes map[string]int64
}

// fillResizeCases are the cases of TestFillResize.
var fillResizeCases = []fillResizeCase{
	{
		name:      "grows from nothing to 5 MiB in three files",
		totals:    []int64{5 * fillMiB},
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": 2 * fillMiB, "fill-000003": fillMiB},
	},
	{
		name:      "fills a whole number of files without an empty one after them",
		totals:    []int64{4 * fillMiB},
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": 2 * fillMiB},
	},
	{
		name:      "shrinks by removing the highest files and truncating the last one kept",
		totals:    []int64{5 * fillMiB, 3 * fillMiB},
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": fillMiB},
	},
	{
		name:      "shrinks inside the first file",
		totals:    []int64{5 * fillMiB, fillMiB / 2},
		wantSizes: map[string]int64{"fill-000001": fillMiB / 2},
	},
	{
		name:      "grows again by extending the partial file before adding files",
		totals:    []int64{5 * fillMiB, 3 * fillMiB, 7 * fillMiB},
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": 2 * fillMiB, "fill-000003": 2 * fillMiB, "fill-000004": fillMiB},
	},
	{
		name:      "keeps an unchanged total as it is",
		totals:    []int64{3 * fillMiB, 3 * fillMiB},
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": fillMiB},
	},
	{
		name:      "shrinks to zero by removing every file",
		totals:    []int64{5 * fillMiB, 0},
		wantSizes: map[string]int64{},
	},
	{
		name:      "holds a total that is not a whole number of blocks",
		totals:    []int64{fillMiB + 100},
		wantSizes: map[string]int64{"fill-000001": fillMiB + 100},
	},
}

func TestFillResize(t *testing.T) {
	for _, tc := range fillResizeCases {
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

// fillRemoveCase is one case of TestFillRemove.
type fillRemoveCase struct {
	name      string
	setup     func(t *testing.T, f *fill)
	wantFiles int
	wantBytes int64
	wantErr   string
	wantDir   bool     // the dir is still there
	wantLeft  []string // names left in the dir
}

// fillRemoveCases are the cases of TestFillRemove.
var fillRemoveCases = []fillRemoveCase{
	{
		name:      "removes every fill file and the dir they leave empty",
		setup:     func(t *testing.T, f *fill) { mustFill(t, f.Resize(5*fillMiB)) },
		wantFiles: 3, wantBytes: 5 * fillMiB,
	},
	{
		name: "keeps the dir, its marker and the foreign files in it, and says so",
		setup: func(t *testing.T, f *fill) {
			mustFill(t, f.Resize(5*fillMiB))
			writeTestFile(t, filepath.Join(f.Dir(), "fill-000004.tmp"), fillMiB, false)
		},
		wantFiles: 3, wantBytes: 5 * fillMiB,
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
			mustFill(t, f.Resize(5*fillMiB))
			if _, _, err := f.Remove(); err != nil {
				t.Fatal(err)
			}
		},
	},
	{
		name: "leaves a fill name that is a symlink, says so, and removes the rest",
		setup: func(t *testing.T, f *fill) {
			mustFill(t, f.Resize(3*fillMiB))
			outside := filepath.Join(filepath.Dir(f.Dir()), "outside")
			writeTestFile(t, outside, fillMiB, false)
			mustFill(t, os.Symlink(outside, filepath.Join(f.Dir(), "fill-000009")))
		},
		wantFiles: 2, wantBytes: 3 * fillMiB,
		wantErr: `holds "fill-000009", which is not a fill file of ours (it is a symlink)`,
		wantDir: true, wantLeft: []string{fillMarker, "fill-000009"},
	},
}

func TestFillRemove(t *testing.T) {
	const mib = fillMiB
	for _, tc := range fillRemoveCases {
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
