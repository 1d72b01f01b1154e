package winholder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// childEnv makes the test binary a child of the tests: "sleep" (ignores
// its stdin, so that only the job can end it), "busy" (spins), "alloc:N"
// (holds N bytes of ballast), or "daemon" and "daemon-nojob" (start a
// "sleep" child, in a job or not, print its pid and wait to be killed).
const childEnv = "CRO_WINHOLDER_CHILD"

func TestMain(m *testing.M) {
	mode := os.Getenv(childEnv)
	switch {
	case mode == "":
		os.Exit(m.Run())
	case mode == "sleep":
		fmt.Println("ready")
		time.Sleep(time.Minute)
	case mode == "busy":
		fmt.Println("ready")
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		}
	case strings.HasPrefix(mode, "alloc:"):
		size, _ := strconv.ParseInt(strings.TrimPrefix(mode, "alloc:"), 10, 64)
		if _, err := Alloc(size); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("ready")
		time.Sleep(time.Minute)
	case mode == "daemon" || mode == "daemon-nojob":
		cmd := child("sleep")
		var err error
		if mode == "daemon" {
			var job *Job
			if job, err = NewJob(); err == nil {
				err = job.Start(cmd) // its handle stays open until we die
			}
		} else {
			err = cmd.Start()
		}
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		time.Sleep(time.Minute)
	}
	os.Exit(2)
}

// child is the test binary as a child in mode.
func child(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	return cmd
}

// startChild starts the test binary in mode (in job, unless nil) and
// returns it after its first line, which it returns too.
func startChild(t *testing.T, job *Job, mode string) (*exec.Cmd, string) {
	t.Helper()
	cmd := child(mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if job != nil {
		err = job.Start(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child %s: reading its first line: %v", mode, err)
	}
	return cmd, strings.TrimSpace(line)
}

// exits tells whether pid ends within d; a pid no process has counts as
// ended.
func exits(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		t.Logf("OpenProcess(%d): %v", pid, err)
		return errors.Is(err, windows.ERROR_INVALID_PARAMETER)
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, uint32(d.Milliseconds()))
	if ev == windows.WAIT_OBJECT_0 {
		return true
	}
	t.Logf("WaitForSingleObject(%d): %#x, %v", pid, ev, err)
	windows.TerminateProcess(h, 1) // not to leave it running
	return false
}

func TestClosingTheJobKillsItsProcesses(t *testing.T) {
	job, err := NewJob()
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := startChild(t, job, "sleep")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("child ended before the job was closed: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	began := time.Now()
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("child ended %v after the job was closed: %v", time.Since(began), err)
	case <-time.After(5 * time.Second):
		t.Fatal("child still runs 5 s after its job was closed")
	}
}

// The daemon's death closes its job's handle, and its holder dies; without
// the job it would live on (the control).
func TestTheDaemonsDeathKillsItsHolders(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		wantEnded bool
	}{
		{"daemon", true},
		{"daemon-nojob", false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			daemon, line := startChild(t, nil, tc.mode)
			pid, err := strconv.Atoi(line)
			if err != nil {
				t.Fatalf("daemon said %q", line)
			}
			began := time.Now()
			daemon.Process.Kill()
			daemon.Wait()
			wait := 5 * time.Second
			if !tc.wantEnded {
				wait = time.Second
			}
			if ended := exits(t, pid, wait); ended != tc.wantEnded {
				t.Errorf("holder ended within %v of the daemon's death: %v, want %v", wait, ended, tc.wantEnded)
			} else if ended {
				t.Logf("holder ended %v after the daemon was killed", time.Since(began))
			}
		})
	}
}

func TestTimesOfABusyChild(t *testing.T) {
	cmd, _ := startChild(t, nil, "busy")
	pid := cmd.Process.Pid
	start1, cpu1, err := Times(pid)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Now()
	time.Sleep(time.Second)
	start2, cpu2, err := Times(pid)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(wall)
	t.Logf("start %d, CPU %v then %v over %v", start1, cpu1, cpu2, elapsed)
	if start1 != start2 {
		t.Errorf("start time changed: %d, then %d", start1, start2)
	}
	ft := windows.Filetime{LowDateTime: uint32(start1), HighDateTime: uint32(start1 >> 32)}
	created := time.Unix(0, ft.Nanoseconds())
	if d := time.Since(created); d < 0 || d > 10*time.Second {
		t.Errorf("created %v ago (%v), want within the last 10 s", d, created)
	}
	// One thread spinning: about one CPU second per second (under Wine,
	// read from its threads: underWine).
	if got := cpu2 - cpu1; got < elapsed*6/10 || got > elapsed*12/10 {
		t.Errorf("CPU time went up %v over %v of a spinning child", got, elapsed)
	}
	_, own1, err := Times(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	wall = time.Now()
	for time.Since(wall) < 500*time.Millisecond {
	}
	_, own2, err := Times(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got := own2 - own1; got < 300*time.Millisecond || got > 700*time.Millisecond {
		t.Errorf("our CPU time went up %v over 500ms of spinning", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, _, err := Times(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Times of a reaped child: %v, want ErrNoProcess", err)
	}
	if _, err := Resident(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Resident of a reaped child: %v, want ErrNoProcess", err)
	}
}

func TestResidentOfAnAllocatingChild(t *testing.T) {
	const size = 256 << 20
	idle, _ := startChild(t, nil, "sleep")
	base, err := Resident(idle.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd, line := startChild(t, nil, "alloc:"+strconv.Itoa(size))
	if line != "ready" {
		t.Fatalf("child said %q", line)
	}
	got, err := Resident(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("working set: idle child %d MiB, child holding %d MiB: %d MiB", base>>20, size>>20, got>>20)
	if got < size || got > size+base+64<<20 {
		t.Errorf("working set %d, want %d + about %d", got, size, base)
	}
}

// memAvailable reads the Linux host's MemAvailable, in bytes, through
// Wine's Z: drive.
func memAvailable(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(`Z:\proc\meminfo`)
	if err != nil {
		t.Skipf("no Linux host's /proc/meminfo: %v", err)
	}
	for line := range bytes.Lines(data) {
		if f := strings.Fields(string(line)); len(f) == 3 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

// Ballast takes physical memory: the Linux host under Wine shows its
// MemAvailable drop by about the size, and come back once released.
func TestBallastTakesPhysicalMemory(t *testing.T) {
	const size = 1 << 30
	before := memAvailable(t)
	b, err := Alloc(size)
	if err != nil {
		t.Fatal(err)
	}
	held := memAvailable(t)
	own, err := Resident(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	// Frees show in MemAvailable late, and other tests allocate meanwhile:
	// give it up to 2 s to rise by half the ballast.
	var after int64
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if after = memAvailable(t); after-held >= size/2 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("MemAvailable: %d MiB, holding %d MiB: %d MiB (down %d MiB), released: %d MiB; our working set %d MiB",
		before>>20, size>>20, held>>20, (before-held)>>20, after>>20, own>>20)
	// Not to the byte: on this test's host a native 1 GiB mmap, touched,
	// moves MemAvailable by 0.85 GiB too (WINDOWS.md), and the rest of the
	// host moves it meanwhile.
	if drop := before - held; drop < size/2 || drop > size*12/10 {
		t.Errorf("MemAvailable fell %d MiB holding %d MiB", drop>>20, size>>20)
	}
	if back := after - held; back < size/2 {
		t.Errorf("MemAvailable rose %d MiB on release of %d MiB", back>>20, size>>20)
	}
	if own < size {
		t.Errorf("our working set %d MiB holding %d MiB", own>>20, size>>20)
	}
}
