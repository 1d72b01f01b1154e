package main

// Faults of the holders at run time, with the real daemon and real holder
// processes on this machine: a holder stopped with SIGSTOP, holders killed
// from outside once or again and again, the CPU that memory holders spend
// filling, and ballast that must stay down after a pressure release. They
// are made safe for a shared host like the lifecycle tests: memory holders
// of a few hundred MiB, a CPU burner at a few points of duty, no disk fill,
// and every process and mapping cleaned up when the test ends.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// scrapeWithin is e's /metrics, failing the test when it takes more than
// timeout: a scrape that hangs must not hang the test.
func scrapeWithin(t *testing.T, e *exporter, timeout time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(e.url + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	return string(body)
}

// ofKind is the processes of ps of one kind.
func ofKind(ps []proc, kind string) []proc {
	var out []proc
	for _, p := range ps {
		if p.kind() == kind {
			out = append(out, p)
		}
	}
	return out
}

func pids(ps []proc) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.pid)
	}
	return out
}

// waitBallast waits until h's memory holders hold at least least bytes, each
// chunk resident (the daemon does not wait for them to fill), and returns
// them.
func waitBallast(t *testing.T, h *testHost, least int64) []proc {
	t.Helper()
	var mem []proc
	waitFor(t, 15*time.Second, "the ballast resident", func() (bool, string) {
		mem = ofKind(h.holders(), "memory")
		var held int64
		filled := true
		for _, p := range mem {
			resident := rss(p.pid)
			held += min(resident, sizeOf(p))
			filled = filled && resident >= sizeOf(p)
		}
		return filled && held >= least, fmt.Sprintf("%d MiB resident in %v, want %d MiB, every chunk full", held/mib, mem, least/mib)
	})
	return mem
}

// findBurner waits up to timeout for a CPU holder of h. A daemon whose
// host meets the CPU target by itself rightly runs none.
func findBurner(h *testHost, timeout time.Duration) (proc, bool) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if cpu := ofKind(h.holders(), "cpu"); len(cpu) > 0 {
			return cpu[0], true
		}
		if time.Now().After(deadline) {
			return proc{}, false
		}
	}
}

// logLines are the daemon's JSON log lines from offset on, decoded.
func logLines(e *exporter, offset int) []map[string]any {
	var out []map[string]any
	for l := range strings.Lines(e.stderr.String()[offset:]) {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil {
			out = append(out, line)
		}
	}
	return out
}

// logOnFailure logs the daemon's log when the test fails, fatally or not.
func logOnFailure(t *testing.T, e *exporter) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the daemon's log:\n%s", e.stderr)
		}
	})
}

// aboutCPUHolder matches a log line that is about the CPU holder: its
// message or error names it, or its kind is cpu.
var aboutCPUHolder = regexp.MustCompile(`(?i)cpu holder|"kind":"cpu"`)

