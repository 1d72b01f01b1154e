package holder

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests here drive the hidden holder subcommands of the real
// cro-exporter, testBinary, which TestMain (process_test.go) builds once.

// liveHolder is a holder process started by a test.
type liveHolder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // its stdout, line by line; closed at its end
	exited chan struct{} // closed once it has been reaped
	err    error         // its exit, once exited is closed
	stderr bytes.Buffer  // read it only once exited is closed
}

// startLiveHolder starts cro-exporter with args and kills it when the test
// ends, also on failure.
func startLiveHolder(t *testing.T, args ...string) *liveHolder {
	t.Helper()
	skipShort(t, "runs a real holder process")
	h := &liveHolder{cmd: exec.Command(testBinary, args...), lines: make(chan string, 16), exited: make(chan struct{})}
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			h.lines <- lines.Text()
		}
		close(h.lines)
		h.err = h.cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.exited
	})
	return h
}

// line returns the holder's next stdout line.
func (h *liveHolder) line(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			<-h.exited
			t.Fatalf("holder ended (%v) instead of writing a line; stderr: %s", h.err, h.stderr.String())
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("holder wrote no line within %s", timeout)
	}
	return ""
}

// send writes a line to the holder's stdin.
func (h *liveHolder) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		t.Fatalf("writing %q to the holder: %v", line, err)
	}
}

// wait waits for the holder to exit and returns its exit status.
func (h *liveHolder) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	go func() {
		for range h.lines { // drain, so that it never blocks on stdout
		}
	}()
	select {
	case <-h.exited:
		return h.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("holder did not exit within %s", timeout)
	}
	return 0
}

// oomScoreAdj reads /proc/<pid>/oom_score_adj.
func oomScoreAdj(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkOOMFirst checks that h is the OOM killer's first pick: every holder
// sets its oom_score_adj to 1000.
func (h *liveHolder) checkOOMFirst(t *testing.T) {
	t.Helper()
	if got := oomScoreAdj(t, h.cmd.Process.Pid); got != 1000 {
		t.Errorf("oom_score_adj is %d, want 1000", got)
	}
}

// stopCleanly sends h stop and checks that it exits 0 within 5 s.
func (h *liveHolder) stopCleanly(t *testing.T) {
	t.Helper()
	h.send(t, "stop")
	if code := h.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit status after stop is %d, want 0; stderr: %s", code, h.stderr.String())
	}
}

func TestMemoryHolderHoldsItsSizeResident(t *testing.T) {
	t.Parallel()
	for _, size := range []int64{64 << 20, 32<<20 + 1} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			t.Parallel()
			h := startLiveHolder(t, "holder", "memory", "--size="+strconv.FormatInt(size, 10))
			line := h.line(t, 30*time.Second)
			n, err := strconv.ParseInt(strings.TrimPrefix(line, "ready "), 10, 64)
			if !strings.HasPrefix(line, "ready ") || err != nil || n < size {
				t.Fatalf("first line %q, want \"ready N\" with N >= %d", line, size)
			}
			if status, err := kernelProc(t, h.cmd.Process.Pid).NewStatus(); err != nil || status.RssAnon < uint64(size) {
				t.Errorf("RssAnon is %d bytes (%v), want at least %d", status.RssAnon, err, size)
			}
			h.checkOOMFirst(t)
			h.stopCleanly(t)
		})
	}
}

func TestEveryHolderEndsWhenStdinCloses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, arg string
		ready     time.Duration // how long its ready line may take
	}{
		{"memory", "--size=64MiB", 30 * time.Second},
		{"cpu", "--duty=0.05", 10 * time.Second},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			h := startLiveHolder(t, "holder", tc.kind, tc.arg)
			h.line(t, tc.ready)
			h.stdin.Close()
			if code := h.wait(t, time.Second); code != 0 {
				t.Errorf("exit status after stdin closed is %d, want 0; stderr: %s", code, h.stderr.String())
			}
		})
	}
}

func TestMemoryHolderRejectsAnyOtherLine(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"jump", "stop now", "STOP", ""} {
		t.Run(fmt.Sprintf("%q", line), func(t *testing.T) {
			t.Parallel()
			h := startLiveHolder(t, "holder", "memory", "--size=1MiB")
			h.line(t, 30*time.Second)
			h.send(t, line)
			code := h.wait(t, 5*time.Second)
			stderr := h.stderr.String()
			if code == 0 || code == 2 {
				t.Errorf("exit status is %d, want a failure (1)", code)
			}
			if !strings.Contains(stderr, "unknown command") || !strings.Contains(stderr, line) {
				t.Errorf("stderr does not name the line %q: %s", line, stderr)
			}
		})
	}
}

