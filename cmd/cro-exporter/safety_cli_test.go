package main

// Attacks on the command line and the HTTP side of the daemon: thousands of
// idle connections, the signals that end it, a busy port, a shutdown that
// fails, a dry run beside a live daemon. Each runs the real binary.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// lockFile is holder's lock file in the state dir.
const lockFile = "cro-exporter.lock"

// listenAddresses waits until the daemon has logged n listeners and
// returns their addresses.
func listenAddresses(t *testing.T, e *exporter, n int) []string {
	t.Helper()
	var addrs []string
	waitFor(t, 5*time.Second, fmt.Sprintf("%d listening lines", n), func() (bool, string) {
		addrs = nil
		for l := range strings.Lines(e.stderr.String()) {
			var line struct{ Msg, Address string }
			if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "listening" {
				addrs = append(addrs, line.Address)
			}
		}
		return len(addrs) == n, fmt.Sprintf("listening on %v", addrs)
	})
	return addrs
}

// scrape GETs /metrics on a new connection, within timeout.
func scrape(addr string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(body), err
}

func TestIdleConnectionsNeverStarveTheTicks(t *testing.T) {
	skipShort(t, "waits for ticks of a second, several seconds in all")
	// Two listeners: the attack fills the first, the test watches the
	// ticks through the second.
	e := start(t, "--interval=1s", "--web.listen-address=127.0.0.1:0")
	addrs := listenAddresses(t, e, 2)
	// 256 file descriptors: 2000 connections would take them all.
	if err := unix.Prlimit(e.cmd.Process.Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: 256}, nil); err != nil {
		t.Fatalf("lowering the daemon's RLIMIT_NOFILE: %v", err)
	}
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range 2000 {
		c, err := net.DialTimeout("tcp", addrs[0], 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	attacked := time.Now()
	t.Logf("%d idle connections open to %s", len(conns), addrs[0])

	// Ticks go on and the other listener serves them: two ticks after the
	// attack began.
	waitFor(t, 10*time.Second, "two ticks during the attack, scraped on the other listener", func() (bool, string) {
		body, err := scrape(addrs[1], 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		ts := value(body, "cro_last_sample_timestamp_seconds")
		return ts > float64(attacked.Add(1500*time.Millisecond).UnixNano())/1e9,
			fmt.Sprintf("cro_last_sample_timestamp_seconds %.3f, attack began at %.3f", ts, float64(attacked.UnixNano())/1e9)
	})
	if log := e.stderr.String(); strings.Contains(log, "too many open files") {
		t.Errorf("the daemon ran out of file descriptors:\n%s", log)
	}

	// Once the clients go, the attacked listener serves again.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if _, err := scrape(addrs[0], 10*time.Second); err != nil {
		t.Errorf("scrape on %s after the idle connections closed: %v", addrs[0], err)
	}

	// Idle clients never hold up the exit either, nor fail it.
	for range 100 {
		c, err := net.DialTimeout("tcp", addrs[0], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if took, err := signalAndWait(t, e, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Errorf("exit after SIGTERM with %d idle connections: %v\n%s", len(conns), err, e.stderr)
	} else {
		t.Logf("exited 0 %v after SIGTERM with %d idle connections", took.Round(time.Millisecond), len(conns))
	}
}

func TestLimitListenerWaitsAtItsLimitAndEndsOnClose(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limit(inner, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	ended := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				ended <- err
				return
			}
			accepted <- c
		}
	}()
	dial := func() {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	next := func(want bool) net.Conn {
		t.Helper()
		wait := 200 * time.Millisecond
		if want {
			wait = 5 * time.Second
		}
		select {
		case c := <-accepted:
			if !want {
				t.Fatalf("accepted a connection beyond the limit")
			}
			t.Cleanup(func() { c.Close() })
			return c
		case <-time.After(wait):
			if want {
				t.Fatalf("no connection accepted within %v", wait)
			}
			return nil
		}
	}
	for range 3 {
		dial()
	}
	first := next(true)
	next(true)
	next(false) // the third waits
	first.Close()
	next(true) // and takes the slot the first gave back
	first.Close()
	dial()
	next(false) // closing twice gave back one slot only
	l.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an Accept waiting for a slot did not end when the listener closed")
	}
}

func TestSIGHUPAndSIGQUITEndTheDaemonLikeSIGTERM(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			h := newHost(t)
			e := h.start("--target.memory="+memoryTarget(t, 350*mib), "--target.cpu=0", "--target.disk=0.5")
			h.waitHeld(e, 0)
			held := h.holders()

			took, err := signalAndWait(t, e, sig, 5*time.Second)
			if err != nil {
				t.Fatalf("exit after %s: %v, want status 0\n%s", unix.SignalName(sig), err, e.stderr)
			}
			t.Logf("exited 0 %v after %s", took.Round(time.Millisecond), unix.SignalName(sig))
			if left := append(aliveOf(held), h.holders()...); len(left) > 0 {
				t.Errorf("holder processes alive after the daemon exited: %v", left)
			}
			if files := fillFiles(t, h.fillDir()); len(files) > 0 {
				t.Errorf("fill files left in %s: %v", h.fillDir(), sortedNames(files))
			}
			checkAveragesSaved(t, h.state)
			if pid, err := os.ReadFile(filepath.Join(h.state, lockFile)); err != nil || len(bytes.TrimSpace(pid)) > 0 {
				t.Errorf("lock file after the exit: %q (%v), want it empty", pid, err)
			}
		})
	}
}

