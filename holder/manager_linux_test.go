package holder

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// liveConfig is testConfig for a test that runs real holder processes,
// which it skips under -short.
func liveConfig(t *testing.T) Config {
	t.Helper()
	skipShort(t, "runs real holder processes")
	return testConfig(t)
}

// testConfig is a Config for the test binary with its own state and fill
// dirs and 32 MiB chunks.
func testConfig(t *testing.T) Config {
	return Config{
		binary:   testBinary,
		StateDir: t.TempDir(),
		FillDir:  filepath.Join(t.TempDir(), "fill"),
		Chunk:    32 * mib,
		Logger:   slog.New(slog.NewTextHandler(&testLogWriter{t: t}, nil)),
	}
}

// openTest opens a manager that Cleanup closes, and whose holders Cleanup
// kills should Close fail.
func openTest(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.mu.Lock()
		ps := slices.Clone(m.memory)
		if m.cpu != nil {
			ps = append(ps, m.cpu)
		}
		m.mu.Unlock()
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, p := range ps {
			p.kill()
		}
		waitReaped(ps, stopTimeout)
	})
	return m
}

// settle waits until the manager's fill resizes and registry writes, which
// run in the background, are done.
func settle(t *testing.T, m *Manager) {
	t.Helper()
	if !waitIdle(m, 30*time.Second) {
		t.Fatal("the manager's background work is not done after 30 s")
	}
}

// waitIdle waits up to within for the manager's background work to be
// done, and tells whether it is.
func waitIdle(m *Manager, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !idle(m.registry) || (m.disk != nil && !idle(m.disk)) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// idle tells whether w has nothing queued or running.
func idle[T any](w *latest[T]) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.queued && !w.running
}

// registryOf reads the registry in dir.
func registryOf(t *testing.T, dir string) []holderEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, registryFile))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// fillNames lists the fill files in dir; a missing dir has none.
func fillNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fillPrefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// memorySizes are the sizes of the memory holders in a registry.
func memorySizes(entries []holderEntry) []int64 {
	var sizes []int64
	for _, e := range entries {
		if e.Kind == kindMemory {
			sizes = append(sizes, e.Size)
		}
	}
	return sizes
}

// checkRegistryMatches checks that the registry lists exactly the manager's
// running holders, each with its pid's real start time and command line.
func checkRegistryMatches(t *testing.T, m *Manager) []holderEntry {
	t.Helper()
	settle(t, m)
	m.mu.Lock()
	entries := registryOf(t, m.cfg.StateDir)
	var want []holderEntry
	for _, p := range m.memory {
		want = append(want, entryOf(p))
	}
	if m.cpu != nil {
		want = append(want, entryOf(m.cpu))
	}
	m.mu.Unlock()
	if diff := cmp.Diff(want, entries, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("registry (-running +registry):\n%s", diff)
	}
	for _, e := range entries {
		st, err := readProcStat("/proc", e.Pid)
		if err != nil || st.StartTime != e.StartTime || st.exited() {
			t.Errorf("registry entry %+v: stat %+v, %v", e, st, err)
		}
		if argv, err := readCmdline("/proc", e.Pid); err != nil || holderKindOf(argv) != e.Kind {
			t.Errorf("registry entry %+v: command line %q, %v", e, argv, err)
		}
	}
	return entries
}

// idsOf are the procIDs of registry entries.
func idsOf(entries []holderEntry) []procID {
	var ids []procID
	for _, e := range entries {
		ids = append(ids, procID{e.Pid, e.StartTime})
	}
	return ids
}

