package controller

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// oracle is CPU p95 of 1-minute means over 7 days at 20%, on a simulated
// 2-CPU host with the given real usage.
func oracle(real func(time.Duration) [3]float64) *Simulation {
	sim := simulation(gibs(7.6), real)
	sim.Targets[host.CPU] = 0.20
	sim.Averages.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: 7 * 24 * time.Hour, Period: time.Minute})
	return sim
}

// auditedAtDayEnds computes, the auditor's way, the p95 of the trailing
// window's period means at the end of every day, from the simulated host's
// means alone: nearest rank, and linear between ranks as Prometheus'
// quantile_over_time does; the lower of the two.
func auditedAtDayEnds(means []float64, days int, window int) []float64 {
	var lows []float64
	perDay := len(means) / days
	for d := 1; d <= days; d++ {
		w := slices.Clone(means[max(0, d*perDay-window) : d*perDay])
		slices.Sort(w)
		n := len(w)
		nearest := w[int(math.Ceil(0.95*float64(n)-1e-9))-1]
		rank := 0.95 * float64(n-1)
		lo := int(math.Floor(rank))
		linear := w[lo]
		if lo+1 < n {
			linear += (w[lo+1] - w[lo]) * (rank - float64(lo))
		}
		lows = append(lows, min(nearest, linear))
	}
	return lows
}

func TestP95OfAnIdleHostMeetsItsTargetFromTheFirstDayAtATenthOfTheCost(t *testing.T) {
	longSimulation(t)
	sim := oracle(steady(idle))
	days := sim.Run(30)
	audited := auditedAtDayEnds(sim.audit.means(host.CPU), 30, 7*24*60)
	var burnt, constant float64
	for d, day := range days {
		burnt += day.HolderCPUHours
		constant += day.ConstantCPUHours
		if audited[d] < 0.20 {
			t.Errorf("day %d: p95 %.4f under 0.20", d+1, audited[d])
		}
		t.Logf("day %d: p95 %.4f (controller's figure %.4f), holders %.2f CPU-hours against %.2f", d+1, audited[d], day.Audit[0], day.HolderCPUHours, day.ConstantCPUHours)
	}
	t.Logf("holders burnt %.1f CPU-hours, %.1f%% of a constant hold's %.1f", burnt, 100*burnt/constant, constant)
	if burnt > 0.10*constant {
		t.Errorf("holders burnt %.1f CPU-hours, more than 10%% of a constant hold's %.1f", burnt, constant)
	}
}

// longSimulation skips a simulation of weeks under -short, and runs it
// beside the others.
func longSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates weeks of minutes; make test runs it")
	}
	t.Parallel()
}

// holderCost is the CPU-hours the holders burnt over days, and what a
// constant hold at the target would have.
func holderCost(days []Day) (burnt, constant float64) {
	for _, d := range days {
		burnt += d.HolderCPUHours
		constant += d.ConstantCPUHours
	}
	return burnt, constant
}

// checkAudited fails the test on every day whose p95, computed the
// auditor's way from the simulated host's minutes, is under target.
func checkAudited(t *testing.T, sim *Simulation, days int, target float64) {
	t.Helper()
	for d, p95 := range auditedAtDayEnds(sim.audit.means(host.CPU), days, 7*24*60) {
		if p95 < target {
			t.Errorf("day %d: CPU p95 %.4f, under its target %.2f", d+1, p95, target)
		}
	}
}

func TestP95TakesWhatRealPeaksCarryAndAddsOnlyWhatIsMissing(t *testing.T) {
	longSimulation(t)
	// Every day from 09:00, 43 minutes (3% of the day) at 30% CPU.
	peaks := func(elapsed time.Duration) [3]float64 {
		u := idle
		if of := elapsed % (24 * time.Hour); of >= 9*time.Hour && of < 9*time.Hour+43*time.Minute {
			u[0] = 0.30
		}
		return u
	}
	sim := oracle(peaks)
	days := sim.Run(14)
	checkAudited(t, sim, 14, 0.20)
	burnt, constant := holderCost(days)

	idleBurnt, _ := holderCost(oracle(steady(idle)).Run(14))
	t.Logf("with real peaks holders burnt %.1f CPU-hours (%.1f%% of a constant hold's %.1f), on an idle host %.1f",
		burnt, 100*burnt/constant, constant, idleBurnt)
	// The peaks carry 3 of the 5.5% of minutes planned: from the second
	// week on, holders burn for the other 2.5% alone.
	var late float64
	for d := 7; d < 14; d++ {
		late += days[d].HolderCPUHours
	}
	t.Logf("in the second week %.2f CPU-hours a day", late/7)
	if burnt >= idleBurnt {
		t.Errorf("holders burnt %.1f CPU-hours beside real peaks, no less than %.1f on an idle host", burnt, idleBurnt)
	}
	if week := late / 7; week > 0.6*idleBurnt/14 {
		t.Errorf("in the second week holders burnt %.2f CPU-hours a day beside real peaks, more than 60%% of an idle host's %.2f",
			week, idleBurnt/14)
	}
}