// runDaemon runs a live daemon with args on h until it exits (10 s at
// most), and returns its stderr and exit error.
func runDaemon(t *testing.T, h *testHost, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd, stderr := h.spawn(ctx, append([]string{"--log.format=json"}, args...)...)
	err := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the daemon still ran after 10 s:\n%s", stderr)
	}
	return stderr.String(), err
}

func TestABusyPortStartsNothing(t *testing.T) {
	h := newHost(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	stderr, err := runDaemon(t, h, "--web.listen-address="+busy.Addr().String(),
		"--target.memory="+memoryTarget(t, 200*mib), "--target.cpu=0", "--target.disk=0.5")
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != exitFailure {
		t.Fatalf("exit: %v, want status %d\n%s", err, exitFailure, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "address already in use") {
		t.Errorf("stderr: want one line saying the address is in use, got:\n%s", stderr)
	}
	// Nothing was started: no holder planned, no lock taken, no registry
	// written, no fill dir made (each would show after the exit).
	if entries, err := os.ReadDir(h.state); err != nil || len(entries) > 0 {
		t.Errorf("state dir after the failed start: %v (%v), want it empty", entries, err)
	}
	if _, err := os.Lstat(h.fillDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed start made %s (%v)", h.fillDir(), err)
	}
}

func TestAFailedShutdownExitsOneAndSaysWhy(t *testing.T) {
	h := newHost(t)
	e := h.start("--target.memory=0", "--target.cpu=0", "--target.disk=0.5")
	waitFor(t, 10*time.Second, "a fill file", func() (bool, string) {
		files := fillFiles(t, h.fillDir())
		return len(files) > 0, fmt.Sprintf("fill files %v", sortedNames(files))
	})
	// Something at a fill file's name that is not ours: removing the fill
	// at shutdown leaves it, and fails.
	planted := filepath.Join(h.fillDir(), "fill-000009")
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), planted); err != nil {
		t.Fatal(err)
	}
	_, err := signalAndWait(t, e, syscall.SIGTERM, 5*time.Second)
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != exitFailure {
		t.Errorf("exit: %v, want status %d", err, exitFailure)
	}
	var said bool
	for l := range strings.Lines(e.stderr.String()) {
		var line struct{ Level, Msg, Err string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Level == "ERROR" && strings.Contains(line.Err, "fill-000009") {
			said = true
		}
	}
	if !said {
		t.Errorf("no error line names fill-000009:\n%s", e.stderr)
	}
}

// dirContents maps the names in dir to their content ("<dir>" for a
// directory, the target for a symlink).
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			m[e.Name()] = "<dir>"
		case e.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			m[e.Name()] = "-> " + target
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m[e.Name()] = string(data)
		}
	}
	return m
}

