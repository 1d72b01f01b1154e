package holder

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/wintest"
)

// The Windows fill under Wine (WINDOWS.md). Tests that allocate run only on
// the small tmpfs whose Linux path CRO_FILL_TMPFS gives (make test-windows
// mounts one), never on the real disk; Wine shows it as Z:\that\path, a
// volume of its own.

// fillTmpfs returns the tmpfs for the fill as Windows names it, or skips.
func fillTmpfs(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CRO_FILL_TMPFS")
	if p == "" {
		t.Skip("CRO_FILL_TMPFS is unset: mount a small tmpfs (mount -t tmpfs -o size=64m tmpfs DIR) and give its Linux path; make test-windows does")
	}
	return `Z:` + filepath.FromSlash(p)
}

// tmpfsFill opens a fill in a new dir on the tmpfs (fillTmpfs), closed
// when the test ends, and returns it, its dir and the tmpfs.
func tmpfsFill(t *testing.T) (f *fill, dir, vol string) {
	t.Helper()
	vol = fillTmpfs(t)
	dir = filepath.Join(wintest.TempDirIn(t, vol), "fill")
	f, err := openFill(dir, vol, fillOwner)
	wintest.Must(t, err)
	t.Cleanup(func() { f.Close() })
	return f, dir, vol
}

// freeBytes is GetDiskFreeSpaceEx's total free bytes of path's volume.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		t.Fatal(err)
	}
	var total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, nil, &total, &free); err != nil {
		t.Fatalf("GetDiskFreeSpaceEx %s: %v", path, err)
	}
	return int64(free)
}

// near fails unless got is want within slack bytes.
func near(t *testing.T, what string, got, want, slack int64) {
	t.Helper()
	if got < want-slack || got > want+slack {
		t.Errorf("%s: %d bytes, want %d within %d", what, got, want, slack)
	}
}

const fillOwner = `C:\cro-exporter-state`

func TestFillWindowsResizeMovesFreeBytes(t *testing.T) {
	f, dir, vol := tmpfsFill(t)
	f.maxFile = 4 << 20
	if b, err := os.ReadFile(filepath.Join(dir, fillMarker)); err != nil || string(b) != fillOwner+"\n" {
		t.Fatalf("marker: %q, %v", b, err)
	}
	// Under Wine the tmpfs is a mount point of its own on Z:, without a
	// volume GUID: told apart from Z:\ by its mount point.
	if err := CheckFillDir(dir, `Z:\tmp`, fillOwner); err == nil || !strings.Contains(err.Error(), "is on another volume") {
		t.Errorf("CheckFillDir(%s, Z:\\tmp): %v, want another volume", dir, err)
	}
	const slack = 64 << 10 // the marker, dir entries
	start := freeBytes(t, vol)
	for _, size := range []int64{10 << 20, 3<<20 + 12345, 0, 6 << 20} {
		if err := f.Resize(size); err != nil {
			t.Fatalf("Resize(%d): %v", size, err)
		}
		moved := start - freeBytes(t, vol)
		files, bytes, err := f.Usage()
		t.Logf("Resize(%d): free bytes moved %d; Usage %d files, %d bytes", size, moved, files, bytes)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "free bytes moved", moved, size, slack)
		near(t, "Usage", bytes, size, 4096)
		if want := int((size + f.maxFile - 1) / f.maxFile); files != want {
			t.Errorf("Usage: %d files, want %d", files, want)
		}
	}
	files, bytes, err := f.Remove()
	t.Logf("Remove: %d files, %d bytes; free bytes moved %d", files, bytes, start-freeBytes(t, vol))
	if err != nil || files != 2 || bytes != 6<<20 {
		t.Errorf("Remove: %d files, %d bytes, %v; want 2, %d", files, bytes, err, 6<<20)
	}
	near(t, "free bytes after Remove", start-freeBytes(t, vol), 0, slack)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fill dir after Remove: %v, want it gone", err)
	}
}

