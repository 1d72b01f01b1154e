package controller

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

func TestWatchReleasesWholeChunksOnceForEachShortfall(t *testing.T) {
	const mib = 1 << 20
	model := idleHost(8 * gib)
	cfg := modelConfig(model) // a reserve of 1024 MiB
	cfg.Chunk = 128 * mib
	loop := NewLoop(cfg)
	loop.planned = holder.Load{Memory: 300 * mib} // chunks of 128, 128 and 44 MiB
	var w watch
	at := func(avail int64, after time.Duration) { lookAt(loop, &w, after, avail) }
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
	if got := loop.control.Of(host.Memory).releases[ReasonPressure]; got != 2 {
		t.Errorf("%d pressure releases counted, want 2", got)
	}
	if model.load.Memory != 0 {
		t.Errorf("the holders still hold %d MiB", model.load.Memory/mib)
	}
}

// lookAt is one look of loop's watcher, which remembers w, at an idle host
// of 8 GiB (idleHost) at after since simStart, with avail bytes of
// MemAvailable.
func lookAt(loop *Loop, w *watch, after time.Duration, avail int64) {
	loop.giveWay(host.Sample{Time: simStart.Add(after), CPUs: 2, MemoryTotal: 8 * gib,
		MemoryAvailable: uint64(avail), DiskSize: 100 * gib, DiskUsed: 10 * gib, DiskAvailable: 90 * gib}, host.AllParts, w, 250*time.Millisecond)
}

// watchReads reads a model for the watcher, each CPU figure over a
// quarter second, and records the parts of every read.
type watchReads struct {
	model *Model
	mu    sync.Mutex
	parts []host.Parts
}

// watched starts loop's watcher on model, a look every quarter second
// until the test ends, and returns its reads.
func watched(t *testing.T, loop *Loop, model *Model) *watchReads {
	r := &watchReads{model: model}
	go loop.Watch(t.Context(), r.read, 250*time.Millisecond)
	return r
}

func (r *watchReads) read(now time.Time, parts host.Parts) (host.Sample, error) {
	r.mu.Lock()
	r.parts = append(r.parts, parts)
	r.mu.Unlock()
	s, err := r.model.Read(now)
	s.CPUSpan = 250 * time.Millisecond
	return s, err
}

// all is the parts of every read so far.
func (r *watchReads) all() []host.Parts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.parts)
}

// count is how many reads so far read part.
func (r *watchReads) count(part host.Parts) (n int) {
	for _, p := range r.all() {
		if p&part != 0 {
			n++
		}
	}
	return n
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
		planned holder.Load
		want    host.Parts
	}{
		{"nothing held: nothing read", holder.Load{}, 0},
		{"ballast: MemAvailable", holder.Load{Memory: gib}, host.MemoryPart},
		{"fill: the disk", holder.Load{Disk: gib}, host.DiskPart},
		{"a burner: the CPU", holder.Load{CPU: 0.2}, host.CPUPart},
		{"all three", holder.Load{CPU: 0.2, Memory: gib, Disk: gib}, host.AllParts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				model := idleHost(8 * gib)
				loop := memoryLoop(model)
				loop.planned = tc.planned
				watcher := watched(t, loop, model)
				time.Sleep(time.Second + time.Millisecond)
				synctest.Wait()
				want := 4
				if tc.want == 0 {
					want = 0
				}
				if reads := watcher.all(); len(reads) != want || slices.ContainsFunc(reads, func(p host.Parts) bool { return p != tc.want }) {
					t.Errorf("reads in a second: %v, want %d of %v", reads, want, tc.want)
				}
			})
		})
	}
}

