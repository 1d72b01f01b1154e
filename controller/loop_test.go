package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/internal/cgroup"
)

// published is the states a loop published, safe to read from the test.
type published struct {
	mu     sync.Mutex
	states []*collector.State
}

func (p *published) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.states)
}

func (p *published) last() *collector.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.states[len(p.states)-1]
}

// testLoop returns a dry-run loop over a host at cpu 0.5, memory 0.25, disk
// 0.75, whose reads fail while failing is set, and the states it published.
func testLoop(t *testing.T, failing *atomic.Bool, logs io.Writer) (*Loop, *published) {
	p := new(published)
	return NewLoop(Config{
		Read: func(now time.Time) (collector.Sample, error) {
			if failing.Load() {
				return collector.Sample{}, errors.New("reading /proc/stat: boom")
			}
			return collector.Sample{Time: now, CPU: 0.5, MemoryTotal: 400, MemoryAvailable: 300, DiskSize: 400, DiskUsed: 300, DiskAvailable: 100}, nil
		},
		Averages: NewAverages(30*24*time.Hour, 30*time.Second),
		Spec:     Classify(8 << 30),
		Targets:  map[collector.Resource]float64{collector.CPU: 0.25, collector.Memory: 0.25, collector.Disk: 0.25},
		Ceiling:  0.9,
		Chunk:    maxStep,
		StateDir: t.TempDir(),
		Interval: 15 * time.Second,
		Publish: func(s *collector.State) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.states = append(p.states, s)
		},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}), p
}

func TestLoopPublishesEveryIntervalAndSavesEveryFiveMinutesAndAtTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		loop, published := testLoop(t, &failing, io.Discard)
		saved := filepath.Join(loop.cfg.StateDir, averagesFile)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- loop.Run(ctx) }()

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
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		restored := NewAverages(30*24*time.Hour, 30*time.Second)
		if err := restored.Load(loop.cfg.StateDir, time.Now(), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		for _, r := range collector.Resources {
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
	want := map[collector.Resource]float64{collector.CPU: 0.5, collector.Memory: 0.25, collector.Disk: 0.75}
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
		logs := new(syncBuffer)
		loop, published := testLoop(t, &failing, logs)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- loop.Run(ctx) }()

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
		cancel()
		<-done
	})
}

// syncBuffer is a bytes.Buffer the loop may write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWatchReleasesWholeChunksOnceForEachShortfall(t *testing.T) {
	const mib = 1 << 20
	model := &Model{CPUs: 2, MemoryTotal: 8192 * mib, DiskSize: 100 * gib, Real: steady(idle)}
	loop := NewLoop(Config{
		Holders: model, Averages: NewAverages(30*24*time.Hour, 30*time.Second), Ceiling: 0.9,
		MemoryReserve: 1024 * mib, Chunk: 128 * mib, Logger: slog.New(slog.DiscardHandler),
	})
	loop.planned = Load{Memory: 300 * mib} // chunks of 128, 128 and 44 MiB
	var w watch
	at := func(avail int64, after time.Duration) {
		loop.giveWay(collector.Sample{Time: simStart.Add(after), CPUs: 2, MemoryTotal: 8192 * mib,
			MemoryAvailable: uint64(avail), DiskSize: 100 * gib, DiskUsed: 50 * gib, DiskAvailable: 50 * gib}, collector.AllParts, &w, 250*time.Millisecond)
	}
	at(1024*mib-60*mib, 0) // 60 MiB short: the 44 MiB chunk and one full one go
	if got := loop.planned.Memory; got != 128*mib {
		t.Fatalf("after a 60 MiB shortfall ballast is %d MiB, want 128", got/mib)
	}
	at(1024*mib-60*mib, 500*time.Millisecond) // MemAvailable has not caught up yet
	if got := loop.planned.Memory; got != 128*mib {
		t.Errorf("a lagging MemAvailable released again: %d MiB left", got/mib)
	}
	at(1024*mib-60*mib+172*mib, 1*time.Second) // the release shows: 172 MiB more
	at(1024*mib-30*mib, 1250*time.Millisecond) // new real work, while the credit would still run
	if got := loop.planned.Memory; got != 0 {
		t.Errorf("a new shortfall after the release showed left %d MiB", got/mib)
	}
	if got := loop.control.of(collector.Memory).releases[collector.ReasonPressure]; got != 2 {
		t.Errorf("%d pressure releases counted, want 2", got)
	}
	if model.load.Memory != 0 {
		t.Errorf("the holders still hold %d MiB", model.load.Memory/mib)
	}
}