// dryRunTicks runs a dry run with args for two ticks or more, ends it with
// SIGTERM and checks that it exits 0.
func dryRunTicks(t *testing.T, args ...string) {
	t.Helper()
	e := start(t, append(args, "--interval=1s")...)
	first := value(e.metrics(t), "cro_last_sample_timestamp_seconds")
	waitFor(t, 5*time.Second, "two ticks of the dry run", func() (bool, string) {
		ts := value(e.metrics(t), "cro_last_sample_timestamp_seconds")
		return ts >= first+1.5, fmt.Sprintf("cro_last_sample_timestamp_seconds %.3f, first %.3f", ts, first)
	})
	if _, err := signalAndWait(t, e, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatalf("the dry run's exit after SIGTERM: %v\n%s", err, e.stderr)
	}
}

func TestDryRunBesideALiveDaemonWritesNothing(t *testing.T) {
	h := newHost(t)
	targets := []string{"--target.cpu=0", "--target.memory=0", "--target.disk=0"}
	// A first run leaves its averages.
	live := h.start(targets...)
	if _, err := signalAndWait(t, live, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, live.stderr)
	}
	checkAveragesSaved(t, h.state)
	live = h.start(targets...)
	before := dirContents(t, h.state)

	dryRunTicks(t, h.args(targets...)...)

	if diff := cmp.Diff(before, dirContents(t, h.state)); diff != "" {
		t.Errorf("the dry run changed the live daemon's state dir (-before +after):\n%s", diff)
	}
	if _, err := signalAndWait(t, live, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Errorf("the live daemon's exit after SIGTERM: %v\n%s", err, live.stderr)
	}
}

func TestDryRunLeavesABadStateFileAndAMissingStateDirAlone(t *testing.T) {
	skipShort(t, "waits for ticks of a second, several seconds in all")
	fixture := "--path.procfs=" + filepath.Join(fixtures, "small-8g")
	t.Run("a bad averages.json", func(t *testing.T) {
		state := privateDir(t)
		if err := os.WriteFile(filepath.Join(state, "averages.json"), []byte("not json\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := dirContents(t, state)
		dryRunTicks(t, fixture, "--state.dir="+state)
		if after := dirContents(t, state); !maps.Equal(before, after) {
			t.Errorf("the dry run changed the state dir: %v, was %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
		}
	})
	t.Run("a missing state dir", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state")
		dryRunTicks(t, fixture, "--state.dir="+state)
		if _, err := os.Lstat(state); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the dry run made its state dir %s (%v)", state, err)
		}
	})
}

func TestRecoverRefusesAStateDirThatIsNotOurs(t *testing.T) {
	state := t.TempDir()
	if err := os.Chmod(state, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	// A registry planted there names this test's own process.
	planted := fmt.Sprintf(`{"version":1,"holders":[{"pid":%d,"start_time":1,"kind":"cpu","duty":0.1}]}`, os.Getpid())
	if err := os.WriteFile(filepath.Join(state, "holders.json"), []byte(planted), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := recoverHostCmd(t, state, t.TempDir())
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 {
		t.Fatalf("--recover with a 1777 state dir: %v, want exit status 2:\n%s", err, out)
	}
	if !strings.Contains(out, "--state.dir="+state) || !strings.Contains(out, "mode 1777") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("want one line naming --state.dir and its mode, got:\n%s", out)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Errorf("--recover changed the state dir it refused: %d entries", len(entries))
	}
}

// hungMount mounts, on a new temp dir, a FUSE filesystem that no server
// ever answers: whatever touches it (statfs, a lookup) waits, as on a
// network filesystem whose server is gone. At the test's end the
// connection is aborted, which fails every request still waiting, and the
// dir unmounted.
func hungMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a FUSE filesystem")
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no FUSE here: %v", err)
	}
	dir := mounted(t, "a FUSE filesystem nobody serves", func(dir string) error {
		err := unix.Mount("cro-test", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV,
			fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd))
		if err != nil {
			unix.Close(fd)
		}
		return err
	})
	t.Cleanup(func() { unix.Close(fd) }) // before the unmount
	return dir
}

