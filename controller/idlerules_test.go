package controller

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// The presets against their providers' rules: an idle 2-CPU host is
// simulated under each, and the provider's statistic is computed its own
// way from the host's CPU usage per minute, as the samples show it, apart
// from the controller's periods and from simulate's auditor.

// presetSimulation is an idle small 2-CPU host under the preset name,
// with its objectives and targets as the CLI resolves them, the targets
// given winning.
func presetSimulation(name string, given map[host.Resource]float64) *Simulation {
	p, ok := Presets[name]
	if !ok {
		panic("no preset " + name)
	}
	sim := simulation(gibs(7.6), steady(idle))
	for _, r := range host.Resources {
		o := Objective{Quantile: p.Quantiles[r], Window: p.Window}
		if o.Quantile != 0 {
			o.Period, o.Sub = p.Period, p.Sub
		}
		sim.Averages.SetObjective(r, o)
	}
	targets, err := Targets(Classify(sim.Model.MemoryTotal), p.WithTargets(given, sim.Model.CPUs), 0.9)
	if err != nil {
		panic(err)
	}
	sim.Targets = targets
	return sim
}

// usageLog is the simulated host's CPU usage (the share of the machine,
// holders included) per minute since the start, from the samples alone:
// each stands for the interval before it.
type usageLog struct {
	start    time.Time
	interval time.Duration
	sums     []float64
}

// record logs sim's CPU usage from its ticks.
func record(sim *Simulation) *usageLog {
	u := &usageLog{start: sim.Start, interval: sim.Interval}
	sim.Tick = func(s *State) {
		if !s.Sample.Time.After(u.start) {
			return // the first sample stands for no time
		}
		k := int(s.Sample.Time.Add(-u.interval).Sub(u.start) / time.Minute)
		for len(u.sums) <= k {
			u.sums = append(u.sums, 0)
		}
		u.sums[k] += s.Sample.CPU * u.interval.Seconds()
	}
	return u
}

// minutes are the means of the minutes since the start.
func (u *usageLog) minutes() []float64 {
	means := make([]float64, len(u.sums))
	for k, s := range u.sums {
		means[k] = s / 60
	}
	return means
}

// groups are the means, or the maxes (max), of every n values.
func groups(values []float64, n int, max bool) []float64 {
	var out []float64
	for k := 0; k+n <= len(values); k += n {
		v := 0.0
		for _, x := range values[k : k+n] {
			if max {
				v = math.Max(v, x)
			} else {
				v += x / float64(n)
			}
		}
		out = append(out, v)
	}
	return out
}

// last is the last n of values, all of them if fewer: a window reaching
// back before the start holds what there is since.
func last(values []float64, n int) []float64 { return values[max(0, len(values)-n):] }

// nearestRank is the q-quantile of values, the ceil(q*n)-th smallest.
func nearestRank(values []float64, q float64) float64 {
	sorted := slices.Sorted(slices.Values(values))
	return sorted[int(math.Ceil(q*float64(len(sorted))-1e-9))-1]
}

const minutesADay = 24 * 60

// idleRule is a provider's rule as the provider computes it, and what
// holding a host above it costs.
type idleRule struct {
	preset string
	// flags is why the provider flags the host at the end of day d (from
	// 1) given its minutes since the start, or "" when it does not.
	flags func(minutes []float64, d int) string
	// firstWeek is the CPU-hours the holders burn in the first week,
	// perWeek those of a week from then on (weeks 2 and 3), constant
	// those of a constant hold at the rule's threshold a week: the
	// README's table.
	firstWeek, perWeek, constant float64
}

var idleRules = []idleRule{
	{"oracle-always-free", func(m []float64, d int) string {
		// CPU p95 of the last 7 days under 20%.
		if p95 := nearestRank(last(m, 7*minutesADay), 0.95); p95 < 0.20 {
			return fmt.Sprintf("p95 %.4f < 0.20", p95)
		}
		return ""
	}, 7.56, 3.89, 63.84},
	{"azure-advisor", azureFlags, 0.049, 0.026, 6.72},
	{"gcp-idle-vm", gcpFlags, 0.329, 0.292, 1.68},
	{"aws-trusted-advisor", awsFlags, 31.92, 27.36, 30.24},
	{"huawei-idle-ecs", func(m []float64, d int) string {
		// Every 5-minute sample of the last 7 days at most 3%.
		if peak := slices.Max(last(groups(m, 5, false), 7*24*12)); peak <= 0.03 {
			return fmt.Sprintf("max of 5-minute samples %.4f <= 0.03", peak)
		}
		return ""
	}, 0.027, 0.020, 6.72},
	{"oci-cloud-advisor", func(m []float64, d int) string {
		// Mean CPU of the last 7 days under 15% (the Aggressive profile).
		if mean := groups(last(m, 7*minutesADay), len(last(m, 7*minutesADay)), false)[0]; mean < 0.15 {
			return fmt.Sprintf("mean %.4f < 0.15", mean)
		}
		return ""
	}, 48.72, 48.72, 47.04},
}