func TestFillWindowsStopsWhenFull(t *testing.T) {
	f, _, vol := tmpfsFill(t)
	start := freeBytes(t, vol)
	err := f.Resize(start + 8<<20)
	files, bytes, uerr := f.Usage()
	t.Logf("Resize past the %d free bytes: %v; Usage %d files, %d bytes; free now %d", start, err, files, bytes, freeBytes(t, vol))
	if !errors.Is(err, windows.ERROR_DISK_FULL) {
		t.Errorf("Resize: %v, want ERROR_DISK_FULL", err)
	}
	if uerr != nil || bytes < start-(2<<20) {
		t.Errorf("Usage: %d bytes, %v; want about the %d free bytes kept", bytes, uerr, start)
	}
	if _, _, err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	near(t, "free bytes after Remove", start-freeBytes(t, vol), 0, 64<<10)
}

// mustRefuse checks that openFill and CheckFillDir refuse dir with an error
// containing want, and that the dir's entries are left as they were.
func mustRefuse(t *testing.T, dir, diskPath, want string) {
	t.Helper()
	before := dirState(t, dir)
	f, err := openFill(dir, diskPath, fillOwner)
	if err == nil {
		f.Close()
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("openFill: %v, want %q", err, want)
	}
	if err := CheckFillDir(dir, diskPath, fillOwner); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckFillDir: %v, want %q", err, want)
	}
	if after := dirState(t, dir); !slices.Equal(before, after) {
		t.Errorf("dir changed: %q, then %q", before, after)
	}
}

// dirState is every entry of dir with its content.
func dirState(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		s = append(s, e.Name()+"="+string(b))
	}
	return s
}

func TestFillWindowsRefusesDirsNotOurs(t *testing.T) {
	base := wintest.TempDir(t)
	// No marker, and not empty: someone else's.
	unmarked := filepath.Join(base, "unmarked")
	wintest.Must(t, os.Mkdir(unmarked, 0o700))
	wintest.Must(t, os.WriteFile(filepath.Join(unmarked, "data"), []byte("theirs"), 0o600))
	mustRefuse(t, unmarked, "", "has no .cro-exporter marker")
	// Another cro-exporter's, with a fill file.
	other := filepath.Join(base, "other")
	wintest.Must(t, os.Mkdir(other, 0o700))
	wintest.Must(t, os.WriteFile(filepath.Join(other, fillMarker), []byte(`C:\another-state`+"\n"), 0o600))
	wintest.Must(t, os.WriteFile(filepath.Join(other, fillName(1)), []byte("fill"), 0o600))
	mustRefuse(t, other, "", `belongs to the cro-exporter with state dir "C:\\another-state"`)
	if n, _, ok := countFill(other, fillOwner); ok || n != 0 {
		t.Errorf("countFill of another's dir: %d, %v; want 0, false", n, ok)
	}
	// Ours, but holding a file that is not a fill file.
	foreign := filepath.Join(base, "foreign")
	wintest.Must(t, os.Mkdir(foreign, 0o700))
	wintest.Must(t, os.WriteFile(filepath.Join(foreign, fillMarker), []byte(fillOwner+"\n"), 0o600))
	wintest.Must(t, os.WriteFile(filepath.Join(foreign, "notes.txt"), nil, 0o600))
	mustRefuse(t, foreign, "", `holds "notes.txt", which is not a fill file of ours`)
	// A file, not a dir.
	file := filepath.Join(base, "file")
	wintest.Must(t, os.WriteFile(file, nil, 0o600))
	if err := CheckFillDir(file, "", fillOwner); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("CheckFillDir of a file: %v", err)
	}
}

func TestFillWindowsRefusesADirOthersMayWriteTo(t *testing.T) {
	dir := filepath.Join(wintest.TempDir(t), "fill")
	f, err := openFill(dir, "", fillOwner)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	wintest.LetEveryoneWrite(t, dir)
	mustRefuse(t, dir, "", "grants S-1-1-0 write access")
	var rep Report
	rep.removeFill(resolved{Config: Config{FillDir: dir}, owner: fillOwner})
	t.Logf("removeFill: notes %q, failures %q", rep.Notes, rep.Failures)
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "left it alone") || len(rep.Failures) != 0 {
		t.Errorf("removeFill of a dir others may write to: notes %q, failures %q", rep.Notes, rep.Failures)
	}
}