func TestApplyHoldsMemoryInChunksAndUsageMeasuresIt(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)

	applyFilled(t, m, Load{Memory: 80 * mib})
	first := checkRegistryMatches(t, m)
	if diff := cmp.Diff([]int64{32 * mib, 32 * mib, 16 * mib}, memorySizes(first)); diff != "" {
		t.Errorf("chunks for 80 MiB (-want +got):\n%s", diff)
	}
	u, err := m.Held()
	if err != nil {
		t.Fatal(err)
	}
	if u.Holders.At(host.Memory) != 3 || u.Bytes.At(host.Memory) < 80*mib {
		t.Errorf("Usage = %+v, want 3 memory holders with at least 80 MiB resident", u)
	}
	// Measured, not assumed: each holder's own VmRSS covers its chunk.
	var sum int64
	for _, e := range first {
		rss, err := readRSS("/proc", e.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if rss < e.Size {
			t.Errorf("holder pid %d: %d bytes resident, want at least its %d", e.Pid, rss, e.Size)
		}
		sum += rss
	}
	if u.Bytes.At(host.Memory) > sum+8*mib || u.Bytes.At(host.Memory) < sum-8*mib {
		t.Errorf("Usage.Memory %d, but the holders' VmRSS add up to %d", u.Bytes.At(host.Memory), sum)
	}

	// Shrink: the oldest full chunk stays, the rest is replaced by 8 MiB.
	applyFilled(t, m, Load{Memory: 40 * mib})
	second := checkRegistryMatches(t, m)
	if diff := cmp.Diff([]int64{32 * mib, 8 * mib}, memorySizes(second)); diff != "" {
		t.Errorf("chunks for 40 MiB (-want +got):\n%s", diff)
	}
	if second[0] != first[0] {
		t.Errorf("the oldest full chunk %+v was not kept: %+v", first[0], second[0])
	}
	if left := waitGone(idsOf(first[1:]), 5*time.Second); len(left) > 0 {
		t.Errorf("holders stopped by the shrink still run: %v", left)
	}
	u, err = m.Held()
	if err != nil {
		t.Fatal(err)
	}
	if u.Holders.At(host.Memory) != 2 || u.Bytes.At(host.Memory) < 40*mib || u.Bytes.At(host.Memory) >= 80*mib {
		t.Errorf("Usage after the shrink = %+v, want 2 holders with 40 to 80 MiB", u)
	}

	// The same amount again changes nothing.
	if err := m.Apply(Load{Memory: 40 * mib}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second, checkRegistryMatches(t, m)); diff != "" {
		t.Errorf("applying the same amount changed the holders (-before +after):\n%s", diff)
	}

	if err := m.Apply(Load{}); err != nil {
		t.Fatal(err)
	}
	if entries := checkRegistryMatches(t, m); len(entries) != 0 {
		t.Errorf("registry after zero: %+v", entries)
	}
	if left := waitGone(idsOf(second), 5*time.Second); len(left) > 0 {
		t.Errorf("holders still run after zero: %v", left)
	}
	u, err = m.Held()
	if u.CPUTime == 0 {
		t.Errorf("Usage after zero = %+v: the CPU time the holders spent filling is lost", u)
	}
	if u.CPUTime = 0; err != nil || u != (Held{}) {
		t.Errorf("Usage after zero = %+v, %v; want nothing held and no failure", u, err)
	}
}

// applyFilled applies d and waits until its memory holders are filled.
func applyFilled(t *testing.T, m *Manager, d Load) {
	t.Helper()
	if err := m.Apply(d); err != nil {
		t.Fatal(err)
	}
	waitFilled(t, m)
}

// waitFilled waits until every memory holder of m has said it is ready.
func waitFilled(t *testing.T, m *Manager) {
	t.Helper()
	m.mu.Lock()
	ps := slices.Clone(m.memory)
	m.mu.Unlock()
	for _, p := range ps {
		select {
		case <-p.ready:
		case <-p.exited:
			t.Fatalf("memory holder %d ended before it filled: %v", p.Pid, p.waitErr)
		case <-time.After(readyTimeout):
			t.Fatalf("memory holder %d did not fill within %s", p.Pid, readyTimeout)
		}
	}
}

// fakeHolder writes a shell script named like the binary, for holders that
// misbehave: Config.binary may name it.
func fakeHolder(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cro-exporter")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestApplyNeverWaitsForBallastToFill(t *testing.T) {
	cfg := testConfig(t)
	cfg.binary = fakeHolder(t, "exec sleep 600") // fills for ever
	m := openTest(t, cfg)

	if err := m.Apply(Load{Memory: 16 * mib}); err != nil {
		t.Fatalf("Apply starting a holder that is still filling: %v, want nil", err)
	}
	// Recorded at once, for --recover. (The fake's command line is not a
	// holder's, which checkRegistryMatches would rightly refuse.)
	settle(t, m)
	filling := registryOf(t, cfg.StateDir)
	if u, err := m.Held(); len(filling) != 1 || u.Holders.At(host.Memory) != 1 {
		t.Fatalf("while filling: registry %+v, Usage %+v, %v; want the one holder in both", filling, u, err)
	}
	// A holder still filling reads no stdin: the release kills it rather
	// than wait for it to stop.
	if err := m.Apply(Load{}); err != nil {
		t.Errorf("releasing a holder still filling: %v, want nil", err)
	}
	if left := waitGone(idsOf(filling), 5*time.Second); len(left) > 0 {
		t.Errorf("the released holder still runs: %v", left)
	}
	settle(t, m)
	if entries := registryOf(t, cfg.StateDir); len(entries) != 0 {
		t.Errorf("registry after the release: %+v", entries)
	}

	// Close (the daemon's SIGTERM) does not wait for one either.
	if err := m.Apply(Load{Memory: 16 * mib}); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	filling = registryOf(t, cfg.StateDir)
	if err := m.Close(); err != nil {
		t.Errorf("Close with a holder still filling: %v, want nil", err)
	}
	if left := waitGone(idsOf(filling), 0); len(left) > 0 || len(filling) != 1 {
		t.Errorf("holder %+v still runs after Close: %v", filling, left)
	}
}

