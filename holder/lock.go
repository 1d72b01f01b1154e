package holder

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// lockFile is the name of the lock file in the state dir. The daemon holds
// an flock(2) on it for as long as it runs and writes its pid in it. The
// kernel drops the lock when the process ends, however it ends, so a crash
// never leaves a stale lock; the file itself stays.
const lockFile = "cro-exporter.lock"

// recoveredMark is what --recover leaves in the lock file when it lets the
// lock go. A daemon that takes the lock and finds it written after the
// daemon itself started stops: --recover ran while it was starting, before
// it held the lock, and asked every daemon of the state dir to stop.
const recoveredMark = "recovered"

// recoveredError is returned by Open when --recover let the state dir's
// lock go after this process started.
type recoveredError struct {
	Path string
	At   time.Time
}

func (e *recoveredError) Error() string {
	return fmt.Sprintf("--recover ran at %s, while this cro-exporter was starting (%s says so): not starting",
		e.At.Format(time.RFC3339Nano), e.Path)
}

// lockedError is returned by Open when another process holds the state
// dir's lock.
type lockedError struct {
	Path string
	Pid  int // 0 when the holder of the lock has not written its pid (yet)
}

func (e *lockedError) Error() string {
	if e.Pid == 0 {
		return fmt.Sprintf("another cro-exporter holds %s", e.Path)
	}
	return fmt.Sprintf("another cro-exporter (pid %d) holds %s", e.Pid, e.Path)
}

// stateLock is a held lock on a state dir.
type stateLock struct {
	f *os.File
}

// openLockFile opens (creating it 0600) the lock file of dir. It must be a
// regular file of ours with one link (statefile.Open): anything else, such
// as a symlink or a hard link to a file elsewhere, is refused, never
// written.
func openLockFile(dir string) (*os.File, error) {
	f, err := statefile.Open(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	return f, nil
}

// lockStateDir takes the state dir's lock and writes our pid in it, or
// returns a *lockedError naming the pid that holds it, or a
// *recoveredError when --recover let it go after started (zero: never).
func lockStateDir(dir string, started time.Time) (*stateLock, error) {
	f, err := openLockFile(dir)
	if err != nil {
		return nil, err
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !ok {
		pid := waitLockPid(f)
		f.Close()
		return nil, &lockedError{Path: f.Name(), Pid: pid}
	}
	if err := checkNotRecovered(f, started); !started.IsZero() && err != nil {
		f.Close()
		return nil, err
	}
	if err := writeLockPid(f, os.Getpid()); err != nil {
		f.Close()
		return nil, err
	}
	return &stateLock{f: f}, nil
}

// coarseClock is more than the lag of the clock that stamps file times.
const coarseClock = 20 * time.Millisecond

// checkNotRecovered refuses a lock file that --recover let go after start.
func checkNotRecovered(f *os.File, start time.Time) error {
	buf := make([]byte, len(recoveredMark)+2)
	n, _ := f.ReadAt(buf, 0)
	if strings.TrimSpace(string(buf[:n])) != recoveredMark {
		return nil
	}
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	// Filesystems stamp times from a coarse clock, a tick or so behind:
	// a --recover that ran that little before the start counts as during.
	if info.ModTime().Before(start.Add(-coarseClock)) {
		return nil
	}
	return &recoveredError{Path: f.Name(), At: info.ModTime()}
}

// writeLockPid replaces the content of the lock file with pid (0: empty).
func writeLockPid(f *os.File, pid int) error {
	var text string
	if pid != 0 {
		text = strconv.Itoa(pid) + "\n"
	}
	return writeLock(f, text)
}

// writeLock replaces the content of the lock file with text.
func writeLock(f *os.File, text string) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt([]byte(text), 0); err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return nil
}

// readLockPid reads the pid in a lock file; 0 when it holds none.
func readLockPid(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// waitLockPid reads the pid of the lock's owner, giving an owner that has
// just taken the lock a moment to write it.
func waitLockPid(f *os.File) int {
	for range 20 {
		if pid := readLockPid(f); pid != 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// release empties the lock file and drops the lock. The file is not removed:
// removing a lock file races with a process that has it open and is about
// to lock it.
func (l *stateLock) release() error { return l.releaseWith("") }

// releaseRecovered drops the lock as --recover does, leaving recoveredMark
// for a daemon that started meanwhile.
func (l *stateLock) releaseRecovered() error { return l.releaseWith(recoveredMark + "\n") }

// releaseWith writes text in the lock file and drops the lock.
func (l *stateLock) releaseWith(text string) error {
	if l == nil || l.f == nil {
		return nil
	}
	err := writeLock(l.f, text)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