func TestP95LosesNoPassingPeriodToARestartOrAnOutage(t *testing.T) {
	longSimulation(t)
	sim := oracle(steady(idle))
	sim.StateDir = privateDir(t)
	restart := 4*24*time.Hour + 17*time.Minute + 30*time.Second // mid-period
	outage := 9*24*time.Hour + 3*time.Hour
	sim.Outages = []Outage{{At: restart, For: sim.Interval}, {At: outage, For: 2 * time.Hour}}
	// At the first tick after each, the controller's count of passing
	// periods in the window is the auditor's: none that happened is lost.
	n := 7 * 24 * 60
	checked := 0
	sim.Tick = func(s *State) {
		elapsed := s.Sample.Time.Sub(simStart)
		if elapsed != restart+sim.Interval && elapsed != outage+2*time.Hour {
			return
		}
		checked++
		means := sim.audit.means(host.CPU)
		auditor := 0
		for _, m := range means[max(0, len(means)-n):] {
			if m >= 0.20 {
				auditor++
			}
		}
		if got := int(math.Round(s.Resources[host.CPU].Passing * float64(n))); got < auditor {
			t.Errorf("after %v the controller counts %d passing periods in its window, the auditor %d", elapsed, got, auditor)
		}
	}
	days := sim.Run(14)
	if checked != 2 {
		t.Fatalf("checked %d restarts, want 2", checked)
	}
	checkAudited(t, sim, 14, 0.20)
	burnt, constant := holderCost(days)
	t.Logf("holders burnt %.1f CPU-hours, %.1f%% of a constant hold's %.1f", burnt, 100*burnt/constant, constant)
	if burnt > 0.10*constant {
		t.Errorf("holders burnt %.1f CPU-hours, more than 10%% of a constant hold's %.1f", burnt, constant)
	}
}

func TestAMemoryPercentileIsHeldConstantAboveItsTarget(t *testing.T) {
	sim := simulation(gibs(7.6), steady(idle))
	sim.Targets[host.Memory] = 0.20
	sim.Averages.SetObjective(host.Memory, Objective{Quantile: 0.95, Window: 7 * 24 * time.Hour, Period: time.Minute})
	days := sim.Run(3)
	for d, day := range days {
		if day.Audit[1] < 0.20 {
			t.Errorf("day %d: memory p95 %.4f under 0.20", d+1, day.Audit[1])
		}
		if d > 0 && (day.Changes[1] > 0 || math.Abs(day.Holder[1]-(0.20+lift-idle[1])) > 0.005) {
			t.Errorf("day %d: ballast changed %d times, held %.4f; want it constant at %.4f", d+1, day.Changes[1], day.Holder[1], 0.20+lift-idle[1])
		}
	}
}

func TestAtLeastIsTheFewestPeriodsThatPassByEitherRank(t *testing.T) {
	// k of n periods at the target, the rest at 0: the quantile by
	// nearest rank and by linear interpolation.
	quantiles := func(n, k int, q float64) (nearest, linear float64) {
		v := make([]float64, n)
		for i := n - k; i < n; i++ {
			v[i] = 1
		}
		nearest = v[max(0, int(math.Ceil(q*float64(n)-1e-9))-1)]
		rank := q * float64(n-1)
		lo := int(math.Floor(rank))
		linear = v[lo]
		if lo+1 < n {
			linear += (v[lo+1] - v[lo]) * (rank - float64(lo))
		}
		return nearest, linear
	}
	for _, q := range []float64{0.5, 0.9, 0.95, 0.97, 0.99, 0.999} {
		for n := 1; n <= 1100; n++ {
			k := atLeast(n, q)
			if a, b := quantiles(n, k, q); a < 1 || b < 1 {
				t.Fatalf("q %v, n %d: %d passing periods give %v by nearest rank and %v by interpolation", q, n, k, a, b)
			}
			if a, b := quantiles(n, k-1, q); k > 0 && a == 1 && b == 1 {
				t.Fatalf("q %v, n %d: %d passing periods already pass, atLeast says %d", q, n, k-1, k)
			}
		}
	}
	if got := atLeast(7*24*60, 0.95); got != 505 {
		t.Errorf("p95 of a week of minutes needs %d, want 505", got)
	}
}

func TestStatisticNamesTheQuantileAsWritten(t *testing.T) {
	for q, want := range map[float64]string{0: "mean", 0.5: "p50", 0.55: "p55", 0.95: "p95", 0.979: "p97.9", 0.999: "p99.9"} {
		if got := (Objective{Quantile: q}).Statistic(); got != want {
			t.Errorf("Objective{Quantile: %v}.Statistic() = %q, want %q", q, got, want)
		}
	}
}