func TestASinceBootCPUFigureNeitherPlansNorHoldsBackCPUHolders(t *testing.T) {
	model := &Model{CPUs: 2, MemoryTotal: 8 * gib, DiskSize: 100 * gib, Real: steady(idle)}
	loop := NewLoop(Config{
		Holders: model, Averages: NewAverages(30*24*time.Hour, 30*time.Second), Targets: map[collector.Resource]float64{collector.CPU: 0.25},
		Ceiling: 0.9, MemoryReserve: gib, DiskReserve: gib, Chunk: maxStep, Interval: 15 * time.Second,
		Publish: func(*collector.State) {}, Logger: slog.New(slog.DiscardHandler),
	})
	sample := func(cpu float64, span time.Duration, at time.Duration) collector.Sample {
		return collector.Sample{Time: simStart.Add(at), CPUs: 2, CPU: cpu, CPUSpan: span,
			MemoryTotal: 8 * gib, MemoryAvailable: 7 * gib, DiskSize: 100 * gib, DiskUsed: 10 * gib, DiskAvailable: 90 * gib}
	}
	loop.Step(sample(0.6, 400*time.Hour, 0)) // a busy life since boot
	if loop.planned.CPU != 0 {
		t.Errorf("the since-boot figure planned CPU %v", loop.planned.CPU)
	}
	loop.Step(sample(0.01, 15*time.Second, 15*time.Second)) // idle now
	if want := loop.control.of(collector.CPU).setpoint - 0.01; want < 0.245 || math.Abs(loop.planned.CPU-want) > 1e-9 {
		t.Errorf("after the first real interval CPU is planned at %v, want %v", loop.planned.CPU, want)
	}
}

