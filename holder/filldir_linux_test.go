package holder

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// openFillCase is one case of TestOpenFill.
type openFillCase struct {
	name     string
	rootOnly bool
	// at is the dir to open, below a fresh parent: "fill" when "".
	at string
	// setup, when not nil, makes what is at parent/fill.
	setup    func(t *testing.T, parent, dir string)
	wantErr  string
	wantMode fs.FileMode
}

// ourFillDir makes an empty fill dir of ours at dir, as openFill does.
func ourFillDir(t *testing.T, _, dir string) { makeTestFillDir(t, dir, testFillOwner) }

// bareFillDir makes an empty dir at dir with mode 0700 and no marker.
func bareFillDir(t *testing.T, _, dir string) { mustFill(t, os.Mkdir(dir, 0o700)) }

// symlinkedFillDir makes dir a symlink to a dir elsewhere, with mode 0755.
func symlinkedFillDir(t *testing.T, parent, dir string) {
	target := filepath.Join(parent, "elsewhere")
	mustFill(t, os.Mkdir(target, 0o700))
	mustFill(t, os.Chmod(target, 0o755))
	mustFill(t, os.Symlink(target, dir))
}

// openFillCases are the cases of TestOpenFill.
var openFillCases = []openFillCase{
	{name: "creates a missing dir with mode 0700", wantMode: fs.ModeDir | 0o700},
	{
		name: "refuses our own dir with a wider mode and leaves its mode",
		setup: func(t *testing.T, parent, dir string) {
			ourFillDir(t, parent, dir)
			mustFill(t, os.Chmod(dir, 0o755))
		},
		wantErr: "has mode 0755, not 0700",
	},
	{
		name: "opens our own dir with files in it",
		setup: func(t *testing.T, parent, dir string) {
			ourFillDir(t, parent, dir)
			writeTestFile(t, filepath.Join(dir, "fill-000001"), fillMiB, false)
		},
		wantMode: fs.ModeDir | 0o700,
	},
	{
		name: "refuses a dir without a marker, even with only fill files in it",
		setup: func(t *testing.T, parent, dir string) {
			bareFillDir(t, parent, dir)
			writeTestFile(t, filepath.Join(dir, "fill-000001"), fillMiB, false)
		},
		wantErr: "has no .cro-exporter marker",
	},
	{
		name:     "adopts and marks an empty dir of ours without a marker, as a systemd unit makes it",
		setup:    bareFillDir,
		wantMode: fs.ModeDir | 0o700,
	},
	{
		name: "refuses an empty dir without a marker with a wider mode",
		setup: func(t *testing.T, parent, dir string) {
			bareFillDir(t, parent, dir)
			mustFill(t, os.Chmod(dir, os.ModeSticky|0o777))
		},
		wantErr: "has mode 1777, not 0700",
	},
	{
		name:    "refuses a dir whose marker names another state dir",
		setup:   func(t *testing.T, _, dir string) { makeTestFillDir(t, dir, "/srv/other-state") },
		wantErr: `belongs to the cro-exporter with state dir "/srv/other-state"; give this one its own --disk.fill-dir`,
	},
	{
		name: "refuses a dir whose marker is a symlink to a file naming us",
		setup: func(t *testing.T, parent, dir string) {
			named := filepath.Join(parent, "named")
			mustFill(t, os.WriteFile(named, []byte(testFillOwner+"\n"), 0o600))
			bareFillDir(t, parent, dir)
			mustFill(t, os.Symlink(named, filepath.Join(dir, fillMarker)))
		},
		wantErr: "marker that is a symlink",
	},
	{
		name: "refuses a dir of ours holding a file that is not a fill file",
		setup: func(t *testing.T, parent, dir string) {
			ourFillDir(t, parent, dir)
			writeTestFile(t, filepath.Join(dir, "notes.txt"), 10, false)
		},
		wantErr: `holds "notes.txt", which is not a fill file of ours; cro-exporter adopts only a directory it made`,
	},
	{
		name:    "refuses a dir whose parent is missing rather than make the tree",
		at:      "missing/fill",
		wantErr: "no such file or directory",
	},
	{
		name:    "refuses a dir that is a symlink",
		setup:   symlinkedFillDir,
		wantErr: "is a symlink",
	},
	{
		name:    "refuses a dir that is a symlink even named with a trailing slash",
		at:      "fill/",
		setup:   symlinkedFillDir,
		wantErr: "is a symlink",
	},
	{
		name:    "refuses a dir that is a regular file",
		setup:   func(t *testing.T, _, dir string) { writeTestFile(t, dir, 10, false) },
		wantErr: "is not a directory",
	},
	{
		name:     "refuses a dir owned by another uid",
		rootOnly: true,
		setup: func(t *testing.T, _, dir string) {
			mustFill(t, os.Mkdir(dir, 0o755))
			mustFill(t, os.Chown(dir, 65534, 65534))
		},
		wantErr: "owned by uid 65534",
	},
}

func TestOpenFill(t *testing.T) {
	for _, tc := range openFillCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly {
				skipShort(t, "needs root")
			}
			if tc.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "fill")
			if tc.setup != nil {
				tc.setup(t, parent, dir)
			}
			if tc.at != "" {
				dir = parent + "/" + tc.at
			}
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

// fillAdoptionCase is one case of TestFillAdoption.
type fillAdoptionCase struct {
	name      string
	setup     func(t *testing.T, dir string)
	total     int64
	wantSizes map[string]int64
}

// fillAdoptionCases are the cases of TestFillAdoption.
var fillAdoptionCases = []fillAdoptionCase{
	{
		name: "a second openFill grows the files of the first instead of adding beside them",
		setup: func(t *testing.T, dir string) {
			first := openTestFill(t, dir)
			mustFill(t, first.Resize(3*fillMiB))
			mustFill(t, first.Close())
		},
		total:     5 * fillMiB,
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": 2 * fillMiB, "fill-000003": fillMiB},
	},
	{
		name: "a second openFill shrinks the files of the first",
		setup: func(t *testing.T, dir string) {
			first := openTestFill(t, dir)
			mustFill(t, first.Resize(5*fillMiB))
			mustFill(t, first.Close())
		},
		total:     fillMiB,
		wantSizes: map[string]int64{"fill-000001": fillMiB},
	},
	{
		name: "numbers new files after the highest adopted one",
		setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "fill-000007"), fillMiB, false)
		},
		total:     3 * fillMiB,
		wantSizes: map[string]int64{"fill-000007": 2 * fillMiB, "fill-000008": fillMiB},
	},
	{
		name: "shrinks adopted files from the highest number down",
		setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "fill-000001"), 2*fillMiB, false)
			writeTestFile(t, filepath.Join(dir, "fill-000003"), 2*fillMiB, false)
		},
		total:     3 * fillMiB,
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000003": fillMiB},
	},
	{
		name: "cuts an adopted sparse file to the limit and allocates it",
		setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "fill-000001"), 1<<30, true)
		},
		total:     3 * fillMiB,
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB, "fill-000002": fillMiB},
	},
	{
		name: "allocates the holes of an adopted file of the right size",
		setup: func(t *testing.T, dir string) {
			writeTestFile(t, filepath.Join(dir, "fill-000001"), 2*fillMiB, true)
		},
		total:     2 * fillMiB,
		wantSizes: map[string]int64{"fill-000001": 2 * fillMiB},
	},
}

func TestFillAdoption(t *testing.T) {
	for _, tc := range fillAdoptionCases {
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