func TestASIGSTOPpedHolderStallsNeitherTheTicksNorTheShutdown(t *testing.T) {
	h := newHost(t)
	cpu := cpuTarget(t)
	e := h.start("--log.level=debug", "--target.memory="+memoryTarget(t, 256*mib),
		"--target.cpu="+ratioFlag(cpu), "--target.disk=0")
	logOnFailure(t, e)
	stopped := waitBallast(t, h, 224*mib)
	if burner, ok := findBurner(h, 6*time.Second); ok {
		stopped = append(stopped, burner)
	} else {
		t.Logf("no burner: real CPU usage rose to the target %.4f; only memory holders are stopped", cpu)
		cpu = 0
	}
	sigstop(t, stopped)
	logFrom := len(e.stderr.String())

	// A second into the watch, real CPU work for a second and a half: the
	// burner's duty gives way, which writes to the stopped burner (a duty
	// line), or kills it (duty 0). Neither may wait for it.
	const watch = 7 * time.Second
	begin := time.Now()
	spun := make(chan struct{})
	if cpu > 0 {
		go func() {
			defer close(spun)
			time.Sleep(time.Second)
			for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
			}
		}()
	} else {
		close(spun)
		t.Log("only stopped memory holders are tested")
	}
	stamps, gaps := watchTicks(t, e, begin.Add(watch))
	<-spun
	worst := slices.Max(gaps)
	t.Logf("%d ticks in %v with holders stopped; gaps %v", len(stamps)-1, watch, gaps)
	// The interval is 1 s: on a busy host a tick may come late, never 5 s
	// late as it did waiting for a stopped holder's answer.
	if worst > 2500*time.Millisecond || len(stamps)-1 < 4 {
		t.Errorf("with holders stopped: %d new ticks in %v, longest gap %v; want one about every second, no gap over 2.5 s",
			len(stamps)-1, watch, worst)
	}
	if cpu > 0 {
		burner := stopped[len(stopped)-1]
		gone, duties := !burner.alive(), 0
		for _, l := range logLines(e, logFrom) {
			if l["msg"] == "cpu duty" {
				duties++
			}
		}
		t.Logf("while it was stopped, the burner's duty changed %d times; burner killed: %v", duties, gone)
		if !gone && duties == 0 {
			t.Errorf("the burner's duty never changed while it was stopped, so the test proved less than it should")
		}
	}

	// Shutdown with every holder stopped, the burner started since too.
	for _, p := range h.holders() {
		if !slices.Contains(pids(stopped), p.pid) {
			syscall.Kill(p.pid, syscall.SIGSTOP)
			stopped = append(stopped, p)
		}
	}
	took, err := signalAndWait(t, e, syscall.SIGTERM, 1500*time.Millisecond)
	if err != nil {
		t.Fatalf("exit after SIGTERM with holders stopped: %v", err)
	}
	t.Logf("exited 0 %v after SIGTERM, with holders stopped", took.Round(time.Millisecond))
	if left := append(aliveOf(stopped), h.holders()...); len(left) > 0 {
		t.Errorf("holder processes alive after the daemon exited: %v", left)
	}
}

