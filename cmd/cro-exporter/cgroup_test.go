package main

// Live tests of the daemon in cgroups of its own: child cgroups of the test
// process's, made in the v1 hierarchies of this machine, which the daemon
// enters before its first instruction (inCgroups).

import (
	"encoding/json"
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
	// The burner is refused too, unless other work on this shared host
	// keeps the CPU busy enough that none is wanted.
	waitFor(t, 10*time.Second, "refused memory holder starts", func() (bool, string) {
		body := e.metrics(t)
		return value(body, `cro_holder_starts_refused_total{resource="memory"}`) >= 3,
			metricLine(body, `cro_holder_starts_refused_total{resource="memory"}`) + ", " + metricLine(body, `cro_holder_starts_refused_total{resource="cpu"}`)
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
		want := min(1, value(body, `cro_holder_starts_refused_total{resource="`+kind+`"}`))
		if n := strings.Count(e.stderr.String(), "not starting "+kind+" holders"); float64(n) != want {
			t.Errorf("%d log lines refusing %s holders; want %v:\n%s", n, kind, want, e.stderr)
		}
	}
	if len(fillFiles(t, h.fillDir())) == 0 {
		t.Errorf("no disk fill: the daemon should hold the disk, which takes no pid")
	}
	stop(t, e)
	if strings.Contains(e.stderr.String(), "fatal error") {
		t.Errorf("the Go runtime crashed:\n%s", e.stderr)
	}
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left in %s: %v", h.fillDir(), sortedNames(files))
	}
}

// warnings are the daemon's JSON log lines saying a target cannot be met.
// Real usage of this shared host moves the edge, so a live test asks for
// one or more, all of them of the resource and the bound it expects; the
// controller's tests count them.
func warnings(log string) []map[string]any {
	var ws []map[string]any
	for line := range strings.Lines(log) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "target cannot be met" {
			ws = append(ws, m)
		}
	}
	return ws
}

// checkOutOfReach checks that the daemon warned that the cgroup's bound,
// by, keeps the target of resource out of reach, by how much, and warned
// of nothing else.
func checkOutOfReach(t *testing.T, e *exporter, resource, by string) {
	t.Helper()
	ws := warnings(e.stderr.String())
	if len(ws) == 0 || slices.ContainsFunc(ws, func(w map[string]any) bool {
		return w["resource"] != resource || w["by"] != by || w["short_by"] == nil
	}) {
		t.Errorf("want warnings that %s keeps the %s target out of reach, by how much; got %v", by, resource, ws)
	}
}

// cgroupValue is the number in file of a cgroup.
func cgroupValue(t *testing.T, dir, file string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// oomKills is the oom_kill count of a v1 memory cgroup.
func oomKills(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			return v
		}
	}
	return "?"
}

