package holder

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// burnerEnv makes the test binary a CPU holder, RunCPU at the duty it
// holds, on its stdin and stdout.
const burnerEnv = "CRO_HOLDER_TEST_BURNER"

func TestMain(m *testing.M) {
	spec := os.Getenv(burnerEnv)
	if spec == "" {
		os.Exit(m.Run())
	}
	duty, err := strconv.ParseFloat(spec, 64)
	if err == nil {
		err = RunCPU(duty, os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// testBurner is a CPU holder started from the test binary.
type testBurner struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines *bufio.Scanner
	// linuxPid is its process's pid on the Linux host under Wine, whose
	// /proc tells its CPU time as Linux counts it, the judge of what the
	// burner burns.
	linuxPid int
}

// startBurner starts a CPU holder at duty and reads its ready line; the
// test's cleanup kills it.
func startBurner(t *testing.T, duty string) *testBurner {
	t.Helper()
	// A unique argument, which the holder ignores, finds it in Linux's /proc.
	tag := fmt.Sprintf("cro-burner-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command(os.Args[0], tag)
	cmd.Env = append(os.Environ(), burnerEnv+"="+duty)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	b := &testBurner{cmd: cmd, in: in, lines: bufio.NewScanner(out)}
	if line := b.line(t); line != "ready "+duty {
		t.Fatalf("first line %q, want %q", line, "ready "+duty)
	}
	b.linuxPid = linuxPidOf(t, tag)
	return b
}

// line reads the holder's next line, failing after 10 s.
func (b *testBurner) line(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if b.lines.Scan() {
			got <- b.lines.Text()
		}
		close(got)
	}()
	select {
	case line, ok := <-got:
		if !ok {
			t.Fatalf("the holder's stdout ended: %v", b.lines.Err())
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the holder in 10 s")
	}
	return ""
}

// setDuty sends a duty and checks its answer.
func (b *testBurner) setDuty(t *testing.T, duty string) {
	t.Helper()
	if _, err := fmt.Fprintln(b.in, "duty "+duty); err != nil {
		t.Fatal(err)
	}
	if line := b.line(t); line != "duty "+duty {
		t.Fatalf("answer to %q is %q", "duty "+duty, line)
	}
}

// cpu is the holder's CPU time so far, from Linux's /proc/<pid>/stat
// (utime and stime, in USER_HZ ticks of 10 ms).
func (b *testBurner) cpu(t *testing.T) time.Duration {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.linuxPid))
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := bytes.Cut(stat, []byte(") ")) // the name may hold spaces
	f := strings.Fields(string(after))           // f[0] is field 3, the state
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", b.linuxPid, stat)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// linuxPidOf finds the Linux pid of the one process whose command line
// holds tag.
func linuxPidOf(t *testing.T, tag string) int {
	t.Helper()
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, path := range cmdlines {
		cmdline, err := os.ReadFile(path)
		if err == nil && bytes.Contains(cmdline, []byte(tag)) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("Linux processes with %q in their command line: %v, want one", tag, pids)
	}
	return pids[0]
}

// machineBusy is the busy CPU time of the whole machine so far, from the
// Linux host's /proc/stat: all but idle and iowait.
func machineBusy(t *testing.T) time.Duration {
	t.Helper()
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line)) // cpu user nice system idle iowait irq softirq steal
	var busy int64
	for i, field := range f[1:9] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %q", line)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// burnt measures the CPU time the holder uses over d, and the busy time
// of the rest of the machine meanwhile.
func (b *testBurner) burnt(t *testing.T, d time.Duration) (holder, others time.Duration) {
	t.Helper()
	busy0, cpu0 := machineBusy(t), b.cpu(t)
	time.Sleep(d)
	cpu1, busy1 := b.cpu(t), machineBusy(t)
	holder = cpu1 - cpu0
	return holder, busy1 - busy0 - holder
}

func TestWindowsBurnerAnswersAndStopsWhenItsStdinCloses(t *testing.T) {
	b := startBurner(t, "0.1")
	for _, duty := range []string{"0.5", "0", "1", "0.25"} {
		b.setDuty(t, duty)
	}
	// Whether Wine passes the idle priority on to Linux: the threads' nice.
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", b.linuxPid))
	nice := map[string]int{}
	for _, task := range tasks {
		if stat, err := os.ReadFile(task); err == nil {
			_, after, _ := bytes.Cut(stat, []byte(") "))
			nice[strings.Fields(string(after))[16]]++
		}
	}
	t.Logf("the holder's Linux threads by nice: %v", nice)
	b.in.Close()
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the holder ended with %v, want success", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the holder still runs 5 s after its stdin closed")
	}
}

