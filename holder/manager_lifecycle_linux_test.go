package holder

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// parentSpec is a holder parent for cfg holding a little of everything.
func parentSpec(cfg Config) testParentSpec {
	return testParentSpec{
		Binary: cfg.binary, StateDir: cfg.StateDir, FillDir: cfg.FillDir, Chunk: cfg.Chunk,
		Load:   Load{CPU: 0.02, Memory: 40 * mib, Disk: 2 * mib},
		OnTerm: "close",
	}
}

func TestKill9OfTheParentLeavesNoHolderAliveAfterOneSecond(t *testing.T) {
	cfg := liveConfig(t)
	p := startParent(t, "holder.test", parentSpec(cfg))
	if len(p.holders) != 3 {
		t.Fatalf("the parent runs %d holders, want 3", len(p.holders))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if left := waitGone(p.holders, time.Second); len(left) > 0 {
		t.Fatalf("holders alive 1 s after kill -9 of their parent: %v", left)
	}
	t.Logf("every holder gone %v after kill -9 of the parent", time.Since(killed).Round(time.Millisecond))
}

func TestASecondManagerNamesThePidHoldingTheLock(t *testing.T) {
	cfg := liveConfig(t)
	spec := parentSpec(cfg)
	spec.Load = Load{Memory: 8 * mib}
	p := startParent(t, "holder.test", spec)

	m, err := Open(cfg)
	if err == nil {
		m.Close()
		t.Fatal("a second manager opened the locked state dir")
	}
	var locked *lockedError
	if !errors.As(err, &locked) || locked.Pid != p.cmd.Process.Pid {
		t.Fatalf("Open: %v, want a lockedError naming pid %d", err, p.cmd.Process.Pid)
	}
	want := fmt.Sprintf("another cro-exporter (pid %d) holds %s", p.cmd.Process.Pid, filepath.Join(cfg.StateDir, lockFile))
	if err.Error() != want {
		t.Errorf("Open: %q, want %q", err, want)
	}
	if entries := registryOf(t, cfg.StateDir); len(entries) != 1 {
		t.Errorf("the refused Open touched the registry: %+v", entries)
	}
	if left := waitGone(p.holders, 0); len(left) != 1 {
		t.Errorf("the refused Open touched the holders: %v still run, want 1", left)
	}

	// A crash leaves no stale lock.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.exited <- nil
	openTest(t, cfg)
}

// startBareHolder starts a memory holder of 1 MiB of the test binary outside
// any manager, its stdin held open by the test, marked with owner unless
// owner is "". With orphan, it is started through a shell that exits at
// once, so that its parent is gone. Cleanup kills it.
func startBareHolder(t *testing.T, owner string, orphan bool) procID {
	t.Helper()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdinW.Close() })
	defer stdinR.Close()
	env := os.Environ()
	if owner != "" {
		env = append(env, ownerEnv+"="+owner)
	}
	var cmd *exec.Cmd
	if orphan {
		cmd = exec.Command("/bin/sh", "-c", `"$0" holder memory --size=1048576 <&3 3<&- >/dev/null 2>&1 & echo $!`, testBinary)
		cmd.ExtraFiles = []*os.File{stdinR}
	} else {
		cmd = exec.Command(testBinary, "holder", "memory", "--size=1048576")
		cmd.Stdin = stdinR
	}
	cmd.Env = env
	var pid int
	if orphan {
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	// Until it has exec'd, it is not yet a holder.
	deadline := time.Now().Add(10 * time.Second)
	for {
		argv, _ := readCmdline("/proc", pid)
		if holderKindOf(argv) == kindMemory {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not become a holder: %q", pid, argv)
		}
		time.Sleep(5 * time.Millisecond)
	}
	id := idOf(t, pid)
	killOnCleanup(t, id)
	return id
}

// startSleep starts `sleep 60`, an unrelated process. Cleanup kills it.
func startSleep(t *testing.T) procID {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return idOf(t, cmd.Process.Pid)
}

// reusedPids writes a registry whose every entry names a running process
// that is not what the entry says: two unrelated `sleep 60` (one with
// another start time, one with its real start time but its own command
// line) and a real holder with another start time. It returns them.
func reusedPids(t *testing.T, stateDir string) []procID {
	t.Helper()
	sleep1, sleep2 := startSleep(t), startSleep(t)
	holder := startBareHolder(t, "", false)
	entries := []holderEntry{
		{Pid: sleep1.pid, StartTime: sleep1.start - 1, Kind: kindMemory, Size: mib},
		{Pid: sleep2.pid, StartTime: sleep2.start, Kind: kindCPU, Duty: 0.5},
		{Pid: holder.pid, StartTime: holder.start + 1, Kind: kindMemory, Size: mib},
	}
	if err := saveRegistry(stateDir, entries); err != nil {
		t.Fatal(err)
	}
	return []procID{sleep1, sleep2, holder}
}