// sigstop stops every process of ps with SIGSTOP, and waits until each is.
func sigstop(t *testing.T, ps []proc) {
	t.Helper()
	for _, p := range ps {
		if err := syscall.Kill(p.pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, "the holders stopped", func() (bool, string) {
		for _, p := range ps {
			if q, ok := readProc(p.pid); !ok || q.state != 'T' {
				return false, fmt.Sprintf("%v", q)
			}
		}
		return true, ""
	})
	t.Logf("stopped with SIGSTOP: %v", ps)
}

// watchTicks scrapes e every 100 ms until end and returns the times of the
// ticks it saw, and the gaps between them and from the last to end: a loop
// stalled at the end shows there.
func watchTicks(t *testing.T, e *exporter, end time.Time) (stamps []time.Time, gaps []time.Duration) {
	t.Helper()
	for time.Now().Before(end) {
		ts := value(scrapeWithin(t, e, 2*time.Second), "cro_last_sample_timestamp_seconds")
		at := time.Unix(0, int64(ts*1e9))
		if len(stamps) == 0 || !at.Equal(stamps[len(stamps)-1]) {
			stamps = append(stamps, at)
		}
		time.Sleep(100 * time.Millisecond)
	}
	end = time.Now()
	for i := 1; i < len(stamps); i++ {
		gaps = append(gaps, stamps[i].Sub(stamps[i-1]))
	}
	return stamps, append(gaps, end.Sub(stamps[len(stamps)-1]))
}

func TestHoldersKilledFromOutsideAreReplacedWithinTwoTicksAndCounted(t *testing.T) {
	h := newHost(t)
	cpu := cpuTarget(t)
	e := h.start("--target.memory="+memoryTarget(t, 256*mib), "--target.cpu="+ratioFlag(cpu), "--target.disk=0")
	logOnFailure(t, e)
	mem := waitBallast(t, h, 224*mib)
	victims := []proc{mem[0]}
	burner, ok := findBurner(h, 6*time.Second)
	if ok {
		victims = append(victims, burner)
	} else {
		t.Logf("no burner (CPU target %.4f): only a memory holder is killed", cpu)
		cpu = 0
	}
	killed := time.Now()
	for _, p := range victims {
		if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("killed with SIGKILL: %v", victims)

	// Two ticks at 1 s, and the time a process takes to start.
	waitFor(t, 3500*time.Millisecond, "the holders killed are replaced", func() (bool, string) {
		now := h.holders()
		memNow := ofKind(now, "memory")
		fresh := 0
		for _, p := range memNow {
			if !slices.Contains(pids(mem), p.pid) {
				fresh++
			}
		}
		memOK := len(memNow) == len(mem) && fresh == 1
		cpuOK := cpu == 0 || slices.ContainsFunc(ofKind(now, "cpu"), func(p proc) bool { return p.pid != victims[1].pid })
		return memOK && cpuOK, fmt.Sprintf("holders %v; were %v", now, append(mem, victims[len(victims)-1]))
	})
	t.Logf("replaced %v after the kill", time.Since(killed).Round(time.Millisecond))

	// The failures are counted, once each, from the tick that noticed.
	want := map[string]float64{"memory": 1, "cpu": 0}
	if cpu > 0 {
		want["cpu"] = 1
	}
	var body string
	waitFor(t, 3*time.Second, "the failures counted", func() (bool, string) {
		body = scrapeWithin(t, e, 2*time.Second)
		var got []string
		ok := true
		for _, r := range []string{"memory", "cpu"} {
			v := value(body, `cro_holder_failures_total{resource="`+r+`"}`)
			got = append(got, fmt.Sprintf("%s %v", r, v))
			ok = ok && v == want[r]
		}
		return ok, fmt.Sprintf("cro_holder_failures_total: %v, want memory %v, cpu %v", got, want["memory"], want["cpu"])
	})
	if n := value(body, `cro_holder_failures_total{resource="disk"}`); n != 0 {
		t.Errorf(`cro_holder_failures_total{resource="disk"} = %v, want 0`, n)
	}
	// Replaced at the normal rate: no more ballast than before.
	time.Sleep(1500 * time.Millisecond)
	if n := len(ofKind(h.holders(), "memory")); n > len(mem) {
		t.Errorf("%d memory holders after the replacement, want %d as before", n, len(mem))
	}
}

func TestACPUHolderKilledAgainAndAgainBacksOffAndIsLoggedOnce(t *testing.T) {
	h := newHost(t)
	cpu := cpuTarget(t)
	if cpu == 0 {
		t.Fatal("the host is too busy for a CPU burner, which this test kills; rerun on a quieter host")
	}
	e := h.start("--target.memory=0", "--target.cpu="+ratioFlag(cpu), "--target.disk=0")
	logOnFailure(t, e)
	// The burner gives way while other work takes the CPU to the target,
	// and comes back when it quietens: on a shared host that may take a
	// while.
	first, ok := findBurner(h, quietWait)
	if !ok {
		t.Fatalf("no burner within %s: real CPU usage stayed at the target %.4f; rerun on a quieter host", quietWait, cpu)
	}
	logFrom := len(e.stderr.String())

	// The first one is replaced at once; then the restarts back off to
	// 15 s apart, so that one more start at most fits in the 10 s.
	begin, starts, killedPids, kills := killBurners(h, first, 10*time.Second)
	t.Logf("%d CPU holders seen and killed in 10 s (%d kill signals); restarts %v after the first kill", killedPids, kills,
		func() []time.Duration {
			var d []time.Duration
			for _, s := range starts {
				d = append(d, s.Sub(begin).Round(time.Millisecond))
			}
			return d
		}())
	if len(starts) == 0 || starts[0].Sub(begin) > 2500*time.Millisecond {
		t.Errorf("the first CPU holder killed was not replaced within 2.5 s (restarts at %v)", starts)
	}
	if len(starts) > 2 {
		t.Errorf("the CPU holder was restarted %d times in 10 s of kills, want at most 2: a holder that keeps dying must back off", len(starts))
	}
	// Seen every 300 ms: a gap may look that much shorter than it was.
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 14*time.Second {
			t.Errorf("restarts %d and %d of the CPU holder only %v apart, want 15 s or more", i, i+1, gap.Round(time.Millisecond))
		}
	}

	// Each failure counted, from the tick after the last kill.
	var failures float64
	waitFor(t, 3*time.Second, "every CPU holder killed counted as a failure", func() (bool, string) {
		failures = value(scrapeWithin(t, e, 2*time.Second), `cro_holder_failures_total{resource="cpu"}`)
		return failures == float64(killedPids), fmt.Sprintf(`cro_holder_failures_total{resource="cpu"} %v, want %d`, failures, killedPids)
	})

	// The log: a line when the back-off starts, not one per kill.
	var about []string
	for l := range strings.Lines(e.stderr.String()[logFrom:]) {
		if aboutCPUHolder.MatchString(l) {
			about = append(about, strings.TrimSpace(l))
		}
	}
	t.Logf("log lines about the CPU holder:\n%s", strings.Join(about, "\n"))
	if len(about) > 2 {
		t.Errorf("%d log lines about the CPU holder ending in 10 s of kills, want at most 2 (one failure, then one back-off)", len(about))
	}
	if !slices.ContainsFunc(about, func(l string) bool { return strings.Contains(l, "keeps ending") }) && killedPids >= 2 {
		t.Errorf("the back-off was not logged")
	}
}

// killBurners kills every CPU holder of h as soon as it is seen, every
// 300 ms for watch, first among them. It returns when it began, when each
// holder after first was seen, how many processes it killed (kills of one
// process twice, still a zombie, count once) and how many kill signals it
// sent.
func killBurners(h *testHost, first proc, watch time.Duration) (begin time.Time, starts []time.Time, killed, signals int) {
	seen := map[int]bool{first.pid: true}
	begin = time.Now()
	for time.Since(begin) < watch {
		for _, p := range ofKind(h.holders(), "cpu") {
			if !seen[p.pid] {
				seen[p.pid] = true
				starts = append(starts, time.Now())
			}
			if syscall.Kill(p.pid, syscall.SIGKILL) == nil {
				signals++
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return begin, starts, len(seen), signals
}

func TestTheCPUMemoryHoldersSpendFillingIsHolderLoad(t *testing.T) {
	h := newHost(t)
	// No CPU holder at all: whatever CPU the holders take is the memory
	// holders', filling 8 chunks of 64 MiB.
	const ballast = 512 * mib
	e := h.start("--holder.memory-chunk=64MiB", "--target.cpu=0", "--target.disk=0",
		"--target.memory="+memoryTarget(t, ballast))
	logOnFailure(t, e)
	started := time.Now()

	// Every tick until the first one after the ballast is resident, and
	// when that was; meanwhile, what the memory holders spent, as /proc
	// says.
	type tick struct {
		at         time.Time
		holderCPU  float64 // cro_holder_usage_ratio{resource="cpu"}
		totalCPU   float64 // cro_usage_ratio{resource="cpu"}
		cpuHolders float64
	}
	var ticks []tick
	var filledAt time.Time
	spent := map[int]float64{} // CPU seconds of each memory holder
	for time.Since(started) < 15*time.Second {
		body := scrapeWithin(t, e, 2*time.Second)
		tk := tick{
			at:         time.Unix(0, int64(value(body, "cro_last_sample_timestamp_seconds")*1e9)),
			holderCPU:  value(body, `cro_holder_usage_ratio{resource="cpu"}`),
			totalCPU:   value(body, `cro_usage_ratio{resource="cpu"}`),
			cpuHolders: value(body, `cro_holders{resource="cpu"}`),
		}
		if len(ticks) == 0 || !tk.at.Equal(ticks[len(ticks)-1].at) {
			ticks = append(ticks, tk)
		}
		mem := ofKind(h.holders(), "memory")
		var held int64
		filled := len(mem) > 0
		for _, p := range mem {
			resident := rss(p.pid)
			held += min(resident, sizeOf(p))
			filled = filled && resident >= sizeOf(p)
			if q, ok := readProc(p.pid); ok && q.cpu > spent[p.pid] {
				spent[p.pid] = q.cpu
			}
		}
		if filled && held >= ballast-32*mib && filledAt.IsZero() {
			filledAt = time.Now()
		}
		if !filledAt.IsZero() && ticks[len(ticks)-1].at.After(filledAt) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if filledAt.IsZero() {
		t.Fatalf("the ballast was not resident within 15 s: %v", h.holders())
	}
	var total float64
	for _, s := range spent {
		total += s
	}
	t.Logf("ballast resident %v after the start; the memory holders spent %.3f s of CPU by then (/proc)",
		filledAt.Sub(started).Round(time.Millisecond), total)
	for _, tk := range ticks {
		t.Logf("tick %s: cro_holder_usage_ratio{cpu} %.4f, cro_usage_ratio{cpu} %.4f, cro_holders{cpu} %v",
			tk.at.Format("15:04:05.000"), tk.holderCPU, tk.totalCPU, tk.cpuHolders)
	}
	// The ticks up to the first one after the ballast was resident cover
	// the filling: one of them must count the holders' CPU.
	var during float64
	for _, tk := range ticks {
		if tk.cpuHolders != 0 {
			t.Errorf("a CPU holder ran with --target.cpu=0 (tick %s)", tk.at.Format("15:04:05.000"))
		}
		during = max(during, tk.holderCPU)
	}
	if !(during > 0) {
		t.Errorf("cro_holder_usage_ratio{resource=\"cpu\"} stayed %v at every tick while the memory holders filled (they spent %.3f s of CPU): their CPU was counted as real usage", during, total)
	}
}

// plannedMemory is the ballast the daemon planned last, as its log says
// after offset ("holder load planned" at a tick, "memory ballast released"
// by the watcher), and whether the watcher has released any for pressure;
// -1 when no line says.
func plannedMemory(e *exporter, offset int) (planned int64, pressure bool) {
	planned = -1
	for l := range strings.Lines(e.stderr.String()[offset:]) {
		var line logLine
		if json.Unmarshal([]byte(l), &line) != nil {
			continue
		}
		switch line.Msg {
		case "memory ballast released":
			planned = line.Memory
			pressure = pressure || line.Reason == "pressure"
		case "holder load planned":
			planned = line.Memory
		}
	}
	return planned, pressure
}

func TestAfterAPressureReleaseTheBallastStaysDown(t *testing.T) {
	h := newHost(t)
	_, avail0 := settledMemAvailable(t)
	// 512 MiB of ballast in four chunks of 128 MiB, and a reserve that
	// leaves it about 160 MiB of room: real work that takes more makes it
	// give way.
	const ballast = 512 * mib
	reserve := avail0 - ballast - 160*mib
	e := h.start("--target.cpu=0", "--target.disk=0", "--target.memory="+memoryTarget(t, ballast),
		fmt.Sprintf("--memory.reserve=%d", reserve))
	logOnFailure(t, e)
	mem := waitBallast(t, h, ballast-64*mib)
	logFrom := len(e.stderr.String())
	before, _ := plannedMemory(e, 0)
	t.Logf("MemAvailable %d MiB before the daemon, reserve %d MiB; ballast planned %d MiB in %v",
		avail0/mib, reserve/mib, before/mib, mem)

	// Real work: 64 MiB more every 100 ms, each page written, until the
	// ballast has given back 256 MiB or more, one release at least for
	// pressure. That is more than the band within which a tick would not
	// grow it back anyway (1 point of MemTotal: 240 MiB on 24 GiB).
	took, free := pressMemory(t, e, logFrom, before, avail0-reserve+768*mib, reserve)
	// Releases still in flight (MemAvailable shows a release a second or
	// so late) settle; then the work ends.
	time.Sleep(time.Second)
	released, _ := plannedMemory(e, logFrom)
	settled := time.Now()
	left := pids(ofKind(h.holders(), "memory"))
	free()
	freedAt := time.Now()
	t.Logf("took %d MiB; the ballast gave way to %d MiB (%d holders), was %d MiB; the work ended",
		took/mib, released/mib, len(left), before/mib)

	// MemAvailable comes back with room for the ballast to grow again.
	waitFor(t, 5*time.Second, "MemAvailable back", func() (bool, string) {
		_, avail := meminfo(t)
		return avail > reserve+256*mib, fmt.Sprintf("MemAvailable %d MiB, reserve %d MiB", avail/mib, reserve/mib)
	})
	_, avail := meminfo(t)
	t.Logf("MemAvailable %d MiB, %d MiB over the reserve, %v after the work ended", avail/mib, (avail-reserve)/mib,
		time.Since(freedAt).Round(time.Millisecond))

	// For four ticks the ballast stays at or below what was left.
	var holdOff float64
	badHoldOff := ""
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, p := range ofKind(h.holders(), "memory") {
			if !slices.Contains(left, p.pid) {
				t.Fatalf("a memory holder started %v after the work ended, within the hold-off: %v (holders then: %v)",
					time.Since(freedAt).Round(time.Millisecond), p, left)
			}
		}
		body := scrapeWithin(t, e, 2*time.Second)
		holdOff = value(body, `cro_holder_hold_off_seconds{resource="memory"}`)
		if !(holdOff > 0 && holdOff <= 300) && badHoldOff == "" {
			badHoldOff = fmt.Sprintf("%v, %v after the work ended", holdOff, time.Since(freedAt).Round(time.Millisecond))
		}
		// A tick measures the holders before it acts: one before the
		// release settled may show chunks it stopped.
		tick := time.Unix(0, int64(value(body, "cro_last_sample_timestamp_seconds")*1e9))
		if b := value(body, `cro_holder_bytes{resource="memory"}`); tick.After(settled) && b > float64(released)+float64(len(left))*16*mib {
			t.Fatalf(`cro_holder_bytes{resource="memory"} = %.0f MiB at the tick of %s, above the %d MiB left after the release`,
				b/mib, tick.Format("15:04:05.000"), released/mib)
		}
	}
	if badHoldOff != "" {
		t.Errorf(`cro_holder_hold_off_seconds{resource="memory"} = %s, after a pressure release; want above 0, at most 300`, badHoldOff)
	}
	if planned, _ := plannedMemory(e, logFrom); planned > released {
		t.Errorf("the ballast was planned to grow back to %d MiB after the release (to %d MiB) within the hold-off",
			planned/mib, released/mib)
	}
	_, avail = meminfo(t)
	t.Logf("4 s later: ballast still %d MiB, hold-off %.0f s left, MemAvailable %d MiB over the reserve", released/mib, holdOff, (avail-reserve)/mib)
}

// pressMemory takes memory as real work does, 64 MiB every 100 ms, each
// page written, until the ballast planned has given back 256 MiB or more
// of before, one release at least for pressure; it fails the test once it
// has taken limit bytes. free gives the memory back, as the test's end
// does too.
func pressMemory(t *testing.T, e *exporter, logFrom int, before, limit, reserve int64) (took int64, free func()) {
	t.Helper()
	var taken [][]byte
	free = func() {
		for _, m := range taken {
			unix.Munmap(m)
		}
		taken = nil
	}
	t.Cleanup(free)
	const step = 64 * mib
	for {
		planned, pressure := plannedMemory(e, logFrom)
		if pressure && planned >= 0 && before-planned >= 256*mib {
			break
		}
		if took >= limit {
			_, avail := meminfo(t)
			t.Fatalf("took %d MiB of memory (MemAvailable now %d MiB, reserve %d MiB) and the ballast did not give back 256 MiB, for pressure",
				took/mib, avail/mib, reserve/mib)
		}
		m, err := unix.Mmap(-1, 0, step, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, m)
		for off := 0; off < len(m); off += 4096 {
			m[off] = 1
		}
		took += step
		time.Sleep(100 * time.Millisecond)
	}
	return took, free
}

// A file someone puts in the fill dir of a running daemon stops the fill
// from growing; it is said once when it appears and once when it goes, not
// at every tick and watch, and the file is never touched.
func TestAForeignFileInTheFillDirIsLoggedOnceAndLeftAlone(t *testing.T) {
	h := newHost(t)
	// Half of the 64 MiB tmpfs: fill grows over a few ticks of 1 s.
	e := h.start("--target.memory=0", "--target.cpu=0", "--target.disk=0.5")
	waitFor(t, 10*time.Second, "a fill file", func() (bool, string) {
		n := len(fillFiles(t, h.fillDir()))
		return n > 0, fmt.Sprintf("%d fill files", n)
	})
	foreign := filepath.Join(h.fillDir(), "notes.txt")
	content := []byte("a user's notes\n")
	if err := os.WriteFile(foreign, content, 0o600); err != nil {
		t.Fatal(err)
	}
	// The fill is checked every few seconds even when its size stays.
	waitFor(t, 10*time.Second, "the foreign file named in the log", func() (bool, string) {
		return strings.Contains(e.stderr.String(), "notes.txt"), e.stderr.String()
	})
	time.Sleep(4 * time.Second) // 4 ticks and 16 watches more
	if n := strings.Count(e.stderr.String(), "notes.txt"); n != 1 {
		t.Errorf("the foreign file was named in %d log lines, want 1:\n%s", n, e.stderr)
	}
	if got, err := os.ReadFile(foreign); err != nil || !bytes.Equal(got, content) {
		t.Errorf("the foreign file: %q, %v; want it untouched", got, err)
	}
	if err := os.Remove(foreign); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the end of the condition said", func() (bool, string) {
		return strings.Contains(e.stderr.String(), "applying holder load: works again"), e.stderr.String()
	})
	if n := strings.Count(e.stderr.String(), "notes.txt"); n != 1 {
		t.Errorf("the foreign file was named in %d log lines, want 1", n)
	}
}