func TestABurnerThatStopsBetweenBurstsIsStoppedByTheWatcherWithoutAReadOfTheCPU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := idleHost(8 * gib)
		loop := memoryLoop(model)
		o := Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute}
		loop.cfg.Averages.SetObjective(host.CPU, o)
		now := time.Now()
		p := loop.cfg.Averages.periods[host.CPU]
		// A burst through the current period alone, as the tick before
		// it decided.
		k := p.number(now)
		p.sched.advance(k-1, func(next int64, current bool) bool { return next == k })
		if !loop.burning(now) {
			t.Fatal("no burst planned for the current period")
		}
		loop.planned = holder.Load{CPU: 0.3}
		loop.control.Of(host.CPU).setpoint = 0.3
		watcher := watched(t, loop, model)
		time.Sleep(time.Second)
		synctest.Wait()
		if sentCPU(loop) == 0 || watcher.count(host.CPUPart) == 0 {
			t.Fatalf("during the burst: duty %v after %d reads of the CPU, want the burner running and watched", sentCPU(loop), watcher.count(host.CPUPart))
		}
		// Past the period's end, the burst is over.
		time.Sleep(time.Until(now.Truncate(time.Minute).Add(time.Minute + time.Second)))
		synctest.Wait()
		before := watcher.count(host.CPUPart)
		time.Sleep(time.Second)
		synctest.Wait()
		if sentCPU(loop) != 0 || watcher.count(host.CPUPart) != before {
			t.Errorf("after the burst: duty %v, %d more reads of the CPU; want 0 and none", sentCPU(loop), watcher.count(host.CPUPart)-before)
		}
	})
}

func TestTheWatcherSleepsUntilATickPlansLoadOrABurstIsDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := idleHost(8 * gib)
		loop := memoryLoop(model)
		loop.cfg.Averages.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute})
		count := watched(t, loop, model).count
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := count(host.AllParts); n != 0 {
			t.Fatalf("%d reads with nothing held", n)
		}

		// A burst planned for the next minute: nothing is read before it
		// is due, the CPU from burstLead before it.
		now := time.Now()
		p := loop.cfg.Averages.periods[host.CPU]
		k := p.number(now)
		loop.mu.Lock()
		p.sched.advance(k, func(next int64, current bool) bool { return next == k+1 })
		loop.planned = holder.Load{CPU: 0.3}
		loop.control.Of(host.CPU).setpoint = 0.3
		loop.mu.Unlock()
		loop.planning <- struct{}{}
		due := p.start(k + 1).Add(-burstLead)
		time.Sleep(time.Until(due) - time.Millisecond)
		synctest.Wait()
		if n := count(host.AllParts); n != 0 {
			t.Fatalf("%d reads before the burst was due", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := count(host.CPUPart); n != 1 || sentCPU(loop) == 0 {
			t.Fatalf("at the burst's start: %d reads of the CPU, duty %v; want 1 and the burner running", n, sentCPU(loop))
		}
		// Past it, the burner stops and the watcher sleeps again.
		time.Sleep(time.Until(p.start(k + 2).Add(time.Second)))
		synctest.Wait()
		n := count(host.AllParts)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if sentCPU(loop) != 0 || count(host.AllParts) != n {
			t.Errorf("after the burst: duty %v, %d more reads; want 0 and none", sentCPU(loop), count(host.AllParts)-n)
		}

		// A tick that plans ballast wakes it.
		loop.mu.Lock()
		loop.planned = holder.Load{}
		loop.mu.Unlock()
		s, _ := model.Read(time.Now())
		loop.Step(s)
		if loop.planned.Memory == 0 {
			t.Fatal("the tick planned no ballast")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := count(host.MemoryPart); n != 4 {
			t.Errorf("%d reads of MemAvailable in the second after a tick planned ballast, want 4", n)
		}
	})
}

func TestTheWatcherGivesMemoryBackWhileTheHoldersCannotBeMeasured(t *testing.T) {
	model := idleHost(8 * gib)
	h := &lossyHolders{held: ballast(gib, 1)}
	loop := memoryLoop(model)
	loop.cfg.Holders, loop.cfg.Chunk = h, gib
	loop.planned = holder.Load{Memory: gib}
	s, _ := model.Read(simStart)
	loop.Step(s)
	before := h.last().Memory

	// A tick stuck measuring the holders (a slow /proc, a stalled holder).
	h.usage = make(chan struct{})
	defer close(h.usage)
	go loop.Step(s)
	done := make(chan struct{})
	go func() {
		var w watch
		lookAt(loop, &w, time.Second, gib/4)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the watcher waited for the stuck tick")
	}
	if got := h.last().Memory; got >= before {
		t.Errorf("the watcher asked for %d bytes of ballast under the reserve, want less than %d", got, before)
	}
	if h.cpuOps.Load() == 0 {
		t.Error("the watcher did not measure the holders' CPU time")
	}
}
