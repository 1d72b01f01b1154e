package main

// Lifecycle tests of the live daemon: the real binary, real holder
// processes, on this machine. They are made safe for a shared host:
//
//   - the disk fill goes on a 64 MiB tmpfs each test mounts (so they need
//     root), never on the machine's disk;
//   - memory targets are computed from /proc/meminfo so that the ballast is
//     a few hundred MiB, in 128 MiB chunks;
//   - the CPU target is a few points above what the host uses, waiting a
//     while for room for it, or 0 when the host stays busy;
//   - every test kills, even when it fails, the daemon, then every holder
//     process that is the daemon's child or is marked with the test's state
//     dir (CRO_HOLDER_OWNER), then unmounts the tmpfs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

// smallDisk mounts a 64 MiB tmpfs to serve as --disk.path and unmounts it
// when the test ends, after the cleanups registered later (the daemon's and
// the holders').
func smallDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the disk fill goes on a 64 MiB tmpfs the test mounts, never on the machine's real disk")
	}
	return mounted(t, "64m", func(dir string) error { return unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m") })
}

// mounted mounts a filesystem on a new temp dir with mount, and unmounts
// it when the test ends, after the cleanups registered later.
func mounted(t *testing.T, what string, mount func(dir string) error) string {
	t.Helper()
	dir := t.TempDir()
	if err := mount(dir); err != nil {
		t.Fatalf("mounting %s on %s: %v", what, dir, err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := unix.Unmount(dir, 0)
			if err == nil {
				return
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				t.Errorf("unmounting %s: %v; detaching it", dir, err)
				unix.Unmount(dir, unix.MNT_DETACH)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}

// testHost is one live test's world: a state dir, a small tmpfs as the disk,
// the daemons started on them, and a cleanup that leaves no holder behind.
type testHost struct {
	t           *testing.T
	state, disk string
	owner       string // the state dir as holders are marked with it
	daemons     []int  // pids of the daemons started
	// command runs the daemon: the Linux binary, or the Windows build
	// under Wine (wineHost).
	command []string
	// wineHolder is, under Wine, the argv[0] that tells the holders: Wine
	// starts them as children of init, with no mark Linux can read.
	wineHolder string
}

func newHost(t *testing.T) *testHost {
	t.Helper()
	skipShort(t, "runs the live daemon and its holders on a tmpfs it mounts, as root")
	binaryPath(t) // built before any of the test's clocks start
	return hostOn(t, smallDisk(t))
}

// hostOn is a host whose disk path is disk, with a fresh state dir. Its
// holders are killed at the test's end, after its daemons are and before
// what was set up earlier (the tmpfs of disk) is undone.
func hostOn(t *testing.T, disk string) *testHost {
	h := &testHost{t: t, disk: disk, state: privateDir(t), command: []string{binaryPath(t)}}
	owner, err := filepath.EvalSymlinks(h.state)
	if err != nil {
		t.Fatal(err)
	}
	h.owner = owner
	t.Cleanup(h.killHolders)
	return h
}

// args are the flags every daemon of h gets; later flags override them.
func (h *testHost) args(extra ...string) []string {
	return append([]string{
		"--state.dir=" + h.state, "--disk.path=" + h.disk, "--disk.reserve=8MiB",
		"--holder.memory-chunk=128MiB", "--interval=1s",
	}, extra...)
}

// start starts a live daemon on h. Every live test sets all three targets:
// a default 40% on this host would hold gigabytes.
func (h *testHost) start(extra ...string) *exporter {
	h.t.Helper()
	return h.startIn(nil, extra...)
}

// startIn starts a live daemon on h in the cgroups dirs (see inCgroups)
// from its first instruction.
func (h *testHost) startIn(dirs []string, extra ...string) *exporter {
	h.t.Helper()
	e := startCommand(h.t, append(inCgroups(dirs), h.command...), h.args(extra...)...)
	h.daemons = append(h.daemons, e.cmd.Process.Pid)
	return e
}

// spawn starts a live daemon on h without waiting for it to listen; its
// stderr goes to the buffer returned, and ctx's end kills it.
func (h *testHost) spawn(ctx context.Context, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	h.t.Helper()
	cmd := exec.CommandContext(ctx, h.command[0], append(h.command[1:], h.args(extra...)...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.daemons = append(h.daemons, cmd.Process.Pid)
	return cmd, stderr
}

// track has h count cmd, a daemon started, among its own and kill it when
// the test ends; the channel returned gets what its Wait returns, which a
// test that takes it puts back for the cleanup.
func (h *testHost) track(cmd *exec.Cmd) chan error {
	h.daemons = append(h.daemons, cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	h.t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return exited
}

// stopSignal is the signal that stops h's daemon cleanly: SIGTERM, or
// under Wine SIGINT, which Wine hands the Windows build as a Ctrl-C.
func (h *testHost) stopSignal() syscall.Signal {
	if h.wineHolder != "" {
		return syscall.SIGINT
	}
	return syscall.SIGTERM
}

func (h *testHost) fillDir() string { return filepath.Join(h.disk, ".cro-fill") }

// holders lists the live holder processes of h: children of its daemons,
// and any process marked with its state dir (holders outlive a daemon
// killed with SIGKILL for a moment, reparented).
func (h *testHost) holders() []proc {
	var hs []proc
	for _, p := range allProcs() {
		if !p.isHolder() || p.dead() {
			continue
		}
		if slices.Contains(h.daemons, p.ppid) || markedWith(p.pid, h.owner) || h.wineHolder != "" && p.argv[0] == h.wineHolder {
			hs = append(hs, p)
		}
	}
	return hs
}

// killHolders kills every holder of h still running.
func (h *testHost) killHolders() {
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := h.holders()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Errorf("holder processes still alive after SIGKILL at cleanup: %v", left)
			return
		}
		for _, p := range left {
			if p.alive() { // the same process, checked just before
				h.t.Logf("cleanup: killing leftover %v", p)
				syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHeld waits until the daemon holds memory in two chunks or more and
// disk fill files, and the CPU burner runs unless the CPU target is 0 or
// other work on the host already meets it (the burner then rightly gives
// way). The metrics show what holders hold from the first tick after start.
func (h *testHost) waitHeld(e *exporter, cpuTarget float64) {
	h.t.Helper()
	waitFor(h.t, 15*time.Second, "the daemon holds memory, CPU and disk", func() (bool, string) {
		body := e.metrics(h.t)
		mem := value(body, `cro_holders{resource="memory"}`)
		cpu := value(body, `cro_holders{resource="cpu"}`)
		disk := value(body, `cro_holders{resource="disk"}`)
		usage := value(body, `cro_usage_ratio{resource="cpu"}`)
		files := len(fillFiles(h.t, h.fillDir()))
		cpuOK := cpuTarget == 0 && cpu == 0 || cpuTarget > 0 && (cpu == 1 || usage >= cpuTarget)
		return mem >= 2 && disk >= 1 && files >= 1 && cpuOK, fmt.Sprintf(
			"cro_holders memory=%v cpu=%v disk=%v, %d fill files, cpu usage %.3f (target %.3f)", mem, cpu, disk, files, usage, cpuTarget)
	})
}

// signalAndWait sends sig to the daemon and waits up to limit for it to
// exit; it returns how long the exit took and the exit error.
func signalAndWait(t *testing.T, e *exporter, sig os.Signal, limit time.Duration) (time.Duration, error) {
	t.Helper()
	sent := time.Now()
	if err := e.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-e.exited:
		e.exited <- err // for startLive's cleanup
		return time.Since(sent), err
	case <-time.After(limit):
		t.Fatalf("cro-exporter still runs %s after %v", limit, sig)
		return 0, nil
	}
}

// stop ends e with SIGTERM, as systemd does, and fails the test unless it
// exits cleanly within 5 s; it returns how long that took.
func stop(t *testing.T, e *exporter) time.Duration {
	t.Helper()
	return stopWith(t, e, syscall.SIGTERM)
}

// stop stops h's daemon e as stop does, with h's stop signal.
func (h *testHost) stop(e *exporter) time.Duration {
	h.t.Helper()
	return stopWith(h.t, e, h.stopSignal())
}

func stopWith(t *testing.T, e *exporter, sig syscall.Signal) time.Duration {
	t.Helper()
	took, err := signalAndWait(t, e, sig, 5*time.Second)
	if err != nil {
		t.Fatalf("exit after %v: %v\n%s", sig, err, e.stderr)
	}
	return took
}

// proc is a process as /proc shows it, read with procfs.
type proc struct {
	pid   int
	ppid  int
	state byte
	start uint64  // field 22 of stat: with the pid, names one process
	cpu   float64 // user plus system time, in seconds
	argv  []string
}

func (p proc) String() string {
	return fmt.Sprintf("pid %d (%s, parent %d, state %c)", p.pid, strings.Join(p.argv, " "), p.ppid, p.state)
}

func readProc(pid int) (proc, bool) {
	kp, err := procfs.NewProc(pid)
	if err != nil {
		return proc{}, false
	}
	return procOf(kp)
}

func procOf(kp procfs.Proc) (proc, bool) {
	st, err := kp.Stat()
	if err != nil || st.State == "" {
		return proc{}, false
	}
	argv, _ := kp.CmdLine()
	return proc{pid: kp.PID, ppid: st.PPID, state: st.State[0], start: st.Starttime, cpu: st.CPUTime(), argv: argv}, true
}

func allProcs() []proc {
	kps, _ := procfs.AllProcs()
	var ps []proc
	for _, kp := range kps {
		if p, ok := procOf(kp); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// childrenOf lists the live children of pid.
func childrenOf(pid int) []proc {
	var ps []proc
	for _, p := range allProcs() {
		if p.ppid == pid && !p.dead() {
			ps = append(ps, p)
		}
	}
	return ps
}

func (p proc) isHolder() bool {
	// The Windows build's, under Wine, is cro-exporter.exe.
	return len(p.argv) >= 2 && strings.HasSuffix(strings.TrimSuffix(p.argv[0], ".exe"), "cro-exporter") && p.argv[1] == "holder"
}

func (p proc) kind() string {
	if len(p.argv) >= 3 {
		return p.argv[2]
	}
	return ""
}

// sizeOf is a memory holder's --size.
func sizeOf(p proc) int64 {
	size, _ := strconv.ParseInt(strings.TrimPrefix(p.argv[len(p.argv)-1], "--size="), 10, 64)
	return size
}

// dead is a zombie, or a process that is gone.
func (p proc) dead() bool { return p.state == 'Z' || p.state == 'X' }

// alive tells whether p still runs: the same pid and start time, not a
// zombie.
func (p proc) alive() bool {
	q, ok := readProc(p.pid)
	return ok && q.start == p.start && !q.dead()
}

// markedWith tells whether pid's environment marks it as a holder of the
// state dir owner (holder/process.go: CRO_HOLDER_OWNER).
func markedWith(pid int, owner string) bool {
	kp, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	env, err := kp.Environ()
	return err == nil && slices.Contains(env, "CRO_HOLDER_OWNER="+owner)
}

func aliveOf(ps []proc) []proc {
	var alive []proc
	for _, p := range ps {
		if p.alive() {
			alive = append(alive, p)
		}
	}
	return alive
}

func countKind(ps []proc, kind string) int {
	n := 0
	for _, p := range ps {
		if p.kind() == kind {
			n++
		}
	}
	return n
}

// rss is VmRSS of pid in bytes, 0 when it is gone.
func rss(pid int) int64 {
	if kp, err := procfs.NewProc(pid); err == nil {
		if status, err := kp.NewStatus(); err == nil {
			return int64(status.VmRSS)
		}
	}
	return 0
}

// hostProc is this machine's /proc.
func hostProc(t *testing.T) procfs.FS {
	t.Helper()
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// meminfo is MemTotal and MemAvailable, in bytes.
func meminfo(t *testing.T) (total, avail int64) {
	t.Helper()
	m, err := hostProc(t).Meminfo()
	if err != nil {
		t.Fatal(err)
	}
	if m.MemTotalBytes == nil || m.MemAvailableBytes == nil {
		t.Fatalf("/proc/meminfo lacks MemTotal or MemAvailable")
	}
	return int64(*m.MemTotalBytes), int64(*m.MemAvailableBytes)
}

// memoryTarget is the --target.memory that makes the daemon hold about
// ballast bytes now: it brings total usage to the target plus its margin of
// 0.005, counting what is in use now (itself too, a few MiB) as real.
func memoryTarget(t *testing.T, ballast int64) string {
	t.Helper()
	total, avail := meminfo(t)
	target := float64(total-avail+ballast)/float64(total) - 0.005
	if target <= 0 || target > 0.85 {
		t.Fatalf("no memory target holds %d MiB on this host (MemTotal %d MiB, MemAvailable %d MiB)", ballast/mib, total/mib, avail/mib)
	}
	return strconv.FormatFloat(target, 'f', 5, 64)
}

// cpuTimes is the busy and total seconds of /proc/stat's cpu line, counted
// as the collector counts them.
func cpuTimes(t *testing.T) (busy, total float64) {
	t.Helper()
	st, err := hostProc(t).Stat()
	if err != nil {
		t.Fatal(err)
	}
	c := st.CPUTotal
	busy = c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	return busy, busy + c.Idle + c.Iowait
}

// cpuTarget is a --target.cpu a few points above the host's CPU usage, so
// that the burner runs at a small duty, or 0 when the host is too busy for
// a burner to run at all (other engineers' work on this shared machine, a
// loaded CI runner): a test that cannot do without the burner fails on 0.
//
// The daemon plans the burner's duty from real CPU usage averaged over
// minutes, which starts at the since-boot fraction of its first sample, and
// gives way at once while real CPU is at or above the setpoint. A target of
// since-boot + 0.06 thus caps the duty near 0.065, and the burner runs while
// the host is under that target: cpuTarget waits for a moment when it is.
func cpuTarget(t *testing.T) float64 {
	t.Helper()
	b, total := cpuTimes(t)
	sinceBoot := b / total
	target := math.Round((sinceBoot+0.06)*1e4) / 1e4
	if target > 0.85 {
		t.Logf("the host's CPU has been busy since boot (%.2f): CPU target 0, no burner in this run", sinceBoot)
		return 0
	}
	now, ok := quietCPU(t, target-0.02)
	if !ok {
		t.Logf("the host's CPU stayed busy (%.2f now, %.2f since boot) for %s: CPU target 0, no burner in this run", now, sinceBoot, quietWait)
		return 0
	}
	t.Logf("CPU %.3f now, %.3f since boot: CPU target %.4f", now, sinceBoot, target)
	return target
}

// quietWait is how long quietCPU waits for the host's CPU to quieten.
const quietWait = 30 * time.Second

// quietCPU is the host's busy share of its CPUs over half a second, waiting
// up to quietWait for a moment when it is at most limit, so that a test
// that wants a CPU burner is not done out of one by a passing load; ok
// tells whether that moment came.
func quietCPU(t *testing.T, limit float64) (now float64, ok bool) {
	t.Helper()
	deadline := time.Now().Add(quietWait)
	for {
		b0, t0 := cpuTimes(t)
		time.Sleep(500 * time.Millisecond)
		b1, t1 := cpuTimes(t)
		if now = (b1 - b0) / max(1, t1-t0); now <= limit {
			return now, true
		}
		if time.Now().After(deadline) {
			return now, false
		}
		t.Logf("the host's CPU is busy (%.2f, above %.2f): waiting for room for a burner", now, limit)
		time.Sleep(time.Second)
	}
}

func ratioFlag(r float64) string { return strconv.FormatFloat(r, 'f', 4, 64) }

// value is the value of series in a scrape, NaN when it is missing.
func value(body, series string) float64 {
	line := metricLine(body, series)
	if line == "" {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// waitFor polls cond every 100 ms until it holds, failing the test after
// timeout with cond's last description of the state.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fillFiles maps the names of the files in dir to their allocated bytes; a
// missing dir has none.
func fillFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "fill-") {
			continue // the marker that makes the dir ours
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files[e.Name()] = info.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return files
}

func sortedNames(files map[string]int64) []string {
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkAveragesSaved checks that the state dir holds the averages, as JSON,
// and returns the file.
func checkAveragesSaved(t *testing.T, state string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(state, "averages.json"))
	if err != nil {
		t.Fatalf("averages not saved: %v", err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("averages.json is not JSON: %v\n%s", err, data)
	}
	return data
}

func TestSIGTERMStopsEveryHolderAndRemovesEveryFillFile(t *testing.T) {
	h := newHost(t)
	cpu := cpuTarget(t)
	e := h.start("--target.memory="+memoryTarget(t, 350*mib), "--target.cpu="+ratioFlag(cpu), "--target.disk=0.5")
	h.waitHeld(e, cpu)
	held := h.holders()
	if n := countKind(held, "memory"); n < 2 {
		t.Fatalf("%d memory holder processes, want 2 or more: %v", n, held)
	}
	if files := fillFiles(t, h.fillDir()); len(files) == 0 {
		t.Fatalf("no fill file in %s", h.fillDir())
	}
	t.Logf("holders: %v", held)

	took := stop(t, e)
	t.Logf("exited 0 %v after SIGTERM", took.Round(time.Millisecond))
	// The daemon waits for its holders before it exits: none may be left.
	if left := append(aliveOf(held), h.holders()...); len(left) > 0 {
		t.Errorf("holder processes alive after the daemon exited: %v", left)
	}
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left in %s: %v", h.fillDir(), sortedNames(files))
	}
	checkAveragesSaved(t, h.state)
}

func TestKillNineOfTheDaemonLeavesNoHolderAfterOneSecond(t *testing.T) {
	testKillNine(t, newHost(t))
}

// testKillNine kills h's daemon with SIGKILL once it holds memory, CPU and
// disk: its holders must be gone within a second.
func testKillNine(t *testing.T, h *testHost) {
	cpu := cpuTarget(t)
	args := []string{"--target.memory=" + memoryTarget(t, 350*mib), "--target.cpu=" + ratioFlag(cpu), "--target.disk=0.5"}
	e := h.start(args...)
	h.waitHeld(e, cpu)
	held := h.holders()
	if n := countKind(held, "memory"); n < 2 {
		t.Fatalf("%d memory holder processes, want 2 or more: %v", n, held)
	}
	files := fillFiles(t, h.fillDir())

	killed := time.Now()
	if err := e.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var left []proc
	for {
		// Those noted, and any the daemon started since.
		left = append(aliveOf(held), h.holders()...)
		if len(left) == 0 || time.Since(killed) > time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("holder processes alive 1 s after kill -9 of the daemon: %v", left)
	}
	t.Logf("all %d holders gone %v after kill -9", len(held), time.Since(killed).Round(time.Millisecond))
	e.exited <- <-e.exited // reaped; kept for the cleanup

	// The fill files stay, as expected: the next start adopts them.
	after := fillFiles(t, h.fillDir())
	if !slices.Equal(sortedNames(after), sortedNames(files)) {
		t.Fatalf("fill files changed when the daemon was killed: %v, were %v", sortedNames(after), sortedNames(files))
	}
	e = h.start(args...)
	waitFor(t, 10*time.Second, "the new daemon counts the fill files it adopted", func() (bool, string) {
		disk := value(e.metrics(t), `cro_holders{resource="disk"}`)
		return disk >= 1, fmt.Sprintf("cro_holders{resource=\"disk\"} %v", disk)
	})
	adopted := fillFiles(t, h.fillDir())
	disk := value(e.metrics(t), `cro_holders{resource="disk"}`)
	if !slices.Equal(sortedNames(adopted), sortedNames(files)) || disk != float64(len(adopted)) {
		t.Errorf("after a restart: fill files %v, cro_holders{resource=\"disk\"} %v; want the files before, %v, adopted and counted",
			sortedNames(adopted), disk, sortedNames(files))
	}

	took := h.stop(e)
	t.Logf("restarted daemon exited 0 %v after %v", took.Round(time.Millisecond), h.stopSignal())
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left in %s after %v: %v", h.fillDir(), h.stopSignal(), sortedNames(files))
	}
	if left := h.holders(); len(left) > 0 {
		t.Errorf("holder processes alive after the daemon exited: %v", left)
	}
}

func TestASecondDaemonRefusesNamingTheFirstsPid(t *testing.T) {
	h := newHost(t)
	targets := []string{"--target.cpu=0", "--target.memory=0", "--target.disk=0"}
	first := h.start(targets...)
	firstPid := first.cmd.Process.Pid

	second := exec.Command(binaryPath(t), append([]string{"--web.listen-address=127.0.0.1:0", "--log.format=json"}, h.args(targets...)...)...)
	var stderr bytes.Buffer
	second.Stderr = &stderr
	started := time.Now()
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := h.track(second)
	var err error
	select {
	case err = <-exited:
		exited <- err
	case <-time.After(5 * time.Second):
		t.Fatalf("the second daemon still runs 5 s later")
	}
	took := time.Since(started)
	if _, ok := errors.AsType[*exec.ExitError](err); !ok {
		t.Fatalf("second daemon: %v, want a non-zero exit; stderr:\n%s", err, &stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("pid %d", firstPid)) {
		t.Fatalf("second daemon's stderr: want one line naming pid %d, got:\n%s", firstPid, &stderr)
	}
	if strings.Contains(stderr.String(), `"listening"`) {
		t.Errorf("the second daemon opened a listener:\n%s", &stderr)
	}
	t.Logf("second daemon exited (%v) after %v: %s", err, took.Round(time.Millisecond), lines[0])
	if code, _ := first.get(t, "/metrics"); code != 200 {
		t.Errorf("the first daemon no longer serves: GET /metrics = %d", code)
	}
}

// recoverHostCmd runs cro-exporter --recover and returns its stdout, with
// stderr after it.
func recoverHostCmd(t *testing.T, state, disk string) (string, error) {
	t.Helper()
	return recoverWith(t, []string{binaryPath(t)}, state, disk)
}

// recoverWith is recoverHostCmd with the binary run by command.
func recoverWith(t *testing.T, command []string, state, disk string) (string, error) {
	t.Helper()
	cmd := exec.Command(command[0], append(command[1:], "--recover", "--state.dir="+state, "--disk.path="+disk)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("--recover still runs after 30 s:\n%s", &out)
		return "", nil
	}
}

// fillFileCount is "1 fill file" or "n fill files", as --recover says it.
func fillFileCount(n int) string {
	if n == 1 {
		return "1 fill file"
	}
	return strconv.Itoa(n) + " fill files"
}

func TestRecover(t *testing.T) {
	h := newHost(t)
	testRecover(t, h)
}

// testRecover runs --recover beside h's daemon holding memory and disk,
// then again, then on fresh dirs. Under Wine the report names pids Linux
// does not know, Windows', and is checked for the kinds stopped; and paths
// as Windows spells them.
func testRecover(t *testing.T, h *testHost) {
	e := h.start("--target.memory="+memoryTarget(t, 350*mib), "--target.cpu=0", "--target.disk=0.5")
	h.waitHeld(e, 0)
	held := h.holders()
	files := fillFiles(t, h.fillDir())
	var fillBytes int64
	for _, b := range files {
		fillBytes += b
	}

	// (a) A live daemon holding memory and disk.
	out, err := recoverWith(t, h.command, h.state, h.disk)
	t.Logf("--recover:\n%s", out)
	if err != nil {
		t.Fatalf("--recover: %v", err)
	}
	fillDir := h.fillDir()
	if h.wineHolder != "" {
		fillDir = strings.ReplaceAll(fillDir, "/", `\`)
	}
	want := []string{
		fmt.Sprintf("Removed %s from %s, freeing", fillFileCount(len(files)), fillDir),
		fmt.Sprintf("(%d bytes)", fillBytes),
		"Host usage now: CPU ",
	}
	if h.wineHolder == "" {
		want = append(want, fmt.Sprintf("Stopped the cro-exporter daemon (pid %d).", e.cmd.Process.Pid))
		for _, p := range held {
			want = append(want, fmt.Sprintf("%s (pid %d)", p.kind(), p.pid))
		}
	} else {
		want = append(want, "Stopped the cro-exporter daemon (pid ")
		if got, n := strings.Count(out, "memory (pid "), countKind(held, "memory"); got != n {
			t.Errorf("--recover's report names %d memory holders, want %d", got, n)
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("--recover's report lacks %q", w)
		}
	}
	select {
	case err := <-e.exited:
		e.exited <- err
		if err != nil {
			t.Errorf("the daemon --recover stopped exited with %v\n%s", err, e.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the daemon still runs 5 s after --recover returned")
	}
	if left := append(aliveOf(held), h.holders()...); len(left) > 0 {
		t.Errorf("holder processes alive after --recover: %v", left)
	}
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left after --recover: %v", sortedNames(files))
	}
	// The daemon saved the averages before it let go of the lock --recover
	// waited for: they are final now, and --recover keeps them.
	saved := checkAveragesSaved(t, h.state)

	// (b) Again: nothing left.
	out, err = recoverWith(t, h.command, h.state, h.disk)
	if err != nil || !strings.Contains(out, "Nothing to recover") {
		t.Errorf("--recover a second time: %v, want exit 0 and \"Nothing to recover\":\n%s", err, out)
	}
	if again := checkAveragesSaved(t, h.state); !bytes.Equal(again, saved) {
		t.Errorf("--recover changed averages.json:\n%s\nwas\n%s", again, saved)
	}

	// (c) Nothing ever started here.
	fresh := filepath.Join(t.TempDir(), "state")
	out, err = recoverWith(t, h.command, fresh, t.TempDir())
	if err != nil || !strings.Contains(out, "Nothing to recover") {
		t.Errorf("--recover on fresh dirs: %v, want exit 0 and \"Nothing to recover\":\n%s", err, out)
	}
	if _, err := os.Lstat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--recover on a state dir that did not exist created it (%v)", err)
	}
}

// logLine is a line of the daemon's JSON log.
type logLine struct {
	Time            time.Time `json:"time"`
	Msg             string    `json:"msg"`
	Reason          string    `json:"reason"`
	MemoryAvailable int64     `json:"memory_available_bytes"`
	Memory          int64     `json:"memory_bytes"`
	WasMemory       int64     `json:"was_memory_bytes"`
}

// settledMemAvailable waits (up to 5 s) until MemAvailable has moved less
// than 8 MiB over a second, and returns MemTotal and the last MemAvailable.
func settledMemAvailable(t *testing.T) (total, avail int64) {
	t.Helper()
	var window []int64 // the last second's readings, every 100 ms
	deadline := time.Now().Add(5 * time.Second)
	for {
		total, avail = meminfo(t)
		window = append(window, avail)
		if len(window) > 11 {
			window = window[1:]
		}
		if len(window) == 11 && slices.Max(window)-slices.Min(window) < 8*mib {
			return total, avail
		}
		if time.Now().After(deadline) {
			t.Logf("MemAvailable still moves (%d..%d MiB over the last second); going on", slices.Min(window)/mib, slices.Max(window)/mib)
			return total, avail
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDryRunHoldsNothingButShowsWhatItWould(t *testing.T) {
	h := newHost(t)
	cpu := cpuTarget(t)
	e := start(t, h.args("--target.memory="+memoryTarget(t, 350*mib), "--target.cpu="+ratioFlag(cpu), "--target.disk=0.5")...)
	h.daemons = append(h.daemons, e.cmd.Process.Pid)

	body := e.metrics(t)
	for _, series := range []string{
		`cro_holders{resource="memory"}`, `cro_holder_bytes{resource="memory"}`,
		`cro_holders{resource="disk"}`, `cro_holder_bytes{resource="disk"}`,
	} {
		if v := value(body, series); !(v > 0) {
			t.Errorf("%s = %v, want what the dry run would hold, above 0", series, v)
		}
	}
	t.Logf("would hold: memory %v bytes in %v, disk %v bytes in %v",
		value(body, `cro_holder_bytes{resource="memory"}`), value(body, `cro_holders{resource="memory"}`),
		value(body, `cro_holder_bytes{resource="disk"}`), value(body, `cro_holders{resource="disk"}`))

	// Over two ticks and more: no child process, no fill dir.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if c := childrenOf(e.cmd.Process.Pid); len(c) > 0 {
			t.Fatalf("the dry run started processes: %v", c)
		}
		if hs := h.holders(); len(hs) > 0 {
			t.Fatalf("holder processes of the dry run's state dir: %v", hs)
		}
		if _, err := os.Lstat(h.fillDir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the dry run made %s (%v)", h.fillDir(), err)
		}
	}
	if v := value(e.metrics(t), `cro_holder_bytes{resource="memory"}`); !(v > 0) {
		t.Errorf(`after two ticks cro_holder_bytes{resource="memory"} = %v, want above 0`, v)
	}
	// CPU is planned from the first real interval, not the since-boot
	// figure of the first sample: look after a few ticks.
	if body := e.metrics(t); cpu > 0 {
		n, usage := value(body, `cro_holders{resource="cpu"}`), value(body, `cro_usage_ratio{resource="cpu"}`)
		if n != 1 && usage < cpu {
			t.Errorf(`cro_holders{resource="cpu"} = %v, want 1: CPU usage %.3f is under the target %.3f`, n, usage, cpu)
		}
	}
}

func TestARecoverWhileADaemonStartsLeavesNoDaemonRunning(t *testing.T) {
	h := newHost(t)
	// The recover starts at delays that fall before, around and after the
	// moment the daemon takes the state dir's lock: whichever comes first,
	// no daemon started before the recover may run after it.
	for _, delay := range []time.Duration{0, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		cmd, stderr := h.spawn(t.Context(), "--web.listen-address=127.0.0.1:0", "--target.cpu=0", "--target.memory=0", "--target.disk=0.5")
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		time.Sleep(delay)
		out, err := recoverHostCmd(t, h.state, h.disk)
		if err != nil {
			t.Errorf("recover %v after the daemon's start: %v\n%s", delay, err, out)
		}
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("recover %v after the daemon's start said:\n%s\nand the daemon still ran 2 s later; it said:\n%s", delay, out, stderr)
		}
		h.killHolders()
	}
}