func TestAHolderThatFailsToFillIsDropped(t *testing.T) {
	cfg := testConfig(t)
	cfg.binary = fakeHolder(t, "echo 'cannot map' >&2; exit 1")
	m := openTest(t, cfg)

	if err := m.Apply(Load{Memory: 16 * mib}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		u, err := m.Held()
		if err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		n := len(m.memory)
		m.mu.Unlock()
		if n == 0 {
			if u.Failures.At(host.Memory) != 1 || u.Holders.At(host.Memory) != 0 {
				t.Errorf("Usage after the holder failed = %+v, want one memory failure and no holder", u)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder that failed is still counted after %s", readyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if entries := checkRegistryMatches(t, m); len(entries) != 0 {
		t.Errorf("registry after the holder failed: %+v", entries)
	}
}

func TestApplyRunsOneCPUHolderAndChangesItsDuty(t *testing.T) {
	m := openTest(t, liveConfig(t))
	if err := m.Apply(Load{CPU: 0.05}); err != nil {
		t.Fatal(err)
	}
	entries := checkRegistryMatches(t, m)
	if len(entries) != 1 || entries[0].Kind != kindCPU || entries[0].Duty != 0.05 {
		t.Fatalf("registry %+v, want one cpu holder at 0.05", entries)
	}
	pid := entries[0].Pid
	time.Sleep(time.Second) // real CPU time to measure
	u, err := m.Held()
	if err != nil {
		t.Fatal(err)
	}
	// Measured: the holder's own CPU time since it started. (Under
	// SCHED_IDLE on a busy machine that may be next to nothing.)
	ticks := kernelCPUTime(t, pid)
	if u.Holders.At(host.CPU) != 1 || u.CPUTime > ticks || u.CPUTime < ticks-50*time.Millisecond {
		t.Errorf("Usage = %+v, want one CPU holder that used %v", u, ticks)
	}
	t.Logf("CPU holder at duty 0.05: %v of CPU time in its first second", u.CPUTime)

	if err := m.Apply(Load{CPU: 0.1}); err != nil {
		t.Fatal(err)
	}
	entries = checkRegistryMatches(t, m)
	if len(entries) != 1 || entries[0].Pid != pid || entries[0].Duty != 0.1 {
		t.Errorf("registry %+v, want the same holder (pid %d) at 0.1", entries, pid)
	}

	if err := m.Apply(Load{}); err != nil {
		t.Fatal(err)
	}
	if entries := checkRegistryMatches(t, m); len(entries) != 0 {
		t.Errorf("registry after CPU 0: %+v", entries)
	}
	if left := waitGone([]procID{{pid, entries[0].StartTime}}, 5*time.Second); len(left) > 0 {
		t.Errorf("the CPU holder still runs after CPU 0")
	}
	if after, err := m.Held(); err != nil || after.Holders.At(host.CPU) != 0 || after.CPUTime < u.CPUTime {
		t.Errorf("Usage after CPU 0 = %+v, %v; want no holder, and the CPU time counter kept (at least %v)", after, err, u.CPUTime)
	}
}

func TestApplyResizesTheDiskFill(t *testing.T) {
	cfg := testConfig(t)
	m := openTest(t, cfg)
	for _, size := range []int64{3 * mib, 1 * mib, 5 * mib, 0} {
		if err := m.Apply(Load{Disk: size}); err != nil {
			t.Fatal(err)
		}
		settle(t, m)
		u, err := m.Held()
		if err != nil {
			t.Fatal(err)
		}
		// Counted by allocated blocks, which a filesystem may round up.
		if u.Bytes.At(host.Disk) < size || u.Bytes.At(host.Disk) > size+mib {
			t.Errorf("after Apply(Disk: %d): Usage.Disk = %d", size, u.Bytes.At(host.Disk))
		}
		if (size > 0) != (u.Holders.At(host.Disk) > 0) {
			t.Errorf("after Apply(Disk: %d): %d fill files", size, u.Holders.At(host.Disk))
		}
	}
}

func TestApplyRejectsBadInputAndStartsNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.FillDir = ""
	m := openTest(t, cfg)
	for _, d := range []Load{
		{Memory: -1},
		{Disk: -1, Memory: 8 * mib},
		{CPU: 1.5, Memory: 8 * mib},
		{CPU: -0.1},
		{CPU: math.NaN(), Memory: 8 * mib},
		{CPU: math.Inf(1)},
		{Disk: mib, Memory: 8 * mib, CPU: 0.1}, // no fill dir
	} {
		if err := m.Apply(d); err == nil {
			t.Errorf("Apply(%+v) passed", d)
		}
		if entries := registryOf(t, cfg.StateDir); len(entries) != 0 || len(m.memory) != 0 || m.cpu != nil {
			t.Errorf("Apply(%+v) started holders: %+v", d, entries)
		}
		if left := ownedHolders(cfg.StateDir); len(left) > 0 {
			t.Errorf("Apply(%+v) left holder processes: %v", d, left)
		}
	}
}

// ownedHolders lists the running holders marked with a state dir.
func ownedHolders(stateDir string) []int {
	owner, _ := ownerOf(stateDir)
	pids, _ := listPids("/proc")
	var found []int
	for _, pid := range pids {
		if mark, ok, _ := readEnviron("/proc", pid, ownerEnv); ok && mark == owner {
			if st, err := readProcStat("/proc", pid); err == nil && !st.exited() {
				found = append(found, pid)
			}
		}
	}
	return found
}

func TestOpenRejectsABadConfig(t *testing.T) {
	good := testConfig(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"a chunk above 1 GiB", func(c *Config) { c.Chunk = MaxChunk + 1 }},
		{"a negative chunk", func(c *Config) { c.Chunk = -1 }},
		{"no state dir", func(c *Config) { c.StateDir = "" }},
		{"a binary not named cro-exporter", func(c *Config) { c.binary = "/bin/sleep" }},
		{"a state dir under a file", func(c *Config) {
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o600)
			c.StateDir = filepath.Join(f, "state")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if m, err := Open(cfg); err == nil {
				m.Close()
				t.Errorf("Open passed")
			}
		})
	}
}

