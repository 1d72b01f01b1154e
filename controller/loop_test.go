package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

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
		if err := restored.Load(loop.cfg.StateDir, time.Now(), slog.New(slog.DiscardHandler)); err != nil {
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
		Publish: func(*State) {}, Logger: slog.New(slog.DiscardHandler),
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

// textLogger logs as text to w.
func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
