package controller

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/logtest"
)

var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simulation of a host with memTotal bytes of MemTotal, a 100 GiB disk, two
// CPUs and the given real usage, with default targets, ceiling and reserves.
func simulation(memTotal uint64, real func(time.Duration) [3]float64) *Simulation {
	m := idleHost(memTotal)
	m.Real = real
	targets, err := Targets(Classify(memTotal), nil, 0.9)
	if err != nil {
		panic(err)
	}
	memReserve, diskReserve := DefaultReserves(m.MemoryTotal, m.DiskSize)
	return &Simulation{
		Model:         m,
		Averages:      NewAverages(30*24*time.Hour, 30*time.Second),
		Targets:       targets,
		Ceiling:       0.9,
		MemoryReserve: memReserve,
		DiskReserve:   diskReserve,
		Interval:      15 * time.Second,
		Start:         simStart,
	}
}

func steady(u [3]float64) func(time.Duration) [3]float64 {
	return func(time.Duration) [3]float64 { return u }
}

var idle = [3]float64{0.01, 0.10, 0.10}

func TestAnIdleSmallHostMeetsItsTargetsWithinAnHourAtTheLeastLoad(t *testing.T) {
	sim := simulation(gibs(7.6), steady(idle))
	var met [3]time.Duration
	var highest [3]float64
	sim.Tick = func(s *State) {
		for i, r := range host.Resources {
			rs := s.Resources[r]
			if met[i] == 0 && rs.Average >= rs.Target {
				met[i] = s.Sample.Time.Sub(simStart)
			}
			highest[i] = max(highest[i], rs.Average)
		}
	}
	days := sim.Run(30)
	for i, r := range host.Resources {
		target := days[0].Target[i]
		if met[i] == 0 || met[i] > time.Hour {
			t.Errorf("%s met its target after %v, want within an hour", r, met[i])
		}
		if highest[i] > target+0.03 {
			t.Errorf("%s average rose to %.4f, above target %.2f + 3 points", r, highest[i], target)
		}
		var held float64
		for _, d := range days {
			held += d.Holder[i] / float64(len(days))
		}
		least := target - idle[i]
		t.Logf("%s: on target after %v, highest average %.4f, holders %.4f against the least %.4f (%.1f%% more)",
			r, met[i], highest[i], held, least, (held/least-1)*100)
		if held > least*1.05 || held < least {
			t.Errorf("%s holders took %.4f on average; the least that meets target is %.4f (at most 5%% more allowed)", r, held, least)
		}
	}
}

func TestAHostBehindReachesItsTargetWithin130PercentOfTheCeilingsTime(t *testing.T) {
	sim := simulation(gibs(15.4), steady([3]float64{0.05, 0.05, 0.05}))
	// Twenty days of history at 5%, saved before this install.
	for ti := time.Duration(0); ti <= 20*24*time.Hour; ti += sim.Interval {
		for _, r := range host.Resources {
			sim.Averages.update(r, simStart.Add(ti-20*24*time.Hour), 0.05)
		}
	}
	// The bound: the time the average needs when every resource is held at
	// its limit (the ceiling, or less where the reserve says so) from now.
	var bound [3]time.Duration
	for i, r := range host.Resources {
		a := *sim.Averages
		a.avg = map[host.Resource]average{r: sim.Averages.avg[r]}
		limit := 0.9
		if r == host.Memory {
			limit = min(limit, 1-float64(sim.MemoryReserve)/float64(sim.Model.MemoryTotal))
		}
		for ti := sim.Interval; a.Value(r) < sim.Targets[r]; ti += sim.Interval {
			a.update(r, simStart.Add(ti), limit)
			bound[i] = ti
		}
	}
	var met [3]time.Duration
	sim.Tick = func(s *State) {
		for i, r := range host.Resources {
			if met[i] == 0 && s.Resources[r].Average >= s.Resources[r].Target {
				met[i] = s.Sample.Time.Sub(simStart)
			}
		}
	}
	sim.Run(15)
	for i, r := range host.Resources {
		t.Logf("%s: on target after %v; at its limit: %v (%.2fx)", r, met[i], bound[i], float64(met[i])/float64(bound[i]))
		if met[i] == 0 || float64(met[i]) > 1.3*float64(bound[i]) {
			t.Errorf("%s met its target after %v; at its limit it would take %v (1.3x: %v)", r, met[i], bound[i], time.Duration(1.3*float64(bound[i])))
		}
	}
}

