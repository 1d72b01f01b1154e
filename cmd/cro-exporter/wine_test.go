package main

// The Windows build, cro-exporter.exe, run under Debian's Wine (tools/wine,
// WINDOWS.md), which runs it as Linux processes: its holders burn this
// host's CPU and hold its memory, so the live tests of the Linux build
// check it the same way, from Linux's /proc, wherever Wine can show it.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// builtWindows is the Windows build the tests run, built once, like built.
var builtWindows struct {
	once      sync.Once
	dir, path string
	err       error
}

// windowsBinaryPath is cro-exporter.exe, built from this package for
// windows/amd64 the first time a test asks for it.
func windowsBinaryPath(t testing.TB) string {
	t.Helper()
	builtWindows.once.Do(func() {
		if builtWindows.dir, builtWindows.err = os.MkdirTemp("", "cro-exporter-windows-test"); builtWindows.err != nil {
			return
		}
		builtWindows.path = filepath.Join(builtWindows.dir, "cro-exporter.exe")
		cmd := exec.Command("go", "build", "-o", builtWindows.path, ".")
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			builtWindows.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if builtWindows.err != nil {
		t.Fatalf("building cro-exporter.exe: %v", builtWindows.err)
	}
	return builtWindows.path
}

// wineHost is a testHost whose daemon is the Windows build under Wine, in
// the test prefix tools/wine/exec.sh makes. Wine starts the holders as
// children of init with no environment Linux can read: they are told by
// their argv[0], the exe's path as Windows spells it.
func wineHost(t *testing.T) *testHost {
	t.Helper()
	skipShort(t, "runs the Windows build under Wine, with its holders, on a tmpfs it mounts, as root")
	wine, err := filepath.Abs("../../tools/wine/exec.sh")
	if err != nil {
		t.Fatal(err)
	}
	exe := windowsBinaryPath(t)
	h := newHost(t)
	h.command = []string{wine, exe}
	h.wineHolder = "Z:" + strings.ReplaceAll(exe, "/", `\`)
	return h
}

func TestTheWindowsBuildsHoldersDieWithItsDaemonUnderWine(t *testing.T) {
	testKillNine(t, wineHost(t))
}

func TestTheWindowsBuildsRecoverUnderWine(t *testing.T) {
	testRecover(t, wineHost(t))
}

func TestTheWindowsBuildsBallastGivesWayUnderWine(t *testing.T) {
	testMemoryGiveWay(t, wineHost(t))
}

// TestTheWindowsBuildHoldsMemoryAndPrometheusScrapesIt: the Windows build's
// ballast moves the host's memory usage, as /proc/meminfo counts it, to
// the target, and a real Prometheus scraping it reads the same usage.
func TestTheWindowsBuildHoldsMemoryAndPrometheusScrapesIt(t *testing.T) {
	h := wineHost(t)
	target := memoryTarget(t, 350*mib)
	e := h.start("--target.memory="+target, "--target.cpu=0", "--target.disk=0")
	waitBallast(t, h, 256*mib)
	want, err := strconv.ParseFloat(target, 64)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the host's memory usage at the target", func() (bool, string) {
		total, avail := meminfo(t)
		used := float64(total-avail) / float64(total)
		return used >= want-0.01, fmt.Sprintf("/proc/meminfo: used %.4f, target %.4f", used, want)
	})

	p := startPrometheus(t, strings.TrimPrefix(e.url, "http://"))
	p.await(t, 20*time.Second, "Prometheus to scrape the Windows build", func() (bool, string) {
		got := p.series(t, time.Now().Unix(), `cro_usage_ratio{resource="memory"}`)
		if len(got) != 1 {
			return false, fmt.Sprintf("%d series", len(got))
		}
		total, avail := meminfo(t)
		used := float64(total-avail) / float64(total)
		v, err := sampleValue(got[0].Value[1])
		return err == nil && v >= want-0.01 && v <= used+0.02, fmt.Sprintf("cro_usage_ratio{resource=\"memory\"} %v, /proc/meminfo used %.4f, target %.4f", v, used, want)
	})
}

func TestTheWindowsBuildsBurnerIsCountedAndGivesWayUnderWine(t *testing.T) {
	testCPUGiveWay(t, wineHost(t))
}