func TestFillWindowsAdoptsAndHolds(t *testing.T) {
	base := wintest.TempDir(t)
	// An empty dir made for us is adopted and marked.
	dir := filepath.Join(base, "fill")
	wintest.Must(t, os.Mkdir(dir, 0o700))
	wintest.Must(t, CheckFillDir(dir, "", fillOwner))
	f, err := openFill(dir, "", fillOwner)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, fillMarker)); err != nil || string(b) != fillOwner+"\n" {
		t.Errorf("marker: %q, %v", b, err)
	}
	// Held: another cannot have it, nor move or delete it or its marker.
	if g, err := openFill(dir, "", fillOwner); err == nil || !strings.Contains(err.Error(), "is in use by another cro-exporter") {
		t.Errorf("second openFill: %v, want in use", err)
		if err == nil {
			g.Close()
		}
	}
	if err := os.Rename(dir, dir+"-moved"); err == nil {
		t.Errorf("moving the held dir worked")
	}
	if err := os.Remove(filepath.Join(dir, fillMarker)); err == nil {
		t.Errorf("deleting the held marker worked")
	}
	// A fill file another run left is adopted, counted and removed.
	wintest.Must(t, os.WriteFile(filepath.Join(dir, fillName(3)), make([]byte, 5000), 0o600))
	if n, b, ok := countFill(dir, fillOwner); !ok || n != 1 || b < 5000 {
		t.Errorf("countFill: %d files, %d bytes, %v; want 1, >= 5000, true", n, b, ok)
	}
	wintest.Must(t, f.Close())
	var rep Report
	rep.removeFill(resolved{Config: Config{FillDir: dir}, owner: fillOwner})
	if rep.FillFiles != 1 || len(rep.Failures) != 0 {
		t.Errorf("removeFill: %d files, failures %q", rep.FillFiles, rep.Failures)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fill dir after removeFill: %v, want it gone", err)
	}
}

// Wine gives every drive letter its own volume GUID, so a fill dir on C:
// (the temp dir) is on another volume than Z:\tmp.
func TestCheckFillDirRefusesAnotherVolume(t *testing.T) {
	base := wintest.TempDir(t)
	if !strings.HasPrefix(strings.ToUpper(base), `C:\`) {
		t.Skipf("temp dir %s is not on C:", base)
	}
	for _, dir := range []string{filepath.Join(base, "missing"), base} {
		err := CheckFillDir(dir, `Z:\tmp`, fillOwner)
		t.Logf("CheckFillDir(%s): %v", dir, err)
		if err == nil || !strings.Contains(err.Error(), "is on another volume") {
			t.Errorf("CheckFillDir(%s, Z:\\tmp): %v, want another volume", dir, err)
		}
	}
	if _, err := openFill(filepath.Join(base, "missing"), `Z:\tmp`, fillOwner); err == nil || !strings.Contains(err.Error(), "is on another volume") {
		t.Errorf("openFill: %v, want another volume", err)
	}
	if err := CheckFillDir(filepath.Join(base, "missing"), base, fillOwner); err != nil {
		t.Errorf("CheckFillDir on the same volume: %v", err)
	}
}

// When --disk.path leads to another volume than the one the fill was
// opened on (here the fill is told it was opened on another, as when the
// drive letter went to another disk), the next call releases the fill:
// its files are removed, its bytes free again, and it is not grown.
func TestFillWindowsIsReleasedWhenItsVolumeIsGone(t *testing.T) {
	f, dir, vol := tmpfsFill(t)
	free0 := freeBytes(t, vol)
	wintest.Must(t, f.Resize(4<<20))
	near(t, "free bytes with 4 MiB of fill", freeBytes(t, vol), free0-4<<20, 64<<10)
	f.volume = `\\?\Volume{00000000-0000-0000-0000-000000000001}\`
	err := f.Resize(8 << 20)
	t.Logf("Resize once the volume is gone: %v", err)
	if !errors.Is(err, errGone) || !strings.Contains(err.Error(), f.volume) {
		t.Errorf("Resize once the volume is gone: %v, want errGone naming %s", err, f.volume)
	}
	near(t, "free bytes once released", freeBytes(t, vol), free0, 64<<10)
	for _, e := range dirState(t, dir) {
		if strings.HasPrefix(e, fillPrefix) {
			t.Errorf("a fill file left once released: %.20s", e)
		}
	}
}
