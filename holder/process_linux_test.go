package holder

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testBinary is the cro-exporter binary TestMain builds, started as holders.
var testBinary string

// parentEnv makes the test binary a holder parent: see runTestParent.
const parentEnv = "CRO_TEST_PARENT"

const mib = 1 << 20

// TestMain builds the real binary for the tests that run real holders, or,
// started again by a test with parentEnv set, plays a daemon. After the
// tests it fails if any holder of the built binary is still running.
// CRO_TEST_BINARY names a cro-exporter binary built already, to use instead.
// Under -short no test runs a real holder (skipShort), so it builds
// nothing, and a test that would start one fails to.
func TestMain(m *testing.M) {
	if spec := os.Getenv(parentEnv); spec != "" {
		os.Exit(runTestParent(spec))
	}
	flag.Parse()
	if testing.Short() {
		testBinary = "/nonexistent/short/cro-exporter"
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "holder-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinary = filepath.Join(dir, "cro-exporter")
	if prebuilt := os.Getenv("CRO_TEST_BINARY"); prebuilt != "" {
		testBinary, err = filepath.Abs(prebuilt)
	} else if out, buildErr := exec.Command("go", "build", "-o", testBinary, "../cmd/cro-exporter").CombinedOutput(); buildErr != nil {
		err = fmt.Errorf("building cro-exporter: %v\n%s", buildErr, out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if left := holdersOf(testBinary); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: holder processes left running: %v\n", left)
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// skipShort skips the test under go test -short, saying why: it runs real
// holder processes, needs root, or takes more than a second.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("short: " + why)
	}
}

// holdersOf lists the running holder processes of binary.
func holdersOf(binary string) []int {
	pids, _ := listPids("/proc")
	var found []int
	for _, pid := range pids {
		argv, err := readCmdline("/proc", pid)
		if err != nil || len(argv) == 0 || argv[0] != binary || holderKindOf(argv) == "" {
			continue
		}
		if st, err := readProcStat("/proc", pid); err == nil && !st.exited() {
			found = append(found, pid)
		}
	}
	return found
}

// testParentSpec is what a holder parent does.
type testParentSpec struct {
	Binary, StateDir, FillDir string
	Chunk                     int64
	Load                      Load
	// OnTerm is what SIGTERM does: "close" closes the manager and exits 0,
	// "exit" exits at once (a daemon dying without cleaning up), "ignore"
	// ignores it.
	OnTerm string
}

// runTestParent plays a daemon: it opens a manager, applies the desired
// load, prints "ready" and the holder pids, then holds until SIGTERM or
// until its stdin ends (the test is gone), and closes the manager.
func runTestParent(spec string) int {
	var s testParentSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Printf("error %v\n", err)
		return 3
	}
	term := make(chan os.Signal, 1)
	if s.OnTerm == "ignore" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	m, err := Open(Config{binary: s.Binary, StateDir: s.StateDir, FillDir: s.FillDir, Chunk: s.Chunk,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 3
	}
	if err := m.Apply(s.Load); err != nil {
		fmt.Printf("error %v\n", err)
		m.Close()
		return 3
	}
	// The fill and the registry are written in the background.
	if !waitIdle(m, 30*time.Second) {
		fmt.Println("error: the manager's background work is not done after 30 s")
		m.Close()
		return 3
	}
	var pids []string
	m.mu.Lock()
	for _, p := range m.memory {
		pids = append(pids, strconv.Itoa(p.Pid))
	}
	if m.cpu != nil {
		pids = append(pids, strconv.Itoa(m.cpu.Pid))
	}
	m.mu.Unlock()
	fmt.Printf("ready %s\n", strings.Join(pids, " "))
	stdinEnd := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinEnd)
	}()
	select {
	case <-term:
		if s.OnTerm == "exit" {
			return 0
		}
	case <-stdinEnd:
	}
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testParent is a running holder parent.
type testParent struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	holders []procID
	exited  chan error
}

// procID names one process: pid and start time.
type procID struct {
	pid   int
	start uint64
}

func (p procID) String() string { return strconv.Itoa(p.pid) }

// alive tells whether the process still runs (a zombie does not).
func (p procID) alive() bool {
	st, err := readProcStat("/proc", p.pid)
	return err == nil && st.StartTime == p.start && !st.exited()
}

