package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/logtest"
)

// published is the states a loop published, safe to read from the test.
type published struct {
	mu     sync.Mutex
	states []*State
}

func (p *published) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.states)
}

func (p *published) last() *State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.states[len(p.states)-1]
}

// testLoop returns a dry-run loop over a host at cpu 0.5, memory 0.25, disk
// 0.75, whose reads fail while failing is set, and the states it published.
func testLoop(t *testing.T, failing *atomic.Bool, logs io.Writer) (*Loop, *published) {
	p := new(published)
	return NewLoop(Config{
		Read: func(now time.Time) (host.Sample, error) {
			if failing.Load() {
				return host.Sample{}, errors.New("reading /proc/stat: boom")
			}
			return host.Sample{Time: now, CPU: 0.5, MemoryTotal: 400, MemoryAvailable: 300, DiskSize: 400, DiskUsed: 300, DiskAvailable: 100}, nil
		},
		Averages: NewAverages(30*24*time.Hour, 30*time.Second),
		Spec:     Classify(8 << 30),
		Targets:  map[host.Resource]float64{host.CPU: 0.25, host.Memory: 0.25, host.Disk: 0.25},
		Ceiling:  0.9,
		Chunk:    maxStep,
		StateDir: t.TempDir(),
		Interval: 15 * time.Second,
		Publish: func(s *State) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.states = append(p.states, s)
		},
		Logger: textLogger(logs),
	}), p
}

// running runs loop until the function it returns, which returns what Run
// did.
func running(t *testing.T, loop *Loop) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- loop.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestLoopPublishesEveryIntervalAndSavesEveryFiveMinutesAndAtTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		loop, published := testLoop(t, &failing, io.Discard)
		saved := filepath.Join(loop.cfg.StateDir, averagesFile)
		stop := running(t, loop)

		time.Sleep(5*time.Minute - time.Second)
		synctest.Wait()
		if got := published.len(); got != 19 {
			t.Errorf("after 4m59s: %d states published, want 19 (one per 15 s)", got)
		}
		if _, err := os.Stat(saved); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("averages saved before 5 minutes: %v", err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, err := os.Stat(saved); err != nil {
			t.Errorf("averages not saved after 5 minutes: %v", err)
		}

		time.Sleep(time.Minute)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		restored := NewAverages(30*24*time.Hour, 30*time.Second)
		if err := restored.Load(loop.cfg.StateDir, time.Now(), discard()); err != nil {
			t.Fatal(err)
		}
		for _, r := range host.Resources {
			if got, want := restored.History(r), loop.cfg.Averages.History(r); got != want || want == 0 {
				t.Errorf("%s history after the final save: %v, want %v (> 0)", r, got, want)
			}
		}
	})
}

func TestLoopStepPublishesUsageAveragesAndTargets(t *testing.T) {
	var failing atomic.Bool
	loop, published := testLoop(t, &failing, io.Discard)
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		s, _ := loop.cfg.Read(now.Add(time.Duration(i) * 15 * time.Second))
		loop.Step(s)
	}
	last := published.last()
	want := map[host.Resource]float64{host.CPU: 0.5, host.Memory: 0.25, host.Disk: 0.75}
	for r, usage := range want {
		rs := last.Resources[r]
		if rs.Average != usage || rs.Target != 0.25 || rs.History <= 0 {
			t.Errorf("%s: %+v, want average %v, target 0.25, some history", r, rs, usage)
		}
	}
	if last.Spec != "small" || last.Ceiling != 0.9 {
		t.Errorf("spec %q ceiling %v, want small 0.9", last.Spec, last.Ceiling)
	}
}

func TestLoopSkipsTicksWhoseReadFailsAndSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		failing.Store(true)
		logs := new(logtest.Buffer)
		loop, published := testLoop(t, &failing, logs)
		stop := running(t, loop)

		time.Sleep(time.Minute)
		synctest.Wait()
		if published.len() != 0 {
			t.Errorf("%d states published from failed reads", published.len())
		}
		if !strings.Contains(logs.String(), "boom") {
			t.Errorf("the failed read was not logged:\n%s", logs)
		}
		failing.Store(false)
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if published.len() != 1 {
			t.Errorf("%d states published after the host came back, want 1", published.len())
		}
		stop()
	})
}

