package cgroup

import (
	"math"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

const mib = 1 << 20

// TestReadFindsTheTightestLimits reads the fixtures of a hybrid v1 host, a
// unified v2 host and a container's cgroup namespace: each limit is the
// tightest along the path from the process's cgroup to the mount's root.
func TestReadFindsTheTightestLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Limits
	}{
		// memory: the parent's 1 GiB with 924 MiB charged (less 76 MiB of
		// inactive file cache) leaves less than the own 256 MiB with 48;
		// pids: the own 12 with 7, under a parent of "max".
		{"v1", Limits{Memory: Memory{Limit: 1024 * mib, Usage: 924 * mib}, CPUs: 0.5, Pids: Pids{Max: 12, Current: 7}}},
		// memory.max "max" in the service, 2 GiB in the slice; cpu.max
		// "max 100000" in the slice, a quarter in the service; pids.max
		// "max" everywhere; the root has no limit files at all.
		{"v2", Limits{Memory: Memory{Limit: 2048 * mib, Usage: 1024 * mib}, CPUs: 0.25}},
		{"container", Limits{Memory: Memory{Limit: 256 * mib, Usage: 32 * mib}, CPUs: 0.5, Pids: Pids{Max: 64, Current: 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Find(os.DirFS("testdata/" + tc.name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.Read()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMissingFilesAreNoLimitAndAMissingUsageIsAnError: the v2 mount of a
// hybrid host has no controllers, and a limit without its usage cannot be
// planned within.
func TestMissingFilesAreNoLimitAndAMissingUsageIsAnError(t *testing.T) {
	fsys := fstest.MapFS{
		"proc/self/cgroup":                     {Data: []byte("0::/a\n")},
		"proc/self/mountinfo":                  {Data: []byte("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")},
		"sys/fs/cgroup/unified/a/cgroup.procs": {Data: []byte("1\n")},
	}
	g, err := Find(fsys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Read()
	if err != nil || got != (Limits{}) {
		t.Errorf("Read() = %+v, %v; want no limits, no error", got, err)
	}
	if got.Memory.Room() != math.MaxInt64 || got.Pids.Free() != math.MaxInt64 {
		t.Errorf("no limit: room %d, free %d; want MaxInt64", got.Memory.Room(), got.Pids.Free())
	}
	fsys["sys/fs/cgroup/unified/a/memory.max"] = &fstest.MapFile{Data: []byte("1000000\n")}
	if _, err := g.Read(); err == nil || !strings.Contains(err.Error(), "memory.current: missing") {
		t.Errorf("a limit without its usage: %v; want an error naming memory.current", err)
	}
	if _, err := Find(fstest.MapFS{}); err == nil || !strings.Contains(err.Error(), "proc/self/cgroup") {
		t.Errorf("no /proc/self/cgroup: %v; want an error naming it", err)
	}
}

// parseCase is a case of a parser: its input, and the value it reads, or
// an error when bad.
type parseCase[T comparable] struct {
	in   string
	want T
	bad  bool
}

// checkParse runs parse, named name in failures, on each case.
func checkParse[T comparable](t *testing.T, name string, parse func(string) (T, error), cases []parseCase[T]) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse(tc.in)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("%s(%q) = %v, %v; want %v, error %v", name, tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseLimits(t *testing.T) {
	checkParse(t, "parseLimit", parseLimit, []parseCase[int64]{
		{"max\n", 0, false},
		{"9223372036854771712\n", 0, false}, // v1's "no limit"
		{"268435456\n", 256 * mib, false},
		{"12", 12, false},
		{"-1", 0, true},
		{"lots", 0, true},
	})
	checkParse(t, "parseCPUMax", parseCPUMax, []parseCase[float64]{
		{"max 100000\n", 0, false},
		{"25000 100000\n", 0.25, false},
		{"150000 100000", 1.5, false},
		{"25000", 0, true},
		{"25000 0", 0, true},
	})
	if got, err := parseCFS("-1\n", "100000\n"); got != 0 || err != nil {
		t.Errorf("parseCFS(-1) = %v, %v; want no quota", got, err)
	}
	if got, err := parseCFS("50000\n", "100000\n"); got != 0.5 || err != nil {
		t.Errorf("parseCFS(50000/100000) = %v, %v; want 0.5", got, err)
	}
}

func TestParseCgroupFileAndMountinfo(t *testing.T) {
	members, err := parseCgroupFile("2:cpu,cpuacct:/a b\n4:memory:/process_api/0a38\n0::/\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cpu": "/a b", "cpuacct": "/a b", "memory": "/process_api/0a38", "": "/"}
	if diff := cmp.Diff(want, members); diff != "" {
		t.Errorf("memberships (-want +got):\n%s", diff)
	}
	if _, err := parseCgroupFile("garbage\n"); err == nil {
		t.Error("a line without colons: no error")
	}
	mounts := parseMountinfo(strings.Join([]string{
		`22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw`,
		`34 31 0:31 /docker/abc /sys/fs/cgroup/cpu\040x rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct`,
		`41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`,
	}, "\n"))
	wantMounts := []mount{
		{root: "/docker/abc", point: "/sys/fs/cgroup/cpu x", controllers: []string{"rw", "cpu", "cpuacct"}},
		{root: "/", point: "/sys/fs/cgroup/unified", v2: true},
	}
	if diff := cmp.Diff(wantMounts, mounts, cmp.AllowUnexported(mount{})); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	// Mounted from /docker/abc: its sub-cgroup is reachable, a cgroup
	// elsewhere is not.
	if h := locate(map[string]string{"cpu": "/docker/abc/sub"}, mounts, "cpu"); !cmp.Equal(h.dirs, []string{"sys/fs/cgroup/cpu x/sub", "sys/fs/cgroup/cpu x"}) {
		t.Errorf("a sub-cgroup of the mount's root: %q", h.dirs)
	}
	if h := locate(map[string]string{"cpu": "/other"}, mounts, "cpu"); h.dirs != nil {
		t.Errorf("a cgroup outside the mount's root: %q; want none", h.dirs)
	}
}