func TestWindowsBurnerBurnsItsDutyAndNothingAtZero(t *testing.T) {
	ncpu := time.Duration(runtime.NumCPU())
	b := startBurner(t, "0")
	time.Sleep(200 * time.Millisecond) // past its start
	if used, _ := b.burnt(t, time.Second); used > 50*time.Millisecond {
		t.Errorf("at duty 0 it used %s of CPU in 1 s, want next to nothing", used)
	}

	b.setDuty(t, "0.3")
	time.Sleep(300 * time.Millisecond)
	const d = 2 * time.Second
	want := ncpu * d * 3 / 10
	// As on Linux (TestCPUHolderBurnsItsDutyAndNothingAtZero): held to its
	// duty as far as other work left the machine idle, in one round of
	// three; never over it. A tick of 10 ms of /proc's counting each way.
	var errs []string
	for range 3 {
		used, others := b.burnt(t, d)
		t.Logf("at duty 0.3 of %d CPUs it used %s of CPU in %s (%.3f of the machine); the rest of the machine %s",
			ncpu, used, d, float64(used)/float64(ncpu*d), others)
		if used > want*13/10+50*time.Millisecond {
			t.Fatalf("at duty 0.3 it used %s of CPU in %s, more than its %s", used, d, want)
		}
		left := ncpu*d - others
		if used+50*time.Millisecond >= min(want, left)*3/10 {
			return
		}
		errs = append(errs, fmt.Sprintf("used %s, want about %s; other work took %s", used, want, others))
	}
	t.Errorf("no round of 3 burnt its duty: %s", strings.Join(errs, "; "))
}

func TestWindowsBurnerGivesWayToBusyLoopsAndComesBack(t *testing.T) {
	ncpu := runtime.NumCPU()
	b := startBurner(t, "0.5")
	time.Sleep(time.Second)
	const d = 2 * time.Second
	want := time.Duration(ncpu) * d / 2
	if used, _ := b.burnt(t, d); used < want/2 {
		t.Fatalf("before the busy loops it used %s of CPU in %s, want about %s", used, d, want)
	}

	// Busy loops at normal priority on every CPU, for 4 s at most.
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true) })
	runtime.GOMAXPROCS(ncpu + 1) // the test's own goroutine keeps a P
	for range ncpu {
		go func() {
			var x uint64
			for deadline := time.Now().Add(4 * time.Second); !stop.Load() && time.Now().Before(deadline); {
				x = spinWork(x)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // the burner's first backing off
	used, others := b.burnt(t, d)
	t.Logf("against %d busy loops it used %s of CPU in %s (%.4f of the machine); the busy loops and the rest %s",
		ncpu, used, d, float64(used)/float64(time.Duration(ncpu)*d), others)
	if used > want/10 {
		t.Errorf("against busy loops on every CPU it used %s of CPU in %s, want next to nothing (its duty is %s)", used, d, want)
	}
	stop.Store(true)

	// Back at its duty: half of it over 500 ms, within 10 s.
	start := time.Now()
	for {
		const window = 500 * time.Millisecond
		used, _ := b.burnt(t, window)
		if used >= time.Duration(ncpu)*window/4 {
			t.Logf("back at %s of CPU over %s, %s after the busy loops stopped", used, window, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not back at its duty 10 s after the busy loops stopped: %s of CPU over %s", used, window)
		}
	}
}