func TestASinceBootCPUFigureNeitherPlansNorHoldsBackCPUHolders(t *testing.T) {
	model := idleHost(8 * gib)
	cfg := modelConfig(model)
	cfg.Targets = map[host.Resource]float64{host.CPU: 0.25}
	loop := NewLoop(cfg)
	sample := func(cpu float64, span time.Duration, at time.Duration) host.Sample {
		return host.Sample{Time: simStart.Add(at), CPUs: 2, CPU: cpu, CPUSpan: span,
			MemoryTotal: 8 * gib, MemoryAvailable: 7 * gib, DiskSize: 100 * gib, DiskUsed: 10 * gib, DiskAvailable: 90 * gib}
	}
	loop.Step(sample(0.6, 400*time.Hour, 0)) // a busy life since boot
	if loop.planned.CPU != 0 {
		t.Errorf("the since-boot figure planned CPU %v", loop.planned.CPU)
	}
	loop.Step(sample(0.01, 15*time.Second, 15*time.Second)) // idle now
	if want := loop.control.Of(host.CPU).setpoint - 0.01; want < 0.245 || math.Abs(loop.planned.CPU-want) > 1e-9 {
		t.Errorf("after the first real interval CPU is planned at %v, want %v", loop.planned.CPU, want)
	}
}

// idleHost is a modelled idle host of two CPUs, memTotal bytes of memory
// and a 100 GiB disk.
func idleHost(memTotal uint64) *Model {
	return &Model{CPUs: 2, MemoryTotal: memTotal, DiskSize: 100 * gib, Real: steady(idle)}
}

// modelConfig is a loop's configuration with model's holders: fresh
// 30-day averages, the ceiling at 0.9, reserves of 1 GiB, chunks of
// maxStep, a tick every 15 s, and no targets; states and logs go nowhere.
func modelConfig(model *Model) Config {
	return Config{
		Holders: model, Averages: NewAverages(30*24*time.Hour, 30*time.Second),
		Ceiling: 0.9, MemoryReserve: gib, DiskReserve: gib, Chunk: maxStep, Interval: 15 * time.Second,
		Publish: func(*State) {}, Logger: discard(),
	}
}

// tickAt is the time of tick i of a loop that ticks every 15 s from
// simStart.
func tickAt(i int) time.Time { return simStart.Add(time.Duration(i) * 15 * time.Second) }

// stepTicks steps loop through ticks from to to-1 of model (tickAt).
func stepTicks(loop *Loop, model *Model, from, to int) {
	for i := from; i < to; i++ {
		s, _ := model.Read(tickAt(i))
		loop.Step(s)
	}
}

// memoryLoop is a loop over a modelled idle 8 GiB host whose memory target
// asks for ballast, with 256 MiB chunks.
func memoryLoop(model *Model) *Loop {
	cfg := modelConfig(model)
	cfg.Targets, cfg.Chunk = map[host.Resource]float64{host.Memory: 0.40}, 256<<20
	return NewLoop(cfg)
}

// ballastHeld is memoryLoop on an idle modelled 8 GiB host after its first
// minute, which planned ballast, and tick, which steps it at a time since
// the start.
func ballastHeld(t *testing.T) (*Model, *Loop, func(at time.Duration)) {
	t.Helper()
	model := idleHost(8 * gib)
	loop := memoryLoop(model)
	tick := func(at time.Duration) {
		s, _ := model.Read(simStart.Add(at))
		loop.Step(s)
	}
	stepTicks(loop, model, 0, 4)
	if loop.planned.Memory == 0 {
		t.Fatal("no ballast planned on an idle host under its memory target")
	}
	return model, loop, tick
}

func TestAfterAPressureReleaseMemoryStaysDownForTheHoldOff(t *testing.T) {
	_, loop, tick := ballastHeld(t)
	grown := loop.planned.Memory
	// Real work takes memory: MemAvailable under the reserve for a moment.
	var w watch
	lookAt(loop, &w, 61*time.Second, gib/2)
	released := loop.planned.Memory
	if released >= grown {
		t.Fatalf("no ballast released: %d, was %d", released, grown)
	}
	// The workload is gone at once, but memory stays down for 5 minutes.
	for at := 75 * time.Second; at < 61*time.Second+5*time.Minute; at += 15 * time.Second {
		tick(at)
		if loop.planned.Memory > released {
			t.Fatalf("ballast grew back to %d at %v, within the hold-off", loop.planned.Memory, at)
		}
	}
	tick(61*time.Second + 5*time.Minute + 15*time.Second)
	if loop.planned.Memory <= released {
		t.Errorf("ballast did not grow after the hold-off: %d", loop.planned.Memory)
	}
}