func TestAPidReusedByAnotherProcessIsNeverSignalled(t *testing.T) {
	skipShort(t, "runs real holder processes")
	// Every signal Open or Recover sends (SIGTERM, SIGKILL) ends these
	// processes, so alive means never signalled.
	cfg := testConfig(t)
	ids := reusedPids(t, cfg.StateDir)
	m := openTest(t, cfg)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for _, id := range ids {
		if !id.alive() {
			t.Errorf("Open signalled pid %d, which is not its holder", id.pid)
		}
	}

	ids = reusedPids(t, cfg.StateDir)
	rep, err := Recover(cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for _, id := range ids {
		if !id.alive() {
			t.Errorf("Recover signalled pid %d, which is not its holder", id.pid)
		}
	}
	if rep.Failed() || len(rep.Holders) != 0 {
		t.Errorf("Recover reported %+v", rep)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, id := range ids {
		if !strings.Contains(notes, fmt.Sprintf("pid %d in the holder registry", id.pid)) {
			t.Errorf("no note that pid %d was left alone:\n%s", id.pid, notes)
		}
	}
}

// leftovers are the holder processes an earlier run may leave beside a
// state dir: one in its registry (marked with it, as every holder a manager
// starts is), one marked with it, one whose parent is gone; and one of
// another state dir whose parent lives, to be left alone.
type leftovers struct {
	registered, marked, orphan, otherOwner procID
}

func startLeftovers(t *testing.T, cfg Config) leftovers {
	t.Helper()
	owner, err := ownerOf(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	l := leftovers{
		registered: startBareHolder(t, owner, false),
		marked:     startBareHolder(t, owner, false),
		orphan:     startBareHolder(t, "", true),
		otherOwner: startBareHolder(t, t.TempDir(), false),
	}
	if err := saveRegistry(cfg.StateDir, []holderEntry{
		{Pid: l.registered.pid, StartTime: l.registered.start, Kind: kindMemory, Size: mib},
	}); err != nil {
		t.Fatal(err)
	}
	if st, err := readProcStat("/proc", l.orphan.pid); err != nil || st.PPid == os.Getpid() {
		t.Fatalf("the orphan's parent is %d (%v), want it gone", st.PPid, err)
	}
	return l
}

func TestOpenKillsTheHoldersAnEarlierRunLeft(t *testing.T) {
	cfg := liveConfig(t)
	l := startLeftovers(t, cfg)
	registered, marked, orphan, otherOwner := l.registered, l.marked, l.orphan, l.otherOwner

	openTest(t, cfg)
	if left := waitGone([]procID{registered, marked, orphan}, 0); len(left) > 0 {
		t.Errorf("Open left an earlier run's holders running: %v", left)
	}
	if !otherOwner.alive() {
		t.Errorf("Open killed a holder of another state dir whose parent lives")
	}
	if entries := registryOf(t, cfg.StateDir); len(entries) != 0 {
		t.Errorf("registry after Open: %+v", entries)
	}
}

func TestOpenMovesACorruptRegistryAsideAndStillFindsLeftovers(t *testing.T) {
	cfg := liveConfig(t)
	owner, err := ownerOf(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	marked := startBareHolder(t, owner, false)
	path := filepath.Join(cfg.StateDir, registryFile)
	if err := os.WriteFile(path, []byte(`{"version": 1, "holders": [{"pid": `), 0o600); err != nil {
		t.Fatal(err)
	}
	openTest(t, cfg)
	if marked.alive() {
		t.Errorf("the scan of /proc missed a holder marked with the state dir")
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Errorf("corrupt registry moved to %v, want one file", aside)
	}
}

func TestOpenAdoptsTheFillFilesAnEarlierRunLeft(t *testing.T) {
	cfg := liveConfig(t)
	p := startParent(t, "holder.test", parentSpec(cfg))
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.exited <- nil
	before := fillNames(t, cfg.FillDir)
	if len(before) == 0 {
		t.Fatal("the parent left no fill files")
	}
	m := openTest(t, cfg)
	u, err := m.Held()
	if err != nil {
		t.Fatal(err)
	}
	if u.Holders.At(host.Disk) != len(before) || u.Bytes.At(host.Disk) < 2*mib {
		t.Errorf("Usage after Open = %+v, want the %d fill files left (2 MiB)", u, len(before))
	}
	if err := m.Apply(Load{Disk: 3 * mib}); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	if after := fillNames(t, cfg.FillDir); after[0] != before[0] {
		t.Errorf("fill files %v after growing, want %v kept and grown", after, before)
	}
}