func TestMemoryHolderRefusesBadSizesBeforeAllocating(t *testing.T) {
	t.Parallel()
	for _, size := range []string{"0", "-1", "2GiB", "1073741825", "lots", ""} {
		t.Run(size, func(t *testing.T) {
			t.Parallel()
			h := startLiveHolder(t, "holder", "memory", "--size="+size)
			if code := h.wait(t, 5*time.Second); code != 2 {
				t.Errorf("exit status is %d, want 2 (usage); stderr: %s", code, h.stderr.String())
			}
			if !strings.Contains(h.stderr.String(), "--size") {
				t.Errorf("stderr does not name --size: %s", h.stderr.String())
			}
			// Maxrss is in kB. Linux starts a child's at its forking
			// parent's size (this test binary: up to ~100 MiB under
			// -race), so only a real allocation of the sizes tried
			// would take it past 256 MiB.
			if maxRSS := h.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10; maxRSS > 256<<20 {
				t.Errorf("peak RSS was %d bytes: something was allocated", maxRSS)
			}
		})
	}
}

func TestParseStatmResident(t *testing.T) {
	testParse(t, "parseStatmResident", parseStatmResident, []parseCase[int64]{
		{"the second field is read", "265155 263245 870 530 0 262819 0\n", 263245, false},
		{"one field is an error", "265155\n", 0, true},
		{"a word is an error", "265155 many 870\n", 0, true},
		{"a negative count is an error", "265155 -3 870\n", 0, true},
	})
}

func TestStampPagesMakesEveryPageNonZeroAndDistinct(t *testing.T) {
	const page = 4096
	mem := make([]byte, 5*page+100) // a partial last page too
	stampPages(mem, page)
	seen := map[uint64]bool{}
	for off := 0; off < len(mem); off += page {
		if bytes.Count(mem[off:min(off+page, len(mem))], []byte{0}) == min(page, len(mem)-off) {
			t.Fatalf("page at %d is all zero", off)
		}
		w := binary.NativeEndian.Uint64(mem[off:])
		if seen[w] {
			t.Errorf("page at %d has the same stamp %#x as another", off, w)
		}
		seen[w] = true
	}
}

func TestPMDHugePagesAlways(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // under the THP settings dir
		want  bool
	}{
		{"always", map[string]string{"enabled": "[always] madvise never\n"}, true},
		{"madvise", map[string]string{"enabled": "always [madvise] never\n"}, false},
		{"never", map[string]string{"enabled": "always madvise [never]\n"}, false},
		{"no settings (THP compiled out)", nil, false},
		{"unparsable", map[string]string{"enabled": "always\n"}, false},
		{"2 MiB inherits always", map[string]string{
			"enabled": "[always] madvise never\n", "hugepages-2048kB/enabled": "always [inherit] madvise never\n",
			"hugepages-16kB/enabled": "always inherit madvise [never]\n"}, true},
		{"2 MiB never under a global always", map[string]string{
			"enabled": "[always] madvise never\n", "hugepages-2048kB/enabled": "always inherit madvise [never]\n"}, false},
		{"2 MiB always under a global madvise", map[string]string{
			"enabled": "always [madvise] never\n", "hugepages-2048kB/enabled": "[always] inherit madvise never\n"}, true},
		{"only 16 kB folios always", map[string]string{
			"enabled": "always [madvise] never\n", "hugepages-2048kB/enabled": "always [inherit] madvise never\n",
			"hugepages-16kB/enabled": "[always] inherit madvise never\n"}, false},
		{"the PMD size is 512 MiB (64 kB base pages)", map[string]string{
			"enabled": "always [madvise] never\n", "hpage_pmd_size": "536870912\n",
			"hugepages-2048kB/enabled":   "always inherit madvise [never]\n",
			"hugepages-524288kB/enabled": "[always] inherit madvise never\n"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tt.files)
			if got := pmdHugePagesAlways(dir); got != tt.want {
				t.Errorf("pmdHugePagesAlways = %v, want %v", got, tt.want)
			}
		})
	}
}