// lossyHolders is a holder manager whose holders are lost: it measures
// only what is left, and records every load it is asked for.
type lossyHolders struct {
	mu     sync.Mutex
	held   holder.Held
	asked  []holder.Load
	err    error
	usage  chan struct{} // when set, Usage blocks until it is closed
	cpuOps atomic.Int32
}

func (h *lossyHolders) Apply(l holder.Load) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, l)
	return h.err
}

// ballast is the holders' usage while they hold bytes of memory in that
// many processes.
func ballast(bytes int64, holders int) holder.Held {
	var u holder.Held
	*u.Bytes.Of(host.Memory), *u.Holders.Of(host.Memory) = bytes, holders
	return u
}

func (h *lossyHolders) Held() (holder.Held, error) {
	if h.usage != nil {
		<-h.usage
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, nil
}

func (h *lossyHolders) CPUTime() (time.Duration, error) {
	h.cpuOps.Add(1)
	return 0, nil
}

func (h *lossyHolders) last() holder.Load {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.asked[len(h.asked)-1]
}

func TestLostHoldersAreAskedForAgainEveryTickAndRegrowAtMostAGibAStep(t *testing.T) {
	model := idleHost(32 * gib)
	h := &lossyHolders{}
	loop := memoryLoop(model)
	loop.cfg.Holders, loop.cfg.Chunk = h, gib
	// The plan holds 6 GiB; five chunks were killed from outside, and of
	// the new ones, one is still filling.
	loop.planned = holder.Load{Memory: 6 * gib}
	*loop.control.Of(host.Memory) = control{setpoint: 0.3, smooth: 0.1, started: true}
	h.held = ballast(gib+gib/2, 2)
	for i := range 4 {
		before := len(h.asked)
		s, _ := model.Read(tickAt(i))
		loop.Step(s)
		if len(h.asked) != before+1 {
			t.Fatalf("tick %d did not ask the holders again", i)
		}
		// The filling chunk counts whole; on top of it, one more GiB.
		if got, limit := h.last().Memory, roundUp(h.held.Bytes.At(host.Memory), gib)+gib; got > limit || got <= h.held.Bytes.At(host.Memory) {
			t.Fatalf("tick %d asked for %.2f GiB with %.2f GiB held, want more, but at most %.2f",
				i, float64(got)/gib, float64(h.held.Bytes.At(host.Memory))/gib, float64(limit)/gib)
		}
		*h.held.Bytes.Of(host.Memory) = h.last().Memory
	}
}

func TestARepeatedFailureIsLoggedWhenItStartsAndWhenItEnds(t *testing.T) {
	logs := new(logtest.Buffer)
	model := idleHost(8 * gib)
	h := &lossyHolders{err: errors.New("fill dir holds notes.txt")}
	loop := memoryLoop(model)
	loop.cfg.Holders, loop.cfg.Logger = h, textLogger(logs)
	for i := range 20 {
		s, _ := model.Read(tickAt(i))
		loop.Step(s)
		var w watch
		loop.giveWay(s, host.AllParts, &w, 250*time.Millisecond)
	}
	if n := strings.Count(logs.String(), "notes.txt"); n != 1 {
		t.Errorf("the failure was logged %d times in 20 ticks, want once:\n%s", n, logs)
	}
	h.mu.Lock()
	h.err = nil
	h.mu.Unlock()
	s, _ := model.Read(simStart.Add(time.Hour))
	loop.Step(s)
	if n := strings.Count(logs.String(), "applying holder load: works again"); n != 1 {
		t.Errorf("its end was said %d times, want once:\n%s", n, logs)
	}
}

func TestADryRunLoopWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		loop, _ := testLoop(t, &failing, new(logtest.Buffer))
		dir := loop.cfg.StateDir
		loop.cfg.StateDir = ""
		stop := running(t, loop)
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("a loop without a state dir wrote %s", entries[0].Name())
		}
		if _, err := os.Stat(filepath.Join(".", averagesFile)); err == nil {
			t.Errorf("a loop without a state dir wrote %s in the working directory", averagesFile)
		}
	})
}

