package holder

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/logtest"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// openWithClock opens a manager for cfg whose restarts and timeouts follow
// a fake clock, and whose log lines are kept.
func openWithClock(t *testing.T, cfg Config) (*Manager, *fakeClock, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, &testLogWriter{t: t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := openTest(t, cfg)
	clock := newFakeClock()
	m.launch.now = clock.Now
	return m, clock, logs
}

// within fails the test unless f returns within d. It does not wait for
// an f that is late.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		t.Logf("%s: %v", what, time.Since(start).Round(time.Microsecond))
	case <-time.After(d):
		t.Errorf("%s did not return within %s", what, d)
	}
}

// holdersNow are the manager's running holders: memory, then cpu (nil when
// none).
func holdersNow(m *Manager) ([]*holderProcess, *holderProcess) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.memory), m.cpu
}

// killFromOutside kills a holder as the OOM killer or an admin would, by
// its pid, and waits until it is reaped.
func killFromOutside(t *testing.T, p *holderProcess) {
	t.Helper()
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitReaped([]*holderProcess{p}, stopTimeout); err != nil {
		t.Fatal(err)
	}
}

func managerHeld(t *testing.T, m *Manager) Held {
	t.Helper()
	u, err := m.Held()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// promptly is how soon a call must return although a holder is stopped or
// the fill grows: a few milliseconds of work, with room for a busy machine.
const promptly = 250 * time.Millisecond

func TestASIGSTOPpedHolderStallsNoApplyUsageOrClose(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)
	if err := m.Apply(Load{CPU: 0.02, Memory: 8 * mib}); err != nil {
		t.Fatal(err)
	}
	memory, cpu := holdersNow(m)
	awaitReady(t, cpu)
	awaitReady(t, memory[0])
	ids := idsOf(checkRegistryMatches(t, m))
	for _, p := range []*holderProcess{cpu, memory[0]} {
		if err := syscall.Kill(p.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	within(t, promptly, "Apply of a new duty", func() {
		if err := m.Apply(Load{CPU: 0.04, Memory: 8 * mib}); err != nil {
			t.Error(err)
		}
	})
	within(t, promptly, "Usage", func() {
		if u, err := m.Held(); err != nil || u.Holders.At(host.CPU) != 1 || u.Holders.At(host.Memory) != 1 {
			t.Errorf("Usage = %+v, %v; want the two holders", u, err)
		}
	})
	within(t, promptly, "CPUTime", func() {
		if _, err := m.CPUTime(); err != nil {
			t.Error(err)
		}
	})
	within(t, promptly, "Close", func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	if left := waitGone(ids, 0); len(left) > 0 {
		t.Errorf("holders still run after Close: %v", left)
	}
}

func TestACPUHolderThatDoesNotAnswerIsKilledAtTheNextUsage(t *testing.T) {
	cfg := liveConfig(t)
	m, clock, _ := openWithClock(t, cfg)
	if err := m.Apply(Load{CPU: 0.02}); err != nil {
		t.Fatal(err)
	}
	_, hung := holdersNow(m)
	awaitReady(t, hung)
	if err := syscall.Kill(hung.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(Load{CPU: 0.04}); err != nil {
		t.Fatal(err)
	}
	clock.advance(replyTimeout)
	if u := managerHeld(t, m); u.Failures.At(host.CPU) != 0 || u.Holders.At(host.CPU) != 1 {
		t.Errorf("Usage within the reply time = %+v, want the holder and no failure", u)
	}
	clock.advance(time.Second)
	if u := managerHeld(t, m); u.Failures.At(host.CPU) != 1 || u.Holders.At(host.CPU) != 0 {
		t.Errorf("Usage past the reply time = %+v, want no holder and one failure", u)
	}
	if left := waitGone([]procID{{hung.Pid, hung.StartTime}}, 5*time.Second); len(left) > 0 {
		t.Errorf("the holder that did not answer still runs")
	}
	if err := m.Apply(Load{CPU: 0.04}); err != nil {
		t.Fatal(err)
	}
	if _, cpu := holdersNow(m); cpu == nil || cpu == hung || cpu.Duty != 0.04 {
		t.Errorf("after the next Apply: CPU holder %+v, want a new one at 0.04", cpu)
	}
}

func TestACPUHolderWhosePipeIsFullIsReplacedByTheSameApply(t *testing.T) {
	cfg := testConfig(t)
	// Ready, and then it never reads its stdin again.
	cfg.binary = fakeHolder(t, "echo ready 0.01; exec sleep 600")
	m, _, _ := openWithClock(t, cfg)
	if err := m.Apply(Load{CPU: 0.01}); err != nil {
		t.Fatal(err)
	}
	_, first := holdersNow(m)
	awaitReady(t, first)
	var slowest time.Duration
	for i := 0; ; i++ {
		if i == 100000 {
			t.Fatal("the pipe never filled")
		}
		start := time.Now()
		if err := m.Apply(Load{CPU: 0.01 + 0.01*float64(i%2)}); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(start))
		if managerHeld(t, m).Failures.At(host.CPU) > 0 {
			t.Logf("the pipe was full after %d duty lines", i)
			break
		}
	}
	// The write waits writeTimeout at most, once.
	if slowest > promptly {
		t.Errorf("the slowest Apply took %v, want less than %v", slowest, promptly)
	}
	if _, cpu := holdersNow(m); cpu == nil || cpu == first {
		t.Errorf("CPU holder %+v after the pipe was full, want a new one", cpu)
	}
	if left := waitGone([]procID{{first.Pid, first.StartTime}}, 5*time.Second); len(left) > 0 {
		t.Errorf("the holder whose pipe was full still runs")
	}
}

func TestAGrowingFillStallsNoApplyUsageNorCPUTime(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)
	entered, release := make(chan struct{}), make(chan struct{})
	var enter, free sync.Once
	// A filesystem that takes its time: every allocation waits for release.
	m.fill.(*fill).fallocate = func(fd int, off, length int64) error {
		enter.Do(func() { close(entered) })
		<-release
		return fallocateMode0(fd, off, length)
	}
	unblock := func() { free.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before openTest's Close, which waits for the resize
	within(t, promptly, "Apply growing the fill", func() {
		if err := m.Apply(Load{Disk: 4 * mib}); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the fill did not start growing")
	}
	within(t, promptly, "Apply of memory while the fill grows", func() {
		if err := m.Apply(Load{Memory: 8 * mib, Disk: 4 * mib}); err != nil {
			t.Error(err)
		}
	})
	within(t, promptly, "CPUTime while the fill grows", func() {
		if _, err := m.CPUTime(); err != nil {
			t.Error(err)
		}
	})
	within(t, promptly, "Usage while the fill grows", func() {
		if _, err := m.Held(); err != nil {
			t.Error(err)
		}
	})
	within(t, promptly, "Apply releasing memory while the fill grows", func() {
		if err := m.Apply(Load{Disk: 4 * mib}); err != nil {
			t.Error(err)
		}
	})
	unblock()
	settle(t, m)
	if u := managerHeld(t, m); u.Bytes.At(host.Disk) < 4*mib || u.Holders.At(host.Memory) != 0 {
		t.Errorf("Usage once the fill has grown = %+v, want 4 MiB of fill and no memory holder", u)
	}
}

func TestMemoryHoldersCPUTimeCountsInUsage(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)
	applyFilled(t, m, Load{Memory: 256 * mib})
	memory, _ := holdersNow(m)
	var spent time.Duration
	for _, p := range memory {
		spent += kernelCPUTime(t, p.Pid)
	}
	u := managerHeld(t, m)
	t.Logf("filling 256 MiB took %v of CPU time; Usage.CPUTime %v", spent, u.CPUTime)
	if spent < 10*time.Millisecond || u.CPUTime < spent {
		t.Errorf("Usage.CPUTime %v, want at least the %v the memory holders spent (and that measurable)", u.CPUTime, spent)
	}
	cpuTime, err := m.CPUTime()
	if err != nil || cpuTime < u.CPUTime {
		t.Errorf("CPUTime = %v, %v; want at least Usage's %v", cpuTime, err, u.CPUTime)
	}
	// Ended holders keep counting what they spent.
	if err := m.Apply(Load{}); err != nil {
		t.Fatal(err)
	}
	if err := waitReaped(memory, stopTimeout); err != nil {
		t.Fatal(err)
	}
	if after := managerHeld(t, m); after.CPUTime < u.CPUTime {
		t.Errorf("Usage.CPUTime %v once the holders ended, want at least %v", after.CPUTime, u.CPUTime)
	}
}

func TestAHolderKilledFromOutsideIsCountedAndReplacedAtTheNextApply(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)
	load := Load{CPU: 0.02, Memory: 48 * mib}
	if err := m.Apply(load); err != nil {
		t.Fatal(err)
	}
	waitFilled(t, m)
	memory, cpu := holdersNow(m)
	awaitReady(t, cpu)
	killFromOutside(t, memory[1])
	killFromOutside(t, cpu)
	u := managerHeld(t, m)
	if u.Holders.At(host.Memory) != 1 || u.Holders.At(host.CPU) != 0 || u.Failures.At(host.Memory) != 1 || u.Failures.At(host.CPU) != 1 {
		t.Errorf("Usage after two holders were killed = %+v, want one memory holder left and one failure of each", u)
	}
	if err := m.Apply(load); err != nil {
		t.Fatal(err)
	}
	entries := checkRegistryMatches(t, m)
	if len(entries) != 3 {
		t.Fatalf("registry after the next Apply: %+v, want two memory holders and a CPU holder", entries)
	}
	for _, e := range entries {
		if e.Pid == memory[1].Pid || e.Pid == cpu.Pid {
			t.Errorf("registry entry %+v is a holder that was killed", e)
		}
	}
}

func TestACPUHolderThatKeepsDyingIsRestartedByApplyAtBackedOffTimesOnly(t *testing.T) {
	cfg := liveConfig(t)
	m, clock, logs := openWithClock(t, cfg)
	load := Load{CPU: 0.02}
	apply := func() *holderProcess {
		t.Helper()
		if err := m.Apply(load); err != nil {
			t.Fatal(err)
		}
		_, cpu := holdersNow(m)
		return cpu
	}
	cpu := apply()
	if cpu == nil {
		t.Fatal("no CPU holder")
	}
	// The first that dies is replaced at once.
	killFromOutside(t, cpu)
	if cpu = apply(); cpu == nil {
		t.Fatal("the first CPU holder that died was not replaced at once")
	}
	started := 2
	for _, wait := range []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
		4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		killFromOutside(t, cpu)
		if cpu = apply(); cpu != nil {
			t.Fatalf("restarted at once after %d starts; want a wait of %v", started, wait)
		}
		clock.advance(wait - time.Second)
		if cpu = apply(); cpu != nil {
			t.Fatalf("restarted a second early after %d starts; want a wait of %v", started, wait)
		}
		clock.advance(time.Second)
		if cpu = apply(); cpu == nil {
			t.Fatalf("not restarted after %v", wait)
		}
		started++
	}
	if n := logs.Count("cpu holder keeps ending by itself; restarting it at most every 15s"); n != 1 {
		t.Errorf("%d log lines that the CPU holder backs off, want 1", n)
	}
	if n := logs.Count("level=WARN"); n != 2 {
		t.Errorf("%d warnings for %d CPU holders that died, want 2: the first, and the back-off", n, started-1)
	}
	if u := managerHeld(t, m); u.Failures.At(host.CPU) != uint64(started-1) {
		t.Errorf("CPUFailures = %d, want %d", u.Failures.At(host.CPU), started-1)
	}

	// One that runs 10 minutes ends the back-off.
	awaitReady(t, cpu)
	clock.advance(stableAfter)
	managerHeld(t, m)
	if n := logs.Count("cpu holder has run 10m0s; restarting it at once again should it end"); n != 1 {
		t.Errorf("%d log lines that the back-off ended, want 1", n)
	}
	killFromOutside(t, cpu)
	if cpu = apply(); cpu == nil {
		t.Fatal("a CPU holder that died after 10 minutes was not replaced at once")
	}
}

func TestApplyRegrowsWhatWasRemovedFromOutsideAndCountsResizeFailures(t *testing.T) {
	cfg := testConfig(t)
	m, clock, _ := openWithClock(t, cfg)
	load := Load{Disk: 2 * mib}
	if err := m.Apply(load); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	names := fillNames(t, cfg.FillDir)
	for _, name := range names {
		if err := os.Remove(filepath.Join(cfg.FillDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(diskRecheck)
	if err := m.Apply(load); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	if u := managerHeld(t, m); u.Bytes.At(host.Disk) < 2*mib || u.Failures.At(host.Disk) != 0 {
		t.Errorf("Usage after the fill was removed from outside and applied again = %+v, want 2 MiB back", u)
	}

	// A filesystem that refuses: each failed resize counts, and Apply
	// says why.
	m.fill.(*fill).fallocate = func(int, int64, int64) error { return syscall.EIO }
	load.Disk = 4 * mib
	if err := m.Apply(load); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	if u := managerHeld(t, m); u.Failures.At(host.Disk) != 1 {
		t.Errorf("DiskFailures = %d after a resize failed, want 1", u.Failures.At(host.Disk))
	}
	if err := m.Apply(load); !errors.Is(err, syscall.EIO) {
		t.Errorf("Apply after the resize failed: %v, want its error", err)
	}
}

// TestAHolderThatWouldExhaustThePidsLimitIsRefusedOnce: with too few pids
// left in the cgroup for a holder's threads and the daemon's headroom, no
// holder starts, and the refusals are counted but logged once; once the
// limit leaves room, holders start, which is logged once too.
func TestAHolderThatWouldExhaustThePidsLimitIsRefusedOnce(t *testing.T) {
	skipShort(t, "runs real holder processes")
	var mu sync.Mutex
	pids := cgroup.Pids{Max: 12, Current: 7}
	cfg := testConfig(t)
	cfg.Pids = func() (cgroup.Pids, error) {
		mu.Lock()
		defer mu.Unlock()
		return pids, nil
	}
	m, clock, logs := openWithClock(t, cfg)
	for range 3 {
		if err := m.Apply(Load{Memory: 48 * mib, CPU: 0.01}); err != nil {
			t.Fatal(err)
		}
		clock.advance(time.Second)
	}
	u, err := m.Held()
	if err != nil {
		t.Fatal(err)
	}
	if u.Holders.At(host.Memory) != 0 || u.Holders.At(host.CPU) != 0 || u.Failures.At(host.Memory) != 0 || u.Failures.At(host.CPU) != 0 {
		t.Errorf("with 5 pids left: %+v; want no holder and no failure", u)
	}
	if u.Refusals.At(host.Memory) != 3 || u.Refusals.At(host.CPU) != 3 {
		t.Errorf("refusals after 3 applies: memory %d, cpu %d; want 3 each", u.Refusals.At(host.Memory), u.Refusals.At(host.CPU))
	}
	if n := logs.Count("not starting memory holders"); n != 1 {
		t.Errorf("%d log lines for the memory refusals; want 1", n)
	}
	mu.Lock()
	pids.Max = 1000
	mu.Unlock()
	if err := m.Apply(Load{Memory: 48 * mib, CPU: 0.01}); err != nil {
		t.Fatal(err)
	}
	if u, err = m.Held(); err != nil || u.Holders.At(host.Memory) != 2 || u.Holders.At(host.CPU) != 1 {
		t.Errorf("with room again: %+v, %v; want 2 memory holders and the burner", u, err)
	}
	if n := logs.Count("holders start again"); n != 2 {
		t.Errorf("%d log lines for starting again; want one for each kind", n)
	}
}

// TestRoomForCountsTheHoldersThreadsAndTheDaemons: a memory holder needs
// 8 pids, a burner 10 plus one per CPU, and the daemon keeps 8 beside.
func TestRoomForCountsTheHoldersThreadsAndTheDaemons(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		free int64
		want bool
	}{
		{kindMemory, 15, false}, {kindMemory, 16, true},
		{kindCPU, 19, false}, {kindCPU, 20, true},
		{kindMemory, math.MaxInt64, true},
	} {
		if got := roomFor(tc.kind, 2, tc.free); got != tc.want {
			t.Errorf("roomFor(%s, 2 CPUs, %d free) = %v; want %v", tc.kind, tc.free, got, tc.want)
		}
	}
}