// azureFlags: 1-minute means, the max of those per 30 minutes, and the P95
// of those over the lookback under 3%, for every lookback Advisor takes
// that the days so far reach (7 and 14 days, and longer ones hold these),
// and the max of the last 3 days' minutes at most 2%.
func azureFlags(m []float64, d int) string {
	halfHours := groups(m, 30, true)
	for _, lookback := range []int{7, 14} {
		if p95 := nearestRank(last(halfHours, lookback*48), 0.95); p95 < 0.03 {
			return fmt.Sprintf("P95 of %d days' 30-minute maxes %.4f < 0.03", lookback, p95)
		}
	}
	if peak := slices.Max(last(m, 3*minutesADay)); peak <= 0.02 {
		return fmt.Sprintf("P100 of 3 days %.4f <= 0.02", peak)
	}
	return ""
}

// gcpFlags: under 0.03 vCPU (2 CPUs) in 97% or more of the minutes of any
// observation period of 1 to 14 days that the days so far hold.
func gcpFlags(m []float64, d int) string {
	for days := 1; days <= min(d, 14); days++ {
		window := last(m, days*minutesADay)
		below := 0
		for _, x := range window {
			if x*2 < 0.03 {
				below++
			}
		}
		if share := float64(below) / float64(len(window)); share >= 0.97 {
			return fmt.Sprintf("%d days: %.4f of the minutes under 0.03 vCPU", days, share)
		}
	}
	return ""
}

// awsFlags: daily means at most 10% on 4 or more of the last 14 days,
// those since the start (the instance is new); and from day 11 on, with
// the days before the start counted as low too (it was there, idle).
func awsFlags(m []float64, d int) string {
	daily := groups(m, minutesADay, false)
	low := 0
	for _, x := range last(daily, 14) {
		if x <= 0.10 {
			low++
		}
	}
	before := max(0, 14-len(daily))
	switch {
	case low >= 4:
		return fmt.Sprintf("%d of the last days at most 10%%", low)
	case d >= 11 && low+before >= 4:
		return fmt.Sprintf("%d of the last 14 days at most 10%%, %d of them before the start", low+before, before)
	}
	return ""
}

func TestEveryPresetPassesItsProvidersRuleFromTheFirstDayAtTheCostTheREADMEStates(t *testing.T) {
	const days = 21
	for _, rule := range idleRules {
		t.Run(rule.preset, func(t *testing.T) {
			longSimulation(t)
			sim := presetSimulation(rule.preset, nil)
			log := record(sim)
			result := sim.Run(days)
			minutes := log.minutes()
			for d := 1; d <= days; d++ {
				if why := rule.flags(minutes[:d*minutesADay], d); why != "" {
					t.Errorf("day %d: flagged: %s", d, why)
				}
			}
			var week [3]float64
			for d, day := range result {
				week[d/7] += day.HolderCPUHours
				if day.Holder[1] != 0 || day.Holder[2] != 0 {
					t.Errorf("day %d: holders took %.4f of memory and %.4f of the disk, want 0", d+1, day.Holder[1], day.Holder[2])
				}
			}
			perWeek := (week[1] + week[2]) / 2
			constant := 7 * result[days-1].ConstantCPUHours
			t.Logf("%s: CPU-hours a week %.3f in the first, %.3f from then on; a constant hold's %.2f (%.3f of it)",
				rule.preset, week[0], perWeek, constant, perWeek/constant)
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"the first week's", week[0], rule.firstWeek}, {"a later week's", perWeek, rule.perWeek}, {"a constant hold's", constant, rule.constant}} {
				// Within 5%, or 0.005 CPU-hours: the README's figures
				// have two or three decimals.
				if math.Abs(c.got-c.want) > max(0.05*c.want, 0.005) {
					t.Errorf("%s CPU-hours %.3f, the README says %.3f", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestAPresetHoldsMemoryWhereTheUserAsks(t *testing.T) {
	sim := presetSimulation("oracle-always-free", map[host.Resource]float64{host.Memory: 0.20})
	day := sim.Run(1)[0]
	// Idle memory is 10%: held at 22%, holders take about 12% of it.
	if day.Holder[1] < 0.11 {
		t.Errorf("holders took %.4f of memory with --target.memory=20%%, want about 0.12", day.Holder[1])
	}
	if day.Holder[2] != 0 {
		t.Errorf("holders took %.4f of the disk, want 0", day.Holder[2])
	}
}
