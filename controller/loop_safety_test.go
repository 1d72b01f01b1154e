package controller

import (
	"bytes"
	"errors"
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
