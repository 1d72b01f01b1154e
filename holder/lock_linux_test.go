package holder

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/statefile/statefiletest"
	"golang.org/x/sys/unix"
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

func TestLockRefusesALockFileThatIsNotOurs(t *testing.T) {
	const content = "a file that is not ours\n"
	for _, p := range statefiletest.Plants() {
		t.Run(p.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, lockFile)
			outside := p.Make(t, path, []byte(content))
			var before unix.Stat_t
			mustFill(t, unix.Lstat(path, &before))
			var l *stateLock
			var err error
			statefiletest.Within(t, 5*time.Second, func() { l, err = lockStateDir(dir, time.Time{}) })
			if err == nil {
				l.release()
			}
			if err == nil || !strings.Contains(err.Error(), "lock file") || !strings.Contains(err.Error(), path+" "+p.Want) {
				t.Errorf("lockStateDir = %v; want it refused: %s %s", err, path, p.Want)
			}
			if outside != "" {
				if got, _ := os.ReadFile(outside); string(got) != content {
					t.Errorf("the file outside became %q", got)
				}
			}
			var after unix.Stat_t
			mustFill(t, unix.Lstat(path, &after))
			if after.Ino != before.Ino || after.Size != before.Size || after.Mode != before.Mode || after.Uid != before.Uid {
				t.Errorf("the planted %s was changed", lockFile)
			}
		})
	}
}
