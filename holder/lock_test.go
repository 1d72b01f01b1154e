package holder

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLockIsExclusiveAndNamesItsOwner(t *testing.T) {
	dir := t.TempDir()
	l, err := lockStateDir(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, lockFile)
	if data, err := os.ReadFile(path); err != nil || string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q, %v; want our pid", data, err)
	}
	// flock locks belong to open files: a second open conflicts even in the
	// same process.
	_, err = lockStateDir(dir, time.Time{})
	var locked *lockedError
	if !errors.As(err, &locked) || locked.Pid != os.Getpid() || locked.Path != path {
		t.Fatalf("second lock: %v, want a lockedError naming pid %d and %s", err, os.Getpid(), path)
	}
	want := "another cro-exporter (pid " + strconv.Itoa(os.Getpid()) + ") holds " + path
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || len(data) != 0 {
		t.Errorf("released lock file holds %q, %v; want it empty", data, err)
	}
	l2, err := lockStateDir(dir, time.Time{})
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.release()
}

func TestLockRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir, lockFile)); err != nil {
		t.Fatal(err)
	}
	if l, err := lockStateDir(dir, time.Time{}); err == nil {
		l.release()
		t.Fatal("locked through a symlink")
	}
	if _, err := os.Lstat(target); err == nil {
		t.Errorf("created the symlink's target")
	}
}

func TestLockedErrorWithoutAPid(t *testing.T) {
	err := &lockedError{Path: "/x/cro-exporter.lock"}
	if got := err.Error(); !strings.Contains(got, "/x/cro-exporter.lock") || strings.Contains(got, "pid") {
		t.Errorf("Error() = %q", got)
	}
}

func TestADaemonThatStartedBeforeARecoverLetTheLockGoDoesNotStart(t *testing.T) {
	dir := t.TempDir()
	l, err := lockStateDir(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.releaseRecovered(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, lockFile)
	if data, err := os.ReadFile(path); err != nil || string(data) != recoveredMark+"\n" {
		t.Fatalf("lock file after --recover let it go: %q, %v; want %q", data, err, recoveredMark)
	}
	// A daemon that started a second before that was starting.
	started := time.Now().Add(-time.Second)
	_, err = lockStateDir(dir, started)
	var recovered *recoveredError
	if !errors.As(err, &recovered) || !strings.Contains(err.Error(), "--recover ran at") {
		t.Fatalf("lock after a --recover that ran since the start: %v, want a recoveredError", err)
	}
	// A recover an hour before the start is an earlier one.
	hourAgo := started.Add(-time.Hour)
	if err := os.Chtimes(path, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	l, err = lockStateDir(dir, started)
	if err != nil {
		t.Fatalf("lock after a --recover before the start: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q, want our pid", data)
	}
	l.release()
}
