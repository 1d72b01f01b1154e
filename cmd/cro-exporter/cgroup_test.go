package main

// Live tests of the daemon in cgroups of its own: child cgroups of the test
// process's, made in the v1 hierarchies of this machine, which the daemon
// enters before its first instruction (inCgroups).

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childCgroup makes a child of the test process's cgroup in the v1
// hierarchy of controller, writes settings into it, and when the test
// ends, after the cleanups registered later (the daemon's), kills every
// process left in it and removes it. It skips where the hierarchy is not
// mounted at /sys/fs/cgroup/<controller>.
func childCgroup(t *testing.T, controller string, settings map[string]string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes cgroups")
	}
	own, ok := ownCgroup(t, controller)
	root := filepath.Join("/sys/fs/cgroup", controller)
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil || !ok {
		t.Skipf("no cgroup v1 %s hierarchy at %s", controller, root)
	}
	dir, err := os.MkdirTemp(filepath.Join(root, own), "cro-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	for name, value := range settings {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o644); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return dir
}

// ownCgroup is the test process's cgroup in the v1 hierarchy of
// controller, from /proc/self/cgroup.
func ownCgroup(t *testing.T, controller string) (string, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), controller) {
			return parts[2], true
		}
	}
	return "", false
}

// removeCgroup kills every process in dir until none is left, then
// removes it, within 5 s.
func removeCgroup(t *testing.T, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			t.Errorf("cgroup %s: %v", dir, err)
			return
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			err = syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				t.Logf("cleanup: killing pid %d left in %s", pid, dir)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("cgroup %s: processes %v left or not removable: %v", dir, pids, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inCgroups is a wrapper (for startWrapped) that moves its own process
// into each of the cgroups dirs, then execs the command: the daemon is in
// them from its first instruction.
func inCgroups(dirs []string) []string {
	if len(dirs) == 0 {
		return nil
	}
	script := `while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 1; shift; done; shift; exec "$@"`
	return append(append([]string{"/bin/sh", "-c", script, "sh"}, dirs...), "--")
}

// TestAPidsLimitRefusesHoldersAndTheDaemonLives: in a pids cgroup of 12,
// where the daemon's own threads leave too few for a holder's, the daemon
// starts no holder, says so once and counts it, and lives on (no Go runtime
// crash for want of a thread): SIGTERM ends it cleanly, fill removed.
func TestAPidsLimitRefusesHoldersAndTheDaemonLives(t *testing.T) {
	h := newHost(t)
	dir := childCgroup(t, "pids", map[string]string{"pids.max": "12"})
	e := h.startIn([]string{dir}, "--target.memory="+memoryTarget(t, 256*mib), "--target.cpu=0.9", "--target.disk=0.5")
	waitFor(t, 10*time.Second, "refused memory and cpu holder starts", func() (bool, string) {
		body := e.metrics(t)
		mem, cpu := value(body, `cro_holder_starts_refused_total{resource="memory"}`), value(body, `cro_holder_starts_refused_total{resource="cpu"}`)
		return mem >= 3 && cpu >= 3, metricLine(body, `cro_holder_starts_refused_total{resource="memory"}`) + ", " + metricLine(body, `cro_holder_starts_refused_total{resource="cpu"}`)
	})
	body := e.metrics(t)
	for _, r := range []string{"memory", "cpu"} {
		if v := value(body, `cro_holder_failures_total{resource="`+r+`"}`); v != 0 {
			t.Errorf("cro_holder_failures_total{resource=%q} = %v; want 0: no start may fail", r, v)
		}
	}
	if held := h.holders(); len(held) > 0 {
		t.Errorf("holders running in a pids cgroup of 12: %v", held)
	}
	for _, kind := range []string{"memory", "cpu"} {
		if n := strings.Count(e.stderr.String(), "not starting "+kind+" holders"); n != 1 {
			t.Errorf("%d log lines refusing %s holders; want 1:\n%s", n, kind, e.stderr)
		}
	}
	if len(fillFiles(t, h.fillDir())) == 0 {
		t.Errorf("no disk fill: the daemon should hold the disk, which takes no pid")
	}
	if _, err := signalAndWait(t, e, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, e.stderr)
	}
	if strings.Contains(e.stderr.String(), "fatal error") {
		t.Errorf("the Go runtime crashed:\n%s", e.stderr)
	}
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left in %s: %v", h.fillDir(), sortedNames(files))
	}
}