// idOf is the procID of a running pid.
func idOf(t *testing.T, pid int) procID {
	t.Helper()
	st, err := readProcStat("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	return procID{pid: pid, start: st.StartTime}
}

// killOnCleanup kills the processes at the end of the test if they still
// run, checking their start time so that a reused pid is never hit.
func killOnCleanup(t *testing.T, ids ...procID) {
	t.Cleanup(func() {
		for _, id := range ids {
			f, err := openForeign("/proc", id.pid, func(st procStat, _ []string) error {
				if st.StartTime != id.start {
					return errNoProcess
				}
				return nil
			})
			if err != nil {
				continue
			}
			f.kill(5 * time.Second)
			f.close()
		}
	})
}

// startParent starts a holder parent and waits until its holders are
// ready. Its argv[0] is argv0 (a name ending in cro-exporter makes it pass
// for the daemon). Cleanup kills it and its holders whatever happens.
func startParent(t *testing.T, argv0 string, s testParentSpec) *testParent {
	t.Helper()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Args[0] = argv0
	cmd.Env = append(os.Environ(), parentEnv+"="+string(spec))
	cmd.Stderr = &testLogWriter{t: t, prefix: "parent: "}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &testParent{cmd: cmd, stdin: stdin, exited: make(chan error, 1)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
		p.exited <- cmd.Wait()
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatal("the parent did not get ready within 60 s")
	}
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "ready" {
		t.Fatalf("the parent said %q, want ready", line)
	}
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		p.holders = append(p.holders, idOf(t, pid))
	}
	killOnCleanup(t, p.holders...)
	return p
}

// testLogWriter writes a child's stderr to the test log.
type testLogWriter struct {
	t      *testing.T
	prefix string
}

func (w *testLogWriter) Write(b []byte) (int, error) {
	for line := range strings.Lines(string(b)) {
		w.t.Log(w.prefix + strings.TrimRight(line, "\n"))
	}
	return len(b), nil
}