func TestEveryFailedSaveIsCountedAndARunOfThemLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		logs := new(logtest.Buffer)
		loop, published := testLoop(t, &failing, logs)
		// A state dir that is gone: every save fails.
		loop.cfg.StateDir = filepath.Join(loop.cfg.StateDir, "gone")
		stop := running(t, loop)
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		stop()
		if got := published.last().SaveFailures; got != 3 {
			t.Errorf("cro_state_save_failures_total shows %d after saves at 5, 10 and 15 minutes failed, want each counted", got)
		}
		if n := strings.Count(logs.String(), "saving the averages"); n != 1 {
			t.Errorf("%d log lines about failed saves, want 1:\n%s", n, logs)
		}
	})
}

func TestATickThatSeesMemoryShortFirstHoldsOffToo(t *testing.T) {
	model, loop, tick := ballastHeld(t)
	// A workload takes 60% of memory for one tick, before the watcher
	// reads the host.
	model.Real = steady([3]float64{idle[0], 0.6, idle[2]})
	tick(time.Minute)
	released := loop.planned.Memory
	model.Real = steady(idle)
	for at := time.Minute + 15*time.Second; at < 6*time.Minute; at += 15 * time.Second {
		tick(at)
		if loop.planned.Memory > released {
			t.Fatalf("ballast grew back to %d at %v after the tick released it to %d", loop.planned.Memory, at, released)
		}
	}
}

// A disk that is not measured (its filesystem gone from --disk.path) has
// its fill planned to 0 at once, leaves its average as it was, makes the
// watcher count no reserve release, and is said once when it starts and
// once when it ends; the fill is planned again once it is back.
func TestADiskNotMeasuredIsNeitherAveragedNorFilledAndSaidOnce(t *testing.T) {
	model := idleHost(8 * gib)
	var log bytes.Buffer
	var state *State
	cfg := modelConfig(model)
	cfg.Targets, cfg.Chunk = map[host.Resource]float64{host.Disk: 0.40}, 256<<20
	cfg.Publish, cfg.Logger = func(s *State) { state = s }, textLogger(&log)
	loop := NewLoop(cfg)
	stepTicks(loop, model, 0, 4)
	if loop.planned.Disk == 0 {
		t.Fatal("no fill planned on an idle disk under its target")
	}
	average := loop.cfg.Averages.Value(host.Disk)
	for i := 4; i < 8; i++ {
		s, _ := model.Read(tickAt(i))
		s.DiskSize, s.DiskUsed, s.DiskAvailable = 0, 0, 0
		s.DiskErr = errors.New("statfs /srv: on device 0:7, no longer on the filesystem it was on at start (device 0:52)")
		loop.Step(s)
		var w watch
		loop.giveWay(s, host.AllParts, &w, 250*time.Millisecond)
		if loop.planned.Disk != 0 || loop.applied.Disk != 0 {
			t.Fatalf("tick %d without the disk: fill planned %d, applied %d; want 0", i, loop.planned.Disk, loop.applied.Disk)
		}
	}
	if got := loop.cfg.Averages.Value(host.Disk); got != average {
		t.Errorf("disk average moved from %v to %v while the disk was not measured", average, got)
	}
	if r := state.Resources[host.Disk].Releases; r != [len(Reasons)]uint64{} {
		t.Errorf("disk releases %v while the disk was not measured, want none", r)
	}
	if state.DiskLosses != 1 {
		t.Errorf("DiskLosses = %d, want 1", state.DiskLosses)
	}
	stepTicks(loop, model, 8, 12)
	if loop.planned.Disk == 0 {
		t.Error("no fill planned once the disk is back")
	}
	for _, msg := range []string{"disk not measured", "disk measured again"} {
		if n := strings.Count(log.String(), msg); n != 1 {
			t.Errorf("%d log lines %q, want 1:\n%s", n, msg, log.String())
		}
	}
}