func TestALimitBelowTheTargetIsWarnedOnceAndItsEndSaidOnce(t *testing.T) {
	logs := new(syncBuffer)
	model := &Model{CPUs: 2, MemoryTotal: 8 * gib, DiskSize: 100 * gib, Real: steady(idle)}
	loop := NewLoop(Config{
		Holders: model, Averages: NewAverages(30*24*time.Hour, 30*time.Second),
		Targets: map[collector.Resource]float64{collector.CPU: 0.25, collector.Memory: 0.40, collector.Disk: 0.25},
		// Keeping 7 of 8 GiB available caps memory at 12.5%, under its 40%.
		Ceiling: 0.9, MemoryReserve: 7 * gib, DiskReserve: gib, Chunk: maxStep, Interval: 15 * time.Second,
		Publish: func(*collector.State) {}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	for i := range 3 {
		s, _ := model.Read(simStart.Add(time.Duration(i) * 15 * time.Second))
		loop.Step(s)
	}
	if n := strings.Count(logs.String(), "target cannot be met"); n != 1 || !strings.Contains(logs.String(), "resource=memory") || !strings.Contains(logs.String(), `by="the reserve"`) {
		t.Errorf("want one warning that the reserve keeps memory's target out of reach, got %d:\n%s", n, logs)
	}
	loop.cfg.MemoryReserve = gib
	s, _ := model.Read(simStart.Add(time.Minute))
	loop.Step(s)
	if !strings.Contains(logs.String(), "target can be met again") {
		t.Errorf("the end of the warning was not said:\n%s", logs)
	}
}

func TestDiskFillIsSizedAsDfCountsUsage(t *testing.T) {
	// 100 GiB with 20 reserved for root, 10 used and 70 available: df
	// says 10 / (10 + 70) = 12.5%.
	s := collector.Sample{DiskSize: 100 * gib, DiskUsed: 10 * gib, DiskAvailable: 70 * gib}
	if got := s.Usage(collector.Disk); got != 0.125 {
		t.Fatalf("usage %v, want df's 0.125", got)
	}
	// Held at 0.40, df counts 0.40: 0.40 × 80 - 10 = 22 GiB of fill.
	load := withRatio(Load{}, collector.Disk, 0.40-s.Usage(collector.Disk), s)
	if load.Disk != 22*gib {
		t.Errorf("fill for 0.40: %d GiB, want 22", load.Disk/gib)
	}
	held := s
	held.DiskUsed += uint64(load.Disk)
	held.DiskAvailable -= uint64(load.Disk)
	if got := held.Usage(collector.Disk); math.Abs(got-0.40) > 1e-12 {
		t.Errorf("df's usage with the fill: %v, want 0.40", got)
	}
	if got := ratioOf(collector.Disk, load, s); math.Abs(got-0.275) > 1e-12 {
		t.Errorf("the fill's share %v, want 22/80", got)
	}
	// A reserve of 8 GiB available leaves usage at most 1 - 8/80.
	l := NewLoop(Config{Ceiling: 0.95, DiskReserve: 8 * gib})
	if limit, by := l.limit(collector.Disk, s); math.Abs(limit-0.9) > 1e-12 || by != byReserve {
		t.Errorf("limit %v (by %s), want 0.9 by the reserve", limit, by.name(collector.Disk))
	}
}

// TestHoldersArePlannedWithinTheDaemonsCgroup: inside a memory limit of 1
// GiB (100 MiB charged besides the ballast and its holders' 4 MiB each)
// and a CPU quota of half a CPU
// of 2, targets of 0.40 of 8 GiB and 0.6 of the machine are out of reach:
// ballast stays under the limit less its headroom, the burner within the
// quota less its headroom, and each is said once, with the shortfall in
// the state.
func TestHoldersArePlannedWithinTheDaemonsCgroup(t *testing.T) {
	logs := new(syncBuffer)
	model := &Model{CPUs: 2, MemoryTotal: 8 * gib, DiskSize: 100 * gib, Real: steady(idle)}
	loop := inCgroup(model, cgroup.Limits{Memory: cgroup.Memory{Limit: gib}, CPUs: 0.5}, 100<<20, logs)
	loop.cfg.Targets = map[collector.Resource]float64{collector.CPU: 0.6, collector.Memory: 0.40, collector.Disk: 0.25}
	var last *collector.State
	loop.cfg.Publish = func(s *collector.State) { last = s }
	for i := range 8 {
		s, _ := model.Read(simStart.Add(time.Duration(i) * 15 * time.Second))
		loop.Step(s)
	}
	// 1 GiB less 100 MiB less a tenth of 1 GiB, less 4 MiB for the one
	// holder of the rest.
	room := int64(gib - 100<<20 - gib/10 - 4<<20)
	if model.load.Memory > room || model.load.Memory < room-64<<20 {
		t.Errorf("ballast %d MiB; want at most, and near, the cgroup's room of %d MiB", model.load.Memory>>20, room>>20)
	}
	// Half a CPU less a tenth, of 2.
	if cpu := model.load.CPU; cpu > 0.225+1e-9 || cpu < 0.2 {
		t.Errorf("burner duty %v; want at most, and near, 0.225", cpu)
	}
	for _, want := range []string{`resource=memory`, `resource=cpu`} {
		if n := strings.Count(logs.String(), `"target cannot be met" `+want); n != 1 {
			t.Errorf("%d warnings for %s; want 1:\n%s", n, want, logs)
		}
	}
	for _, by := range []string{`by="the cgroup's memory limit"`, `by="the cgroup's CPU quota"`} {
		if !strings.Contains(logs.String(), by) {
			t.Errorf("no warning names %s:\n%s", by, logs)
		}
	}
	// Real usage 0.10 and room 0.1 of 8 GiB reach 0.20 of the 0.40; real
	// CPU 0.01 and the quota's 0.225 reach 0.235 of 0.6.
	if got := last.Resources[collector.Memory].Shortfall; math.Abs(got-(0.40-0.10-float64(room)/(8*gib))) > 0.01 {
		t.Errorf("memory shortfall %v; want about %v", got, 0.40-0.10-float64(room)/(8*gib))
	}
	if got := last.Resources[collector.CPU].Shortfall; math.Abs(got-(0.6-0.01-0.225)) > 0.01 {
		t.Errorf("CPU shortfall %v; want about 0.365", got)
	}
	if got := last.Resources[collector.Disk].Shortfall; got != 0 {
		t.Errorf("disk shortfall %v; want 0: nothing bounds it", got)
	}
}

// TestAnUnreachableTargetIsInReachAgainOnlyAMarginAboveTheEdge: a limit
// that real usage moves about the edge (the cgroup's) says nothing more
// until it is a margin above it.
func TestAnUnreachableTargetIsInReachAgainOnlyAMarginAboveTheEdge(t *testing.T) {
	logs := new(syncBuffer)
	l := NewLoop(Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	var c control
	for _, limit := range []float64{0.40, 0.5049, 0.5051, 0.5049, 0.5099, 0.5101, 0.4} {
		l.warnUnreachable(collector.Memory, &c, 0.5, limit, byCgroup)
	}
	if warned, again := strings.Count(logs.String(), "target cannot be met"), strings.Count(logs.String(), "target can be met again"); warned != 2 || again != 1 {
		t.Errorf("%d warnings and %d ends; want 2 and 1 (in reach at 0.5101 only, out again at 0.4):\n%s", warned, again, logs)
	}
	if !strings.Contains(logs.String(), "short_by=0.1 ") {
		t.Errorf("the warning does not say by how much:\n%s", logs)
	}
	if math.Abs(c.shortfall-0.1) > 1e-12 {
		t.Errorf("shortfall %v; want 0.1", c.shortfall)
	}
}

// inCgroup is a loop on model inside a cgroup of limits, charged others
// bytes besides the model's ballast and 4 MiB for each of its holders.
func inCgroup(model *Model, limits cgroup.Limits, others int64, logs io.Writer) *Loop {
	return NewLoop(Config{
		Holders: model, Averages: NewAverages(30*24*time.Hour, 30*time.Second),
		Ceiling: 0.9, MemoryReserve: gib, DiskReserve: gib, Chunk: maxStep, Interval: 15 * time.Second,
		Cgroup: func() (cgroup.Limits, error) {
			holders := (model.load.Memory + maxStep - 1) / maxStep
			limits.Memory.Usage = others + model.load.Memory + holders*4<<20
			return limits, nil
		},
		Publish: func(*collector.State) {}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
}

// TestACgroupThatLeavesLessThanTheBandStillHoldsMostOfIt: 256 MiB of a
// 24 GiB host is under 1%, the smallest change of holder load worth making
// (band); what a cgroup leaves is held all the same, not nothing.
func TestACgroupThatLeavesLessThanTheBandStillHoldsMostOfIt(t *testing.T) {
	model := &Model{CPUs: 2, MemoryTotal: 24 * gib, DiskSize: 100 * gib, Real: steady(idle)}
	loop := inCgroup(model, cgroup.Limits{Memory: cgroup.Memory{Limit: 256 << 20}}, 10<<20, io.Discard)
	loop.cfg.Targets = map[collector.Resource]float64{collector.CPU: 0, collector.Memory: 0.40, collector.Disk: 0}
	for i := range 4 {
		s, _ := model.Read(simStart.Add(time.Duration(i) * 15 * time.Second))
		loop.Step(s)
	}
	// 256 MiB less 10, less the headroom of 32, less 4 for the holder.
	if got := model.load.Memory; got < 200<<20 || got > 210<<20 {
		t.Errorf("ballast %d MiB; want the 210 MiB the cgroup leaves, or nearly", got>>20)
	}
}

// sentCPU is the duty the loop last sent the holders, read as the watcher
// writes it.
func sentCPU(l *Loop) float64 {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	return l.sent.CPU
}

func TestWatchReadsOnlyWhatIsHeld(t *testing.T) {
	for _, tc := range []struct {
		name    string
		planned Load
		want    collector.Parts
	}{
		{"nothing held: nothing read", Load{}, 0},
		{"ballast: MemAvailable", Load{Memory: gib}, collector.MemoryPart},
		{"fill: the disk", Load{Disk: gib}, collector.DiskPart},
		{"a burner: the CPU", Load{CPU: 0.2}, collector.CPUPart},
		{"all three", Load{CPU: 0.2, Memory: gib, Disk: gib}, collector.AllParts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				model := &Model{CPUs: 2, MemoryTotal: 8 * gib, DiskSize: 100 * gib, Real: steady(idle)}
				loop := memoryLoop(model)
				loop.planned = tc.planned
				var mu sync.Mutex
				var reads []collector.Parts
				read := func(now time.Time, parts collector.Parts) (collector.Sample, error) {
					mu.Lock()
					reads = append(reads, parts)
					mu.Unlock()
					s, err := model.Read(now)
					s.CPUSpan = 250 * time.Millisecond
					return s, err
				}
				ctx, cancel := context.WithCancel(t.Context())
				go loop.Watch(ctx, read, 250*time.Millisecond)
				time.Sleep(time.Second + time.Millisecond)
				synctest.Wait()
				cancel()
				mu.Lock()
				defer mu.Unlock()
				want := 4
				if tc.want == 0 {
					want = 0
				}
				if len(reads) != want || slices.ContainsFunc(reads, func(p collector.Parts) bool { return p != tc.want }) {
					t.Errorf("reads in a second: %v, want %d of %v", reads, want, tc.want)
				}
			})
		})
	}
}

func TestABurnerThatStopsBetweenBurstsIsStoppedByTheWatcherWithoutAReadOfTheCPU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := &Model{CPUs: 2, MemoryTotal: 8 * gib, DiskSize: 100 * gib, Real: steady(idle)}
		loop := memoryLoop(model)
		o := Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute}
		loop.cfg.Averages.SetObjective(collector.CPU, o)
		now := time.Now()
		p := loop.cfg.Averages.periods[collector.CPU]
		// A burst through the current period alone, as the tick before
		// it decided.
		k := p.number(now)
		p.sched.advance(k-1, func(next int64, current bool) bool { return next == k })
		if !loop.burning(now) {
			t.Fatal("no burst planned for the current period")
		}
		loop.planned = Load{CPU: 0.3}
		loop.control.of(collector.CPU).setpoint = 0.3
		var cpuReads atomic.Int64
		read := func(now time.Time, parts collector.Parts) (collector.Sample, error) {
			if parts&collector.CPUPart != 0 {
				cpuReads.Add(1)
			}
			s, err := model.Read(now)
			s.CPUSpan = 250 * time.Millisecond
			return s, err
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go loop.Watch(ctx, read, 250*time.Millisecond)
		time.Sleep(time.Second)
		synctest.Wait()
		if sentCPU(loop) == 0 || cpuReads.Load() == 0 {
			t.Fatalf("during the burst: duty %v after %d reads of the CPU, want the burner running and watched", sentCPU(loop), cpuReads.Load())
		}
		// Past the period's end, the burst is over.
		time.Sleep(time.Until(now.Truncate(time.Minute).Add(time.Minute + time.Second)))
		synctest.Wait()
		before := cpuReads.Load()
		time.Sleep(time.Second)
		synctest.Wait()
		if sentCPU(loop) != 0 || cpuReads.Load() != before {
			t.Errorf("after the burst: duty %v, %d more reads of the CPU; want 0 and none", sentCPU(loop), cpuReads.Load()-before)
		}
	})
}