func TestRealUsageAboveTargetStopsEveryHolderWithinOneInterval(t *testing.T) {
	jump := 2 * 24 * time.Hour
	sim := simulation(gibs(7.6), func(e time.Duration) [3]float64 {
		if e >= jump {
			return [3]float64{0.5, 0.5, 0.5}
		}
		return idle
	})
	checked := false
	sim.Tick = func(s *State) {
		if s.Sample.Time.Sub(simStart) < jump || checked {
			return
		}
		checked = true
		if sim.Model.load != (holder.Load{}) {
			t.Errorf("one interval after real usage rose to 50%%, holders still hold %+v", sim.Model.load)
		}
	}
	sim.Run(3)
	if !checked {
		t.Fatal("the jump was never simulated")
	}
}

func TestInSteadyStateHoldersChangeAtMostTwiceAnHour(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sim := simulation(gibs(7.6), func(time.Duration) [3]float64 {
		noisy := idle
		for i := range noisy {
			noisy[i] += (rng.Float64() - 0.5) * 0.04 // ±2 points each tick
		}
		return noisy
	})
	days := sim.Run(10)
	for _, d := range days[1:] {
		for i, r := range host.Resources {
			if d.Changes[i] > 48 {
				t.Errorf("%s holders changed %d times in a steady day, more than twice an hour", r, d.Changes[i])
			}
		}
	}
}

func TestSavingAndRestoringTheAveragesMidwayChangesNothing(t *testing.T) {
	whole := simulation(gibs(7.6), steady(idle))
	want := whole.Run(4)

	split := simulation(gibs(7.6), steady(idle))
	dir := t.TempDir()
	restored := false
	split.Tick = func(s *State) {
		if restored || s.Sample.Time.Sub(simStart) < 2*24*time.Hour {
			return
		}
		restored = true
		if err := split.Averages.save(dir); err != nil {
			t.Fatal(err)
		}
		fresh := NewAverages(30*24*time.Hour, 30*time.Second)
		if err := fresh.Load(dir, s.Sample.Time, nil); err != nil {
			t.Fatal(err)
		}
		*split.Averages = *fresh
	}
	got := split.Run(4)
	for d := range want {
		for i, r := range host.Resources {
			if math.Abs(got[d].Average[i]-want[d].Average[i]) > 1e-12 || got[d].Changes[i] != want[d].Changes[i] {
				t.Errorf("day %d %s: average %v and %d changes with a restore, %v and %d without",
					d+1, r, got[d].Average[i], got[d].Changes[i], want[d].Average[i], want[d].Changes[i])
			}
		}
	}
}

func BenchmarkSimulate30Days(b *testing.B) {
	for b.Loop() {
		simulation(gibs(7.6), steady(idle)).Run(30)
	}
}

func TestTheLoopLogsOnlyHolderChangesInSteadyState(t *testing.T) {
	sim := simulation(gibs(7.6), steady(idle))
	logs := new(logtest.Buffer)
	loop := sim.loop(func(*State) {})
	loop.cfg.Logger = textLogger(logs)
	step := func(from, to time.Duration) {
		for e := from; e < to; e += sim.Interval {
			s, _ := sim.Model.Read(simStart.Add(e))
			loop.Step(s)
		}
	}
	step(0, time.Hour)
	if n := strings.Count(logs.String(), "holder load planned"); n == 0 {
		t.Fatalf("no holder change logged while holders ramped up:\n%s", logs)
	}
	before := logs.String()
	step(time.Hour, 2*24*time.Hour)
	after := strings.TrimPrefix(logs.String(), before)
	lines := strings.Count(after, "\n")
	if changes := strings.Count(after, "holder load planned"); changes != lines || changes > 2*47 {
		t.Errorf("%d log lines in 47 steady hours, %d of them holder changes; want only changes, at most two an hour:\n%s", lines, changes, after)
	}
}

func TestACPUBurstGivesWayAndTheLoadComesBackRightAfter(t *testing.T) {
	burst, length := 24*time.Hour, 30*time.Second
	sim := simulation(gibs(7.6), func(e time.Duration) [3]float64 {
		if e >= burst && e < burst+length {
			return [3]float64{0.5, idle[1], idle[2]}
		}
		return idle
	})
	var before, during, after float64
	sim.Tick = func(s *State) {
		switch e := s.Sample.Time.Sub(simStart); {
		case e == burst-sim.Interval:
			before = sim.Model.load.CPU
		case e == burst+sim.Interval:
			during = sim.Model.load.CPU
		case e == burst+length+sim.Interval:
			after = sim.Model.load.CPU
		}
	}
	sim.Run(2)
	if before < 0.2 || during != 0 || math.Abs(after-before) > band {
		t.Errorf("CPU holder load before a 30 s burst %.4f, during %.4f, one tick after %.4f; want it held, 0, and back", before, during, after)
	}
}