func TestCloseStopsEverythingAndFreesTheLock(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)
	if err := m.Apply(Load{CPU: 0.02, Memory: 40 * mib, Disk: 2 * mib}); err != nil {
		t.Fatal(err)
	}
	ids := idsOf(checkRegistryMatches(t, m))
	if len(ids) != 3 {
		t.Fatalf("%d holders, want 3", len(ids))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Killed and reaped by Close, not left to die.
	if left := waitGone(ids, 0); len(left) > 0 {
		t.Errorf("holders still run after Close: %v", left)
	}
	if entries := registryOf(t, cfg.StateDir); len(entries) != 0 {
		t.Errorf("registry after Close: %+v", entries)
	}
	if names := fillNames(t, cfg.FillDir); len(names) > 0 {
		t.Errorf("fill files after Close: %v", names)
	}
	if err := m.Apply(Load{Memory: mib}); !errors.Is(err, errClosed) {
		t.Errorf("Apply after Close: %v, want errClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	m2 := openTest(t, cfg)
	m2.Close()
}

func TestAHolderThatDiesIsDroppedAndReplaced(t *testing.T) {
	cfg := liveConfig(t)
	m := openTest(t, cfg)
	applyFilled(t, m, Load{Memory: 48 * mib})
	before := checkRegistryMatches(t, m)
	// As the OOM killer would.
	if err := syscall.Kill(before[1].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(idsOf(before[1:2]), 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	var u Held
	for time.Now().Before(deadline) {
		var err error
		if u, err = m.Held(); err != nil {
			t.Fatal(err)
		}
		// Gone from /proc a moment before it is reaped and dropped.
		if u.Holders.At(host.Memory) == 1 && len(registryOf(t, cfg.StateDir)) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if u.Holders.At(host.Memory) != 1 || u.Bytes.At(host.Memory) >= 48*mib {
		t.Errorf("Usage after a holder died = %+v, want the survivor only", u)
	}
	if entries := checkRegistryMatches(t, m); len(entries) != 1 {
		t.Errorf("registry after a holder died: %+v", entries)
	}
	if err := m.Apply(Load{Memory: 48 * mib}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{32 * mib, 16 * mib}, memorySizes(checkRegistryMatches(t, m))); diff != "" {
		t.Errorf("chunks after the next Apply (-want +got):\n%s", diff)
	}
}
