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
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// strangerUID is the uid of another user, who needs no account: the tests
// chown to it.
const strangerUID = 54321

// An existing fill dir that cro-exporter did not make, such as a 1777 dir
// holding a user's file named like a fill file, is refused at start: by
// CheckFillDir for the CLI and by Open itself. The user's file is never
// written, grown or removed, the dir keeps its mode, and --recover leaves
// it alone too.
func TestAFillDirCroExporterDidNotMakeIsNeverAdopted(t *testing.T) {
	skipShort(t, "chowns to another user, as root")
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	userText := []byte("the user's own text, which must stay as it is\n")
	for _, tc := range []struct {
		name    string
		mode    uint32 // of the dir, set with chmod past the umask
		fileUID int    // of the user's fill-000001
		marker  bool   // a marker naming our state dir is there too
		wantErr string
	}{
		{name: "a 1777 dir holding another user's fill-000001", mode: 0o1777, fileUID: strangerUID, wantErr: "has mode 1777, not 0700"},
		{name: "a 1777 dir holding a fill-000001 of our own uid", mode: 0o1777, fileUID: 0, wantErr: "has mode 1777, not 0700"},
		{name: "a 1777 dir with our marker and another user's fill-000001", mode: 0o1777, fileUID: strangerUID, marker: true, wantErr: "has mode 1777, not 0700"},
		{name: "a 0700 dir of ours without a marker", mode: 0o700, fileUID: strangerUID, wantErr: "has no .cro-exporter marker"},
		{name: "a 0700 dir with our marker and another user's fill-000001", mode: 0o700, fileUID: strangerUID, marker: true,
			wantErr: `holds "fill-000001", which is not a fill file of ours (it is owned by uid 54321, not by us (uid 0))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DiskPath = filepath.Dir(cfg.FillDir)
			mustFill(t, os.Mkdir(cfg.FillDir, 0o700))
			mustFill(t, unix.Chmod(cfg.FillDir, tc.mode))
			if tc.marker {
				owner, err := ownerOf(cfg.StateDir)
				mustFill(t, err)
				mustFill(t, os.WriteFile(filepath.Join(cfg.FillDir, fillMarker), []byte(owner+"\n"), 0o600))
			}
			userFile := filepath.Join(cfg.FillDir, "fill-000001")
			mustFill(t, os.WriteFile(userFile, userText, 0o644))
			mustFill(t, os.Chown(userFile, tc.fileUID, tc.fileUID))
			before, beforeDir, beforeNames := snapshotOf(t, userFile), lstatModes(t, cfg.FillDir), entriesOf(t, cfg.FillDir)

			err := CheckFillDir(cfg.FillDir, cfg.DiskPath, cfg.StateDir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), cfg.FillDir) {
				t.Errorf("CheckFillDir = %v, want an error naming the dir and saying %q", err, tc.wantErr)
			}
			m, err := Open(cfg)
			if err == nil {
				// As a daemon would, whatever became of the user's file.
				m.Apply(Load{Disk: 3 * mib})
				time.Sleep(200 * time.Millisecond)
				m.Close()
				t.Errorf("Open adopted the fill dir")
			} else if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open = %v, want an error saying %q", err, tc.wantErr)
			}
			rep, err := Recover(cfg)
			mustFill(t, err)
			if rep.FillFiles != 0 {
				t.Errorf("Recover removed %d fill files from a dir cro-exporter did not make", rep.FillFiles)
			}

			if _, err := os.Lstat(userFile); err != nil {
				t.Fatalf("the user's file is gone: %v", err)
			}
			if diff := cmp.Diff(before, snapshotOf(t, userFile)); diff != "" {
				t.Errorf("the user's file changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeDir, lstatModes(t, cfg.FillDir)); diff != "" {
				t.Errorf("the dir changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeNames, entriesOf(t, cfg.FillDir)); diff != "" {
				t.Errorf("entries of the dir (-before +after):\n%s", diff)
			}
		})
	}
}

// A fill dir on another filesystem than --disk.path would fill a disk the
// daemon never measures: refused at start, and nothing is made there.
func TestAFillDirOnAnotherFilesystemIsRefused(t *testing.T) {
	tmpfs := mountFillTmpfs(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, cfg *Config)
	}{
		{name: "a missing dir whose parent is another filesystem", setup: func(t *testing.T, cfg *Config) {
			cfg.FillDir = filepath.Join(tmpfs, ".cro-fill")
		}},
		{name: "a dir of ours on another filesystem", setup: func(t *testing.T, cfg *Config) {
			cfg.FillDir = filepath.Join(tmpfs, ".cro-fill")
			owner, err := ownerOf(cfg.StateDir)
			mustFill(t, err)
			makeTestFillDir(t, cfg.FillDir, owner)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DiskPath = t.TempDir()
			tc.setup(t, &cfg)
			before := lstatModes(t, tmpfs)
			const want = "is on another filesystem than --disk.path"
			if err := CheckFillDir(cfg.FillDir, cfg.DiskPath, cfg.StateDir); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CheckFillDir = %v, want an error saying %q", err, want)
			}
			m, err := Open(cfg)
			if err == nil {
				m.Close()
				t.Errorf("Open took a fill dir on another filesystem")
			} else if !strings.Contains(err.Error(), want) {
				t.Errorf("Open = %v, want an error saying %q", err, want)
			}
			if diff := cmp.Diff(before, lstatModes(t, tmpfs)); diff != "" {
				t.Errorf("the other filesystem changed (-before +after):\n%s", diff)
			}
			var st unix.Statfs_t
			mustFill(t, unix.Statfs(tmpfs, &st))
			if used := (st.Blocks - st.Bfree) * uint64(st.Bsize); used > 64<<10 {
				t.Errorf("%d bytes used on the other filesystem", used)
			}
		})
	}
	t.Run("a fill dir on the filesystem of --disk.path passes", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.DiskPath = filepath.Dir(cfg.FillDir)
		mustFill(t, CheckFillDir(cfg.FillDir, cfg.DiskPath, cfg.StateDir))
		openTest(t, cfg)
	})
}

// Two cro-exporters with different state dirs never share a fill dir: the
// second is refused at start, and the first's fill stays as it is.
func TestASecondStateDirIsRefusedTheFirstsFillDir(t *testing.T) {
	first := testConfig(t)
	m := openTest(t, first)
	mustFill(t, m.Apply(Load{Disk: 3 * mib}))
	want := waitFillBytes(t, first.FillDir, 3*mib)

	second := testConfig(t)
	second.FillDir = first.FillDir
	owner, err := ownerOf(first.StateDir)
	mustFill(t, err)
	wantErr := "fill dir " + first.FillDir + ` belongs to the cro-exporter with state dir "` + owner + `"; give this one its own --disk.fill-dir`
	if err := CheckFillDir(second.FillDir, "", second.StateDir); err == nil || err.Error() != wantErr {
		t.Errorf("CheckFillDir = %v, want %q", err, wantErr)
	}
	if m2, err := Open(second); err == nil {
		m2.Close()
		t.Errorf("a second state dir opened the first's fill dir")
	} else if err.Error() != wantErr {
		t.Errorf("Open = %v, want %q", err, wantErr)
	}
	if diff := cmp.Diff(want, fillSizes(t, first.FillDir)); diff != "" {
		t.Errorf("the first's fill files (-before +after):\n%s", diff)
	}
	if u, err := m.Held(); err != nil || u.Holders.At(host.Disk) != len(want) {
		t.Errorf("the first's Usage = %+v, %v; want its %d files", u, err, len(want))
	}
}

// waitFillBytes waits until the fill files in dir hold total bytes (the
// manager resizes them in the background) and returns their sizes.
func waitFillBytes(t *testing.T, dir string, total int64) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sizes := fillSizes(t, dir)
		var sum int64
		for _, n := range sizes {
			sum += n
		}
		if sum == total {
			return sizes
		}
		if time.Now().After(deadline) {
			t.Fatalf("fill files %v, want %d bytes", sizes, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The fill dir is locked for as long as a fill holds it: even a second fill
// of the same owner is refused it, until the first lets go.
func TestAFillDirIsLockedWhileHeld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fill")
	first := openTestFill(t, dir)
	mustFill(t, first.Resize(fillMiB))
	const want = "is in use by another cro-exporter"
	if _, err := openFill(dir, "", testFillOwner); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a second openFill = %v, want an error saying %q", err, want)
	}
	if err := CheckFillDir(dir, "", testFillOwner); err != nil {
		t.Errorf("CheckFillDir of a dir of ours in use: %v", err)
	}
	mustFill(t, first.Close())
	second := openTestFill(t, dir)
	if diff := cmp.Diff(fillUse{Files: 1, Bytes: fillMiB}, usageOf(t, second)); diff != "" {
		t.Errorf("the second's Usage (-want +got):\n%s", diff)
	}
}

// A foreign entry that appears in the fill dir while the daemon runs stops
// the fill from growing, with an error whose text stays the same, quotes
// the name short and escaped, and leaves the entry as it is; the fill's own
// files are still counted, shrunk and removed.
func TestAForeignEntryAtRunTimeStopsGrowthWithOneSteadyError(t *testing.T) {
	const mib = fillMiB
	dir := filepath.Join(t.TempDir(), "fill")
	f := openTestFill(t, dir)
	mustFill(t, f.Resize(3*mib))

	// A name of 205 bytes with a terminal escape and a newline in it.
	name := strings.Repeat("n", 200) + "\x1b[2J\n"
	content := []byte("not ours")
	mustFill(t, os.WriteFile(filepath.Join(dir, name), content, 0o600))

	var texts []string
	for _, total := range []int64{5 * mib, 5 * mib, 7 * mib, 3 * mib} {
		err := f.Resize(total)
		if err == nil {
			t.Fatalf("Resize(%d) with a foreign entry there passed", total)
		}
		texts = append(texts, err.Error())
	}
	for _, text := range texts[1:] {
		if text != texts[0] {
			t.Errorf("the error changed: %q, then %q", texts[0], text)
		}
	}
	text := texts[0]
	t.Logf("error: %s", text)
	if strings.ContainsAny(text, "\x1b\n") || strings.Contains(text, strings.Repeat("n", 101)) || len(text) > len(dir)+250 {
		t.Errorf("the error quotes the name unbounded or unescaped: %q", text)
	}
	if !strings.Contains(text, "fill dir "+dir+` holds "nnnn`) || !strings.Contains(text, "the fill does not grow while it is there") {
		t.Errorf("the error does not say what is there and what it does: %q", text)
	}
	if diff := cmp.Diff(fillUse{Files: 2, Bytes: 3 * mib}, usageOf(t, f)); diff != "" {
		t.Errorf("Usage with a foreign entry there (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"fill-000001": 2 * mib, "fill-000002": mib}, fillSizes(t, dir)); diff != "" {
		t.Errorf("fill files after refused growth (-want +got):\n%s", diff)
	}

	// Shrinking still works, and says the same.
	if err := f.Resize(mib); err == nil || err.Error() != text {
		t.Errorf("Resize(1 MiB) = %v, want %q", err, text)
	}
	if diff := cmp.Diff(fillUse{Files: 1, Bytes: mib}, usageOf(t, f)); diff != "" {
		t.Errorf("Usage after shrinking (-want +got):\n%s", diff)
	}
	if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, content) {
		t.Errorf("the foreign entry: %q, %v; want it as it was", got, err)
	}

	// Once it is gone, the fill grows again.
	mustFill(t, os.Remove(filepath.Join(dir, name)))
	mustFill(t, f.Resize(5*mib))
	if diff := cmp.Diff(fillUse{Files: 3, Bytes: 5 * mib}, usageOf(t, f)); diff != "" {
		t.Errorf("Usage after the foreign entry went (-want +got):\n%s", diff)
	}
}

// At shutdown, the fill files, the marker and the dir all go, and nothing
// else ever does.
func TestCloseRemovesTheFillDirItMade(t *testing.T) {
	cfg := testConfig(t)
	m := openTest(t, cfg)
	if names := entriesOf(t, cfg.FillDir); !cmp.Equal(names, []string{fillMarker}) {
		t.Errorf("a new fill dir holds %v, want only its marker", names)
	}
	mustFill(t, m.Apply(Load{Disk: 3 * mib}))
	waitFillBytes(t, cfg.FillDir, 3*mib)
	mustFill(t, m.Close())
	if _, err := os.Lstat(cfg.FillDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the fill dir after Close: %v, want it gone", err)
	}
}

// A fill whose filesystem leaves --disk.path (unmounted, lazily too, or the
// path deleted and linked to another filesystem) removes its files through
// the dir it holds, never makes a fill dir where the path leads now, and
// fills again once the filesystem is back there.
func TestAFillWhoseFilesystemLeftTheDiskPathIsReleasedAndNeverMadeElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name string
		// disk is a --disk.path on tmpfs, and where the fill dir is
		// seen on the tmpfs whatever becomes of disk.
		disk func(t *testing.T, tmpfs string) (disk, seen string)
		// away takes the tmpfs away from disk; it returns where disk
		// leads now, on the temp dir's filesystem.
		away func(t *testing.T, disk string) string
	}{
		{
			name: "unmounted lazily",
			disk: func(t *testing.T, tmpfs string) (string, string) {
				disk := t.TempDir()
				mustFill(t, unix.Mount(tmpfs, disk, "", unix.MS_BIND, ""))
				t.Cleanup(func() { unix.Unmount(disk, unix.MNT_DETACH) })
				return disk, filepath.Join(tmpfs, ".cro-fill")
			},
			away: func(t *testing.T, disk string) string {
				mustFill(t, unix.Unmount(disk, unix.MNT_DETACH))
				return disk
			},
		},
		{
			name: "deleted, then linked elsewhere",
			disk: func(t *testing.T, tmpfs string) (string, string) {
				disk := filepath.Join(tmpfs, "disk")
				mustFill(t, os.Mkdir(disk, 0o755))
				return disk, filepath.Join(disk, ".cro-fill")
			},
			away: func(t *testing.T, disk string) string {
				mustFill(t, os.RemoveAll(disk))
				elsewhere := t.TempDir()
				mustFill(t, os.Symlink(elsewhere, disk))
				return elsewhere
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, seen := tc.disk(t, mountFillTmpfs(t))
			f, err := openFill(filepath.Join(disk, ".cro-fill"), disk, testFillOwner)
			mustFill(t, err)
			t.Cleanup(func() { f.Close() })
			f.maxFile = 2 * fillMiB
			mustFill(t, f.Resize(6*fillMiB))
			if files := waitFillBytes(t, seen, 6*fillMiB); len(files) != 3 {
				t.Fatalf("fill files %v, want 3", files)
			}

			now := tc.away(t, disk)
			if n, bytes, err := f.Usage(); n != 0 || bytes != 0 || err != nil {
				t.Errorf("Usage() = %d, %d, %v; want nothing held, no error", n, bytes, err)
			}
			if files := fillSizes(t, seen); len(files) > 0 {
				t.Errorf("fill files %v left on the filesystem gone from --disk.path", files)
			}
			if err := f.Resize(6 * fillMiB); !errors.Is(err, errGone) || !strings.Contains(err.Error(), "is no longer on the filesystem it was on at start") {
				t.Errorf("Resize(6 MiB) = %v, want an error saying the filesystem is gone", err)
			}
			mustFill(t, f.Resize(0))
			if n, _, err := f.Remove(); n != 0 || err != nil {
				t.Errorf("Remove() = %d files, %v; want none, no error", n, err)
			}
			if entries := entriesOf(t, now); len(entries) > 0 {
				t.Errorf("%s, on another filesystem, holds %v", now, entries)
			}
		})
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

// plantAt is a setup that has plant make something at name in the fill
// dir, given the path of the file outside.
func plantAt(name string, plant func(path, outside string) error) func(t *testing.T, f *fill, outside string) {
	return func(t *testing.T, f *fill, outside string) {
		mustFill(t, plant(filepath.Join(f.Dir(), name), outside))
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
		name:      "refuses to grow through a fill name that is a hard link to a file outside",
		setup:     plantAt("fill-000001", func(path, outside string) error { return os.Link(outside, path) }),
		op:        func(f *fill) error { return f.Resize(5 * fillMiB) },
		wantErr:   `holds "fill-000001", which is not a fill file of ours (it has 2 links, not one)`,
		wantSizes: map[string]int64{"fill-000001": 3 * fillMiB}, // the link, untouched
	},
	{
		name:      "refuses a fill name that is a directory",
		setup:     plantAt("fill-000001", func(path, _ string) error { return os.Mkdir(path, 0o700) }),
		op:        func(f *fill) error { return f.Resize(fillMiB) },
		wantErr:   `holds "fill-000001", which is not a fill file of ours (it is not a regular file)`,
		wantSizes: map[string]int64{},
	},
	{
		name:      "refuses a fill name that is a FIFO without blocking on it",
		setup:     plantAt("fill-000001", func(path, _ string) error { return unix.Mkfifo(path, 0o600) }),
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