// waitGone waits up to within for every process to be gone and returns
// those still running.
func waitGone(ids []procID, within time.Duration) []procID {
	deadline := time.Now().Add(within)
	for {
		var left []procID
		for _, id := range ids {
			if id.alive() {
				left = append(left, id)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLauncher starts holders of the test binary for a state dir.
func testLauncher(t *testing.T, owner string) *launcher {
	skipShort(t, "runs real holder processes")
	return &launcher{binary: testBinary, argv0: testBinary, owner: owner, procs: procRoot("/proc"),
		logger: slog.New(slog.NewTextHandler(&testLogWriter{t: t}, nil)), now: time.Now}
}

// startTest starts a holder that Cleanup kills.
func startTest(t *testing.T, l *launcher, kind Kind, size int64, duty float64) *holderProcess {
	t.Helper()
	p, err := l.start(kind, size, duty)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		<-p.exited
	})
	return p
}

// awaitReady waits for the holder's ready line.
func awaitReady(t *testing.T, p *holderProcess) {
	t.Helper()
	select {
	case <-p.ready:
	case <-p.exited:
		t.Fatalf("%s holder (pid %d) ended before it was ready: %v", p.Kind, p.Pid, p.failure(time.Now()))
	case <-time.After(readyTimeout):
		t.Fatalf("%s holder (pid %d) not ready within %s", p.Kind, p.Pid, readyTimeout)
	}
}

// killAndReap kills the holder and waits until it is reaped.
func killAndReap(t *testing.T, p *holderProcess) {
	t.Helper()
	p.kill()
	if err := waitReaped([]*holderProcess{p}, stopTimeout); err != nil {
		t.Fatal(err)
	}
}

func TestHolderProcessStartsReadyAndIsKilled(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	p := startTest(t, l, kindMemory, 4*mib, 0)
	awaitReady(t, p)
	if rss, err := readRSS("/proc", p.Pid); err != nil || rss < 4*mib {
		t.Errorf("ready with %d bytes resident (%v), want at least %d", rss, err, 4*mib)
	}
	argv, err := readCmdline("/proc", p.Pid)
	if err != nil || holderKindOf(argv) != kindMemory || argv[3] != "--size=4194304" {
		t.Errorf("command line %q, %v", argv, err)
	}
	if st, err := readProcStat("/proc", p.Pid); err != nil || st.PPid != os.Getpid() || st.StartTime != p.StartTime {
		t.Errorf("stat %+v, %v; want our child started at %d", st, err, p.StartTime)
	}
	if err := p.failure(time.Now()); err != nil {
		t.Errorf("a holder that is ready and holds: %v", err)
	}
	killAndReap(t, p)
	// Reaped: not even a zombie is left.
	if _, err := readProcStat("/proc", p.Pid); !errors.Is(err, errNoProcess) {
		t.Errorf("pid %d is not reaped: %v", p.Pid, err)
	}
	// Its CPU time is its final rusage now.
	final := p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	if got, err := p.cpuTime(procRoot("/proc")); err != nil || got < final || got > final+10*time.Millisecond {
		t.Errorf("cpuTime after the end = %v, %v; want its rusage, %v", got, err, final)
	}
}

func TestHolderThatFailsIsReportedWithItsStderr(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	p := startTest(t, l, kindMemory, -1, 0)
	<-p.exited
	err := p.failure(time.Now())
	if err == nil || !strings.Contains(err.Error(), "ended by itself") || !strings.Contains(err.Error(), "stderr") {
		t.Fatalf("failure of a holder refusing its size: %v, want its exit and stderr", err)
	}
}

func TestCPUHolderTakesANewDutyAndAnswers(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	p := startTest(t, l, kindCPU, 0, 0.02)
	awaitReady(t, p)
	if err := p.setDuty(0.04); err != nil {
		t.Fatal(err)
	}
	if p.Duty != 0.04 {
		t.Errorf("duty %v after setDuty(0.04)", p.Duty)
	}
	deadline := time.Now().Add(replyTimeout)
	for {
		p.mu.Lock()
		waiting := len(p.unanswered)
		p.mu.Unlock()
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer within %s", replyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.failure(time.Now().Add(time.Hour)); err != nil {
		t.Errorf("a holder that answered: %v", err)
	}
}

// answeringPipe is a CPU holder's stdin whose holder answers each line
// before the write returns, as a real one may when the scheduler runs it
// and the stdout reader first.
type answeringPipe struct {
	io.WriteCloser
	p *holderProcess
}

func (a answeringPipe) SetWriteDeadline(time.Time) error { return nil }

func (a answeringPipe) Write(b []byte) (int, error) {
	n, err := a.WriteCloser.Write(b)
	if err == nil {
		if err := a.p.heard(strings.TrimSpace(string(b))); err != nil {
			a.p.breakTalk(err)
		}
	}
	return n, err
}

func TestACPUHolderThatAnswersBeforeTheWriteReturnsHasNotFailed(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	p := startTest(t, l, kindCPU, 0, 0.02)
	awaitReady(t, p)
	p.stdin = answeringPipe{WriteCloser: p.stdin, p: p}
	for _, duty := range []float64{0.03, 0.05, 0.04} {
		if err := p.setDuty(duty); err != nil {
			t.Fatal(err)
		}
		if err := p.failure(time.Now()); err != nil {
			t.Fatalf("after an answer quicker than the write, duty %v: %v", duty, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.unanswered) != 0 {
		t.Errorf("%d lines unanswered, want none: each was answered", len(p.unanswered))
	}
}

// checkFailsPast checks that p has not failed by due, and has a second
// later, with an error that says want.
func checkFailsPast(t *testing.T, p *holderProcess, due time.Time, want string) {
	t.Helper()
	if err := p.failure(due); err != nil {
		t.Errorf("failed within its time: %v", err)
	}
	if err := p.failure(due.Add(time.Second)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("past its time: failure %v, want one saying %q", err, want)
	}
}

func TestHolderProcessNotReadyInTimeHasFailed(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	l.binary = fakeHolder(t, "exec sleep 600") // never ready
	l.argv0 = l.binary
	base := time.Now()
	l.now = func() time.Time { return base }
	p := startTest(t, l, kindMemory, mib, 0)
	checkFailsPast(t, p, base.Add(readyTimeout), "not ready")
}

func TestHolderProcessThatDoesNotAnswerInTimeHasFailed(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	base := time.Now()
	l.now = func() time.Time { return base }
	p := startTest(t, l, kindCPU, 0, 0.02)
	awaitReady(t, p)
	// Stopped, it cannot answer: the answer is due replyTimeout after the
	// line was written.
	if err := syscall.Kill(p.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := p.setDuty(0.03); err != nil {
		t.Fatal(err)
	}
	checkFailsPast(t, p, base.Add(replyTimeout), "did not answer")
}

func TestHolderProcessThatSaysSomethingOutOfTurnHasFailed(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	l.binary = fakeHolder(t, "echo ready 1048576; echo hello; exec sleep 600")
	l.argv0 = l.binary
	p := startTest(t, l, kindMemory, mib, 0)
	awaitReady(t, p)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := p.failure(time.Now())
		if err != nil {
			if !strings.Contains(err.Error(), `said "hello" out of turn`) {
				t.Errorf("failure = %v, want what it said out of turn", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a holder that said hello out of turn has not failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHoldersOutliveTheThreadsThatAskedForThem(t *testing.T) {
	l := testLauncher(t, t.TempDir())
	// Several at once, each on a thread of its own that ends with its
	// goroutine: a holder forked from such a thread would get its
	// parent-death signal then. (The main thread never ends, so one of
	// them may be spared in any case.)
	const n = 4
	started := make(chan *holderProcess, n)
	var ready sync.WaitGroup
	ready.Add(n)
	for range n {
		go func() {
			runtime.LockOSThread()
			p, err := l.start(kindMemory, 1*mib, 0)
			if err != nil {
				t.Error(err)
			}
			ready.Done()
			ready.Wait() // every thread busy until all have started
			started <- p
		}()
	}
	var ps []*holderProcess
	for range n {
		if p := <-started; p != nil {
			t.Cleanup(func() {
				p.kill()
				<-p.exited
			})
			ps = append(ps, p)
		}
	}
	for _, p := range ps {
		awaitReady(t, p)
	}
	time.Sleep(200 * time.Millisecond)
	for _, p := range ps {
		if p.hasExited() {
			t.Errorf("holder pid %d died with the thread that asked for it: %v", p.Pid, p.waitErr)
		}
		killAndReap(t, p)
	}
}