// TestInAMemoryCgroupBallastIsPlannedWithinItsLimit: in a memory cgroup of
// 256 MiB, with a target that wants 1 GiB of ballast, the daemon holds
// what the limit leaves less its headroom, no holder is OOM-killed over
// several ticks, and it says, in the log and in
// cro_target_shortfall_ratio, that the target is out of reach and by how
// much.
func TestInAMemoryCgroupBallastIsPlannedWithinItsLimit(t *testing.T) {
	h := newHost(t)
	const limit = 256 * mib
	dir := childCgroup(t, "memory", map[string]string{"memory.limit_in_bytes": strconv.Itoa(limit)})
	e := h.startIn([]string{dir}, "--target.memory="+memoryTarget(t, 1024*mib), "--target.cpu=0", "--target.disk=0", "--holder.memory-chunk=64MiB")
	waitFor(t, 15*time.Second, "ballast of 128 MiB or more", func() (bool, string) {
		body := e.metrics(t)
		return value(body, `cro_holder_bytes{resource="memory"}`) >= 128*mib, metricLine(body, `cro_holder_bytes{resource="memory"}`) + "\n" + e.stderr.String()
	})
	time.Sleep(6 * time.Second) // six more ticks
	body := e.metrics(t)
	held := value(body, `cro_holder_bytes{resource="memory"}`)
	t.Logf("cgroup of %d MiB: %d MiB charged at the peak, ballast's VmRSS %.0f MiB (their shared binary counted in each); %s; oom_kill %s",
		limit/mib, cgroupValue(t, dir, "memory.max_usage_in_bytes")/mib, held/mib,
		metricLine(body, `cro_target_shortfall_ratio{resource="memory"}`), oomKills(t, dir))
	if v := value(body, `cro_holder_failures_total{resource="memory"}`); v != 0 {
		t.Errorf("cro_holder_failures_total{resource=\"memory\"} = %v; want 0: ballast within the limit is never OOM-killed\n%s", v, e.stderr)
	}
	if n := oomKills(t, dir); n != "0" {
		t.Errorf("the cgroup's oom_kill is %s; want 0", n)
	}
	// The holders' resident binary pages are shared: cro_holder_bytes
	// counts them in each, the cgroup once.
	if peak := cgroupValue(t, dir, "memory.max_usage_in_bytes"); peak > limit-16*mib {
		t.Errorf("the cgroup's peak charge %d MiB; want most of the headroom (32 MiB) left", peak/mib)
	}
	for line := range strings.Lines(e.stderr.String()) {
		var m struct {
			Msg    string
			Memory int64 `json:"memory_bytes"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "holder load planned" && m.Memory > limit-32*mib {
			t.Errorf("ballast planned at %d MiB; want at most the limit less the headroom", m.Memory/mib)
		}
	}
	// The target wants 1 GiB and gets at most 256 MiB: short by 768 MiB,
	// less memoryTarget's margin and what other work on this shared host
	// may have added since.
	total, _ := meminfo(t)
	if got, least := value(body, `cro_target_shortfall_ratio{resource="memory"}`), float64(384*mib)/float64(total); !(got >= least) {
		t.Errorf("cro_target_shortfall_ratio{resource=\"memory\"} = %v; want %.4f or more", got, least)
	}
	checkOutOfReach(t, e, "memory", "the cgroup's memory limit")
	stop(t, e)
}

// TestInACPUQuotaTheBurnerIsPlannedWithinIt: under a quota of half a CPU
// (a quarter of this 2-CPU machine) and a target of 0.85, the burner's
// duty stays within the quota less its headroom (0.225), and the daemon
// says, in the log and in cro_target_shortfall_ratio, that the target
// is out of reach and by how much.
func TestInACPUQuotaTheBurnerIsPlannedWithinIt(t *testing.T) {
	h := newHost(t)
	if now, ok := quietCPU(t, 0.5); !ok {
		t.Fatalf("the host's CPU stayed busy (%.2f) for %s: real usage alone would bring the target within reach; rerun on a quieter host", now, quietWait)
	}
	dir := childCgroup(t, "cpu", map[string]string{"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"})
	e := h.startIn([]string{dir}, "--target.cpu=0.85", "--target.memory=0", "--target.disk=0")
	waitFor(t, 15*time.Second, "a CPU shortfall", func() (bool, string) {
		body := e.metrics(t)
		return value(body, `cro_target_shortfall_ratio{resource="cpu"}`) > 0, metricLine(body, `cro_target_shortfall_ratio{resource="cpu"}`)
	})
	time.Sleep(5 * time.Second)
	body := e.metrics(t)
	t.Logf("%s; burner %s", metricLine(body, `cro_target_shortfall_ratio{resource="cpu"}`), metricLine(body, `cro_holder_usage_ratio{resource="cpu"}`))
	planned := 0
	for line := range strings.Lines(e.stderr.String()) {
		var m struct {
			Msg string
			CPU float64
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "holder load planned" {
			planned++
			if m.CPU > 0.225+1e-4 {
				t.Errorf("burner planned at %v; want at most 0.225 (half a CPU of 2, less a tenth)", m.CPU)
			}
		}
	}
	t.Logf("%d plans, all within the quota", planned)
	checkOutOfReach(t, e, "cpu", "the cgroup's CPU quota")
	stop(t, e)
}