func TestTheWatcherSleepsUntilATickPlansLoadOrABurstIsDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := &Model{CPUs: 2, MemoryTotal: 8 * gib, DiskSize: 100 * gib, Real: steady(idle)}
		loop := memoryLoop(model)
		loop.cfg.Averages.SetObjective(collector.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute})
		var mu sync.Mutex
		var reads []collector.Parts
		read := func(now time.Time, parts collector.Parts) (collector.Sample, error) {
			mu.Lock()
			reads = append(reads, parts)
			mu.Unlock()
			s, err := model.Read(now)
			s.CPUSpan = 250 * time.Millisecond
			return s, err
		}
		count := func(part collector.Parts) (n int) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range reads {
				if p&part != 0 {
					n++
				}
			}
			return n
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go loop.Watch(ctx, read, 250*time.Millisecond)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := count(collector.AllParts); n != 0 {
			t.Fatalf("%d reads with nothing held", n)
		}

		// A burst planned for the next minute: nothing is read before it
		// is due, the CPU from burstLead before it.
		now := time.Now()
		p := loop.cfg.Averages.periods[collector.CPU]
		k := p.number(now)
		loop.mu.Lock()
		p.sched.advance(k, func(next int64, current bool) bool { return next == k+1 })
		loop.planned = Load{CPU: 0.3}
		loop.control.of(collector.CPU).setpoint = 0.3
		loop.mu.Unlock()
		loop.planning <- struct{}{}
		due := p.start(k + 1).Add(-burstLead)
		time.Sleep(time.Until(due) - time.Millisecond)
		synctest.Wait()
		if n := count(collector.AllParts); n != 0 {
			t.Fatalf("%d reads before the burst was due", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := count(collector.CPUPart); n != 1 || sentCPU(loop) == 0 {
			t.Fatalf("at the burst's start: %d reads of the CPU, duty %v; want 1 and the burner running", n, sentCPU(loop))
		}
		// Past it, the burner stops and the watcher sleeps again.
		time.Sleep(time.Until(p.start(k + 2).Add(time.Second)))
		synctest.Wait()
		n := count(collector.AllParts)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if sentCPU(loop) != 0 || count(collector.AllParts) != n {
			t.Errorf("after the burst: duty %v, %d more reads; want 0 and none", sentCPU(loop), count(collector.AllParts)-n)
		}

		// A tick that plans ballast wakes it.
		loop.mu.Lock()
		loop.planned = Load{}
		loop.mu.Unlock()
		s, _ := model.Read(time.Now())
		loop.Step(s)
		if loop.planned.Memory == 0 {
			t.Fatal("the tick planned no ballast")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := count(collector.MemoryPart); n != 4 {
			t.Errorf("%d reads of MemAvailable in the second after a tick planned ballast, want 4", n)
		}
	})
}