// waitOnFUSE waits until a thread of the process pid waits on a FUSE
// request (its wchan is fuse_*).
func waitOnFUSE(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, 10*time.Second, "the start waits on the FUSE mount", func() (bool, string) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		var chans []string
		for _, task := range tasks {
			w, _ := os.ReadFile(task)
			if strings.HasPrefix(string(w), "fuse") {
				return true, ""
			}
			chans = append(chans, string(w))
		}
		return false, fmt.Sprintf("wchans %q", chans)
	})
}

// A start stuck on the host (here statfs of a --disk.path whose filesystem
// never answers) ends at once on any of the signals that end the daemon,
// with status 0 as a stop, having started and written nothing.
func TestASignalEndsAStartStuckOnTheHost(t *testing.T) {
	skipShort(t, "mounts a FUSE filesystem, as root")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			hung := hungMount(t)
			state := privateDir(t)
			cmd := exec.Command(binaryPath(t), "--log.format=json", "--web.listen-address=127.0.0.1:0",
				"--path.procfs="+filepath.Join(fixtures, "small-8g"), "--disk.path="+hung, "--state.dir="+state,
				"--target.cpu=0", "--target.memory=0", "--target.disk=0")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			waitOnFUSE(t, cmd.Process.Pid)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				if err != nil {
					t.Fatalf("exit after %s: %v, want status 0\n%s", unix.SignalName(sig), err, &stderr)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the start still runs 5 s after %s", unix.SignalName(sig))
			}
			if entries, err := os.ReadDir(state); err != nil || len(entries) > 0 {
				t.Errorf("state dir after the stopped start: %v (%v), want it empty", entries, err)
			}
		})
	}
}

