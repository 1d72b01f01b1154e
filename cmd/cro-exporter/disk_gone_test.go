package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The filesystem a daemon holds is the one --disk.path led to at start.
// These tests take it away from under a live daemon holding a 64 MiB tmpfs
// at 0.5, each with the path then leading to the machine's real disk (the
// tests' temp dirs), and check that nothing is ever filled there.

// lostLine and backLine are the log lines that say the disk is lost and
// back.
const (
	lostLine = "disk not measured: its average waits and its fill is released until it is"
	backLine = "disk measured again: --disk.path is on the filesystem it was on at start"
)

// availBytes is what an unprivileged user may still write on the
// filesystem of path.
func availBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// countMsg counts the daemon's log lines with the message msg.
func countMsg(e *exporter, msg string) int {
	n := 0
	for _, l := range logLines(e, 0) {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// fillStarted starts a daemon holding h's disk at 0.5 and nothing else,
// and waits until it holds fill files.
func fillStarted(t *testing.T, h *testHost) *exporter {
	t.Helper()
	e := h.start("--target.cpu=0", "--target.memory=0", "--target.disk=0.5")
	logOnFailure(t, e)
	waitFor(t, 15*time.Second, "fill files", func() (bool, string) {
		n := len(fillFiles(t, h.fillDir()))
		held := value(e.metrics(t), `cro_holder_bytes{resource="disk"}`)
		return n > 0 && held > 0, fmt.Sprintf("%d fill files, cro_holder_bytes %v", n, held)
	})
	return e
}

// neverFilledElsewhere checks, for a few ticks and a recheck of the fill,
// that the daemon makes no fill dir in dir, which is on the real disk,
// takes no space there, shows the disk lost, and goes on ticking with CPU
// and memory measured.
func neverFilledElsewhere(t *testing.T, e *exporter, dir string) {
	t.Helper()
	avail := availBytes(t, dir)
	first := value(e.metrics(t), "cro_last_sample_timestamp_seconds")
	// A tick is 1 s and the fill is resized to an unchanged total every 5 s.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Lstat(filepath.Join(dir, ".cro-fill")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a fill dir in %s, on the real disk: %v", dir, err)
		}
		// Other tests may write meanwhile; the fill grew a GiB a tick.
		if dropped := avail - availBytes(t, dir); dropped > 256*mib {
			t.Fatalf("the real disk lost %d MiB while the daemon's disk was gone", dropped/mib)
		}
	}
	body := e.metrics(t)
	if last := value(body, "cro_last_sample_timestamp_seconds"); last < first+4 {
		t.Errorf("cro_last_sample_timestamp_seconds went from %v to %v in 6 s: ticks stopped", first, last)
	}
	// An idle host may be 0% busy for a second; no host uses no memory.
	if v := value(body, `cro_usage_ratio{resource="cpu"}`); !(v >= 0) {
		t.Errorf(`cro_usage_ratio{resource="cpu"} = %v, want the host measured`, v)
	}
	if v := value(body, `cro_usage_ratio{resource="memory"}`); !(v > 0) {
		t.Errorf(`cro_usage_ratio{resource="memory"} = %v, want the host measured`, v)
	}
	for series, want := range map[string]float64{
		"cro_disk_filesystem_present":                  0,
		"cro_disk_filesystem_losses_total":             1,
		`cro_holder_bytes{resource="disk"}`:            0,
		`cro_holders{resource="disk"}`:                 0,
		`cro_holder_failures_total{resource="disk"}`:   0,
		`cro_holder_failures_total{resource="memory"}`: 0,
	} {
		if got := value(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{`cro_usage_ratio{resource="disk"}`, "cro_disk_size_bytes", "cro_disk_available_bytes"} {
		if line := metricLine(body, series); line != "" {
			t.Errorf("%s exported while the disk is gone: another filesystem's figure", line)
		}
	}
	if n := countMsg(e, lostLine); n != 1 {
		t.Errorf("%d log lines %q, want 1", n, lostLine)
	}
	for _, l := range logLines(e, 0) {
		if l["msg"] == lostLine {
			t.Logf("logged: %s: %s", l["msg"], l["err"])
		}
	}
	if n := countMsg(e, "measuring the holders"); n != 0 {
		t.Errorf("the holders could not be measured while the disk was gone")
	}
}

// waitLost waits until the daemon shows its disk lost and holds no fill.
func waitLost(t *testing.T, e *exporter) {
	t.Helper()
	waitFor(t, 5*time.Second, "the disk shown lost, with no fill held", func() (bool, string) {
		body := e.metrics(t)
		present := value(body, "cro_disk_filesystem_present")
		held := value(body, `cro_holder_bytes{resource="disk"}`)
		return present == 0 && held == 0, fmt.Sprintf("cro_disk_filesystem_present %v, cro_holder_bytes{disk} %v", present, held)
	})
}

// exitsCleanly sends SIGTERM and checks that the daemon exits 0.
func exitsCleanly(t *testing.T, e *exporter) {
	t.Helper()
	if took, err := signalAndWait(t, e, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v (after %v)", err, took)
	}
}

// umount -l of the filesystem held: the daemon removes its fill through the
// dir it holds open (seen here through a second mount of the same tmpfs),
// never makes a fill dir on the real disk now under --disk.path, and fills
// again once the filesystem is mounted there again.
func TestAFilesystemUnmountedLazilyIsReleasedAndNeverFilledElsewhere(t *testing.T) {
	h := newHost(t)
	tmpfs := h.disk
	h.disk = mounted(t, "a bind mount of the tmpfs", func(dir string) error { return unix.Mount(tmpfs, dir, "", unix.MS_BIND, "") })
	e := fillStarted(t, h)
	kept := filepath.Join(tmpfs, ".cro-fill")

	if err := unix.Unmount(h.disk, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	waitLost(t, e)
	if files := fillFiles(t, kept); len(files) > 0 {
		t.Errorf("fill files left on the unmounted filesystem: %v", sortedNames(files))
	}
	neverFilledElsewhere(t, e, h.disk)

	if err := unix.Mount(tmpfs, h.disk, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the fill back on the filesystem mounted again", func() (bool, string) {
		present := value(e.metrics(t), "cro_disk_filesystem_present")
		n := len(fillFiles(t, kept))
		return present == 1 && n > 0, fmt.Sprintf("cro_disk_filesystem_present %v, %d fill files", present, n)
	})
	if n, m := countMsg(e, lostLine), countMsg(e, backLine); n != 1 || m != 1 {
		t.Errorf("%d lines %q and %d lines %q, want 1 each", n, lostLine, m, backLine)
	}
	exitsCleanly(t, e)
	if files := fillFiles(t, kept); len(files) > 0 {
		t.Errorf("fill files left after SIGTERM: %v", sortedNames(files))
	}
}

// The same with the tmpfs itself unmounted lazily, its last path gone: the
// daemon alone keeps it alive, through the fill dir it holds.
func TestATmpfsUnmountedLazilyIsNeverFilledOnTheDiskUnderIt(t *testing.T) {
	h := newHost(t)
	// Not mounted: the test unmounts it itself, and the cleanup only when
	// the test failed before.
	under := t.TempDir() // on the real disk
	if err := unix.Mount("tmpfs", under, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(under, unix.MNT_DETACH) })
	h.disk = under
	e := fillStarted(t, h)

	if err := unix.Unmount(under, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	waitLost(t, e)
	neverFilledElsewhere(t, e, under)
	exitsCleanly(t, e)
}

// --disk.path deleted, which deletes the fill in it, then replaced by a
// symlink to a dir on the real disk: the fill is no longer shown as held,
// and none is made there.
func TestADiskPathDeletedThenLinkedElsewhereIsNeverFilled(t *testing.T) {
	h := newHost(t)
	h.disk = filepath.Join(h.disk, "disk")
	if err := os.Mkdir(h.disk, 0o755); err != nil {
		t.Fatal(err)
	}
	e := fillStarted(t, h)

	// A resize at that moment may make the fill dir again in the path.
	waitFor(t, 5*time.Second, "--disk.path deleted", func() (bool, string) {
		err := os.RemoveAll(h.disk)
		return err == nil, fmt.Sprint(err)
	})
	waitLost(t, e)
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, h.disk); err != nil {
		t.Fatal(err)
	}
	neverFilledElsewhere(t, e, elsewhere)
	exitsCleanly(t, e)
}
