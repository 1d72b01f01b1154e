package holder

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

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

// symlinkOutside is a setup that puts a symlink to the file outside at
// name in the fill dir, in place of what is there.
func symlinkOutside(name string) func(t *testing.T, f *fill, outside string) {
	return func(t *testing.T, f *fill, outside string) {
		path := filepath.Join(f.Dir(), name)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		mustFill(t, os.Symlink(outside, path))
	}
}

// notAFillFileCase is one case of TestFillRefusesWhatIsNotAFillFile.
type notAFillFileCase struct {
	name      string
	start     int64 // total before setup
	setup     func(t *testing.T, f *fill, outside string)
	op        func(f *fill) error
	wantErr   string
	wantSizes map[string]int64 // regular fill files afterwards
}

// notAFillFileCases are the cases of TestFillRefusesWhatIsNotAFillFile.
var notAFillFileCases = []notAFillFileCase{
	{
		name:      "refuses to grow through a fill name that is a symlink to a file outside",
		setup:     symlinkOutside("fill-000001"),
		op:        func(f *fill) error { return f.Resize(3 * fillMiB) },
		wantErr:   `holds "fill-000001", which is not a fill file of ours (it is a symlink)`,
		wantSizes: map[string]int64{},
	},
	{
		name:      "refuses to grow through a fill file replaced by a symlink",
		start:     3 * fillMiB,
		setup:     symlinkOutside("fill-000002"),
		op:        func(f *fill) error { return f.Resize(5 * fillMiB) },
		wantErr:   `holds "fill-000002", which is not a fill file of ours (it is a symlink)`,
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB},
	},
	{
		name:      "shrinks its own files, never through a fill file replaced by a symlink",
		start:     5 * fillMiB,
		setup:     symlinkOutside("fill-000002"),
		op:        func(f *fill) error { return f.Resize(fillMiB) },
		wantErr:   `holds "fill-000002", which is not a fill file of ours (it is a symlink)`,
		wantSizes: map[string]int64{"fill-000001": fillMiB},
	},
	{
		name:  "counts its own files, not a fill file replaced by a symlink",
		start: 3 * fillMiB,
		setup: symlinkOutside("fill-000002"),
		op: func(f *fill) error {
			files, n, err := f.Usage()
			if err == nil && (files != 1 || roundFill(n) != 2*fillMiB) {
				err = fmt.Errorf("counted %d files, %d bytes", files, n)
			}
			return err
		},
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB},
	},
	{
		name: "refuses to grow through a fill name that is a hard link to a file outside",
		setup: func(t *testing.T, f *fill, outside string) {
			mustFill(t, os.Link(outside, filepath.Join(f.Dir(), "fill-000001")))
		},
		op:        func(f *fill) error { return f.Resize(5 * fillMiB) },
		wantErr:   `holds "fill-000001", which is not a fill file of ours (it has 2 links, not one)`,
		wantSizes: map[string]int64{"fill-000001": 3 * fillMiB}, // the link, untouched
	},
	{
		name: "refuses a fill name that is a directory",
		setup: func(t *testing.T, f *fill, outside string) {
			mustFill(t, os.Mkdir(filepath.Join(f.Dir(), "fill-000001"), 0o700))
		},
		op:        func(f *fill) error { return f.Resize(fillMiB) },
		wantErr:   `holds "fill-000001", which is not a fill file of ours (it is not a regular file)`,
		wantSizes: map[string]int64{},
	},
	{
		name: "refuses a fill name that is a FIFO without blocking on it",
		setup: func(t *testing.T, f *fill, outside string) {
			mustFill(t, unix.Mkfifo(filepath.Join(f.Dir(), "fill-000001"), 0o600))
		},
		op:        func(f *fill) error { return f.Resize(fillMiB) },
		wantErr:   `holds "fill-000001", which is not a fill file of ours (it is not a regular file)`,
		wantSizes: map[string]int64{},
	},
	{
		name:  "refuses a fill dir swapped for a symlink after it was opened",
		start: fillMiB,
		setup: func(t *testing.T, f *fill, outside string) {
			moved := filepath.Join(filepath.Dir(f.Dir()), "moved")
			mustFill(t, os.Rename(f.Dir(), moved))
			mustFill(t, os.Symlink(moved, f.Dir()))
		},
		op:        func(f *fill) error { return f.Resize(3 * fillMiB) },
		wantErr:   "is a symlink",
		wantSizes: map[string]int64{"fill-000001": fillMiB},
	},
}

func TestFillRefusesWhatIsNotAFillFile(t *testing.T) {
	const mib = fillMiB
	// Every case has a precious file outside the fill dir, and must leave
	// it as it was.
	precious := bytes.Repeat([]byte("precious"), 3*mib/8)
	for _, tc := range notAFillFileCases {
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