// The daemon's log goes to a pipe whose reader goes away: the daemon goes
// on, and a SIGTERM still stops it cleanly, its fill removed and its
// averages saved, though none of its log lines can be written.
func TestABrokenLogPipeNeverEndsTheDaemon(t *testing.T) {
	h := newHost(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(binaryPath(t), append([]string{"--log.format=json", "--log.level=debug", "--web.listen-address=127.0.0.1:0"},
		h.args("--target.memory=0", "--target.cpu=0", "--target.disk=0.5")...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the daemon's copy is the only writer
	exited := h.track(cmd)
	// The log is read while the daemon fills the disk; then, as in
	// `2>&1 | head`, its reader goes.
	go io.Copy(io.Discard, r)
	waitFor(t, 10*time.Second, "a fill file", func() (bool, string) {
		files := fillFiles(t, h.fillDir())
		return len(files) > 0, fmt.Sprintf("fill files %v", sortedNames(files))
	})
	held := fillBytes(fillFiles(t, h.fillDir()))
	r.Close()
	// Real usage grows into the disk reserve (8 MiB): the fill gives way,
	// and the new plan is logged, into the broken pipe.
	if err := os.WriteFile(filepath.Join(h.disk, "real"), make([]byte, 28*mib), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the fill gives way to real usage", func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("the daemon ended with its log pipe broken: %v", err)
		default:
		}
		now := fillBytes(fillFiles(t, h.fillDir()))
		return now < held, fmt.Sprintf("fill %d bytes, was %d", now, held)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left in %s: %v", h.fillDir(), sortedNames(files))
	}
	checkAveragesSaved(t, h.state)
}

// fillBytes is the sum of files, as fillFiles maps them.
func fillBytes(files map[string]int64) int64 {
	var n int64
	for _, b := range files {
		n += b
	}
	return n
}

// A state dir that cannot be written (a read-only mount, or a full
// filesystem, which still takes an empty file) is a usage error: exit 2,
// one line naming the flag, before anything is started.
func TestAStateDirThatCannotBeWrittenExitsTwo(t *testing.T) {
	skipShort(t, "mounts tmpfs, as root")
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts tmpfs (root ignores a dir's mode)")
	}
	for _, tc := range []struct {
		name, opts string
		fill       bool
		want       string
	}{
		{"a read-only mount", "ro,size=1m,mode=0700", false, "read-only file system"},
		{"a full filesystem", "size=64k,mode=0700", true, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := mounted(t, tc.opts, func(dir string) error { return unix.Mount("tmpfs", dir, "tmpfs", 0, tc.opts) })
			if tc.fill {
				// Writes until the filesystem is full.
				f, err := os.Create(filepath.Join(state, "full"))
				if err != nil {
					t.Fatal(err)
				}
				for err == nil {
					_, err = f.Write(make([]byte, 4096))
				}
				f.Close()
				if !errors.Is(err, unix.ENOSPC) {
					t.Fatalf("filling %s: %v", state, err)
				}
			}
			before := dirContents(t, state)
			bin := binaryPath(t) // built before the clock starts
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--web.listen-address=127.0.0.1:0", "--path.procfs="+filepath.Join(fixtures, "small-8g"),
				"--disk.path="+t.TempDir(), "--state.dir="+state, "--target.cpu=0", "--target.memory=0", "--target.disk=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != exitUsage {
				t.Fatalf("exit: %v, want status %d\n%s", err, exitUsage, &stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "--state.dir="+state) || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr: want one line naming --state.dir=%s and %q, got:\n%s", state, tc.want, &stderr)
			}
			if diff := cmp.Diff(before, dirContents(t, state)); diff != "" {
				t.Errorf("the refused start changed the state dir (-before +after):\n%s", diff)
			}
		})
	}
}

// exporter-toolkit reads the web config again at every request: one
// swapped for a FIFO or /dev/zero after the start has its connections
// closed at once, unserved, rather than hung or fed from memory without
// end; the fault is logged once, when it starts and when it ends, and the
// refusals counted.
func TestAWebConfigSwappedForAFIFOOrDevZeroRefusesConnectionsAtOnce(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "web.yml")
	good := []byte("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
	if err := os.WriteFile(config, good, 0o600); err != nil {
		t.Fatal(err)
	}
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--web.config.file="+config, "--interval=1s")
	addr := strings.TrimPrefix(e.url, "http://")
	if _, err := scrape(addr, 5*time.Second); err != nil {
		t.Fatalf("scrape with a good web config: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{fifo, zero} {
		if err := os.Rename(bad, config); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := scrape(addr, 5*time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
				t.Errorf("scrape with the web config swapped for %s: %v, want the connection closed at once", bad, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "new"), config); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refusals counted", func() (bool, string) {
		body, err := scrape(addr, 5*time.Second)
		if err != nil {
			t.Fatalf("scrape with the web config back: %v", err)
		}
		n := value(body, "cro_web_connections_refused_total")
		return n == 4, fmt.Sprintf("cro_web_connections_refused_total %v, want 4", n)
	})
	var said []string
	for l := range strings.Lines(e.stderr.String()) {
		var line struct{ Msg string }
		if json.Unmarshal([]byte(l), &line) == nil && strings.HasPrefix(line.Msg, "web config") {
			said = append(said, line.Msg)
		}
	}
	want := []string{"web config not usable: refusing connections until it is", "web config usable again: serving connections"}
	if diff := cmp.Diff(want, said); diff != "" {
		t.Errorf("web config log lines (-want +got):\n%s", diff)
	}
}
