package collector

import (
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// objectiveState is a host whose CPU is audited as the p95 of 1-minute
// means over 7 days and meets it, whose memory is audited the same way and
// still lacks 42 periods, and whose disk is audited as the 30-day mean.
func objectiveState() *controller.State {
	return &controller.State{
		Sample: host.Sample{Time: time.Unix(1_700_000_000, 0), CPUs: 2, CPU: 0.02,
			MemoryTotal: 8 << 30, MemoryAvailable: 6 << 30, DiskSize: 100 << 30, DiskUsed: 25 << 30, DiskAvailable: 70 << 30},
		Spec: "small", Ceiling: 0.9, Interval: 15 * time.Second,
		Resources: map[host.Resource]controller.ResourceState{
			host.CPU: {Statistic: "p95", Window: 7 * 24 * time.Hour, Period: time.Minute,
				Audit: 0.205, Passing: 0.0625, Needed: 0, Average: 0.025, Target: 0.2},
			host.Memory: {Statistic: "p99.9", Window: 7 * 24 * time.Hour, Period: time.Minute,
				Audit: 0.125, Passing: 0.0015625, Needed: 42, Average: 0.18, Target: 0.2},
			host.Disk: {Statistic: "mean", Window: 30 * 24 * time.Hour,
				Audit: 0.3, Average: 0.3, Target: 0.25},
		},
	}
}

func TestExporterShowsEachObjectiveAndItsAudit(t *testing.T) {
	e := NewExporter()
	e.Publish(objectiveState())
	// The percentile's period, passing share and periods needed exist for
	// percentile objectives only: a mean has no periods.
	want := `
# HELP cro_objective_info The statistic the auditor computes of the resource's utilization over its window: mean, a percentile of audit period values such as p95, or their max (a period's value is its mean, or the max of its sub-periods' means).
# TYPE cro_objective_info gauge
cro_objective_info{resource="cpu",statistic="p95"} 1
cro_objective_info{resource="disk",statistic="mean"} 1
cro_objective_info{resource="memory",statistic="p99.9"} 1
# HELP cro_audit_ratio The resource's statistic as the auditor computes it now over the trailing window, 0..1: the average for the mean; for a percentile, that percentile of the window's period means, periods nobody saw counted as 0.
# TYPE cro_audit_ratio gauge
cro_audit_ratio{resource="cpu"} 0.205
cro_audit_ratio{resource="disk"} 0.3
cro_audit_ratio{resource="memory"} 0.125
# HELP cro_audit_period_seconds The audit period whose means a percentile objective is taken of, aligned to the clock (--audit.period).
# TYPE cro_audit_period_seconds gauge
cro_audit_period_seconds{resource="cpu"} 60
cro_audit_period_seconds{resource="memory"} 60
# HELP cro_audit_passing_ratio Share of the window's audit periods whose value (mean, or max of sub-period means) is at or above the target, for a percentile objective.
# TYPE cro_audit_passing_ratio gauge
cro_audit_passing_ratio{resource="cpu"} 0.0625
cro_audit_passing_ratio{resource="memory"} 0.0015625
# HELP cro_audit_periods_needed Periods at or above the target the window still needs for its percentile to reach the target; 0 when it does.
# TYPE cro_audit_periods_needed gauge
cro_audit_periods_needed{resource="cpu"} 0
cro_audit_periods_needed{resource="memory"} 42
# HELP cro_average_window_seconds The trailing window the resource is audited over (--window); its average's time constant is half of it.
# TYPE cro_average_window_seconds gauge
cro_average_window_seconds{resource="cpu"} 604800
cro_average_window_seconds{resource="disk"} 2.592e+06
cro_average_window_seconds{resource="memory"} 604800
# HELP cro_target_ratio Ratio the resource's audited statistic must reach.
# TYPE cro_target_ratio gauge
cro_target_ratio{resource="cpu"} 0.2
cro_target_ratio{resource="disk"} 0.25
cro_target_ratio{resource="memory"} 0.2
# HELP cro_usage_average_ratio Time-decayed average of the resource's utilization over the window, holders included, 0..1.
# TYPE cro_usage_average_ratio gauge
cro_usage_average_ratio{resource="cpu"} 0.025
cro_usage_average_ratio{resource="disk"} 0.3
cro_usage_average_ratio{resource="memory"} 0.18
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want),
		"cro_objective_info", "cro_audit_ratio", "cro_audit_period_seconds", "cro_audit_passing_ratio",
		"cro_audit_periods_needed", "cro_average_window_seconds", "cro_target_ratio", "cro_usage_average_ratio",
	); err != nil {
		t.Error(err)
	}
}

func TestExporterOfMeansAloneHasNoPeriods(t *testing.T) {
	s := objectiveState()
	for _, r := range host.Resources {
		rs := s.Resources[r]
		rs.Statistic, rs.Period, rs.Audit, rs.Passing, rs.Needed = "mean", 0, rs.Average, 0, 0
		s.Resources[r] = rs
	}
	e := NewExporter()
	e.Publish(s)
	for _, name := range []string{"cro_audit_period_seconds", "cro_audit_passing_ratio", "cro_audit_periods_needed"} {
		if n := testutil.CollectAndCount(e, name); n != 0 {
			t.Errorf("%s: %d series for mean objectives, want none", name, n)
		}
	}
	want := `
# HELP cro_audit_ratio The resource's statistic as the auditor computes it now over the trailing window, 0..1: the average for the mean; for a percentile, that percentile of the window's period means, periods nobody saw counted as 0.
# TYPE cro_audit_ratio gauge
cro_audit_ratio{resource="cpu"} 0.025
cro_audit_ratio{resource="disk"} 0.3
cro_audit_ratio{resource="memory"} 0.18
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want), "cro_audit_ratio"); err != nil {
		t.Error(err)
	}
}

func TestExporterServesNothingBeforeTheFirstPublish(t *testing.T) {
	if n := testutil.CollectAndCount(NewExporter()); n != 0 {
		t.Errorf("%d metrics before the first Publish, want none", n)
	}
}

func TestExporterCollectsOnlyWhatItDescribesAndPassesLint(t *testing.T) {
	e := NewExporter()
	e.Publish(objectiveState())
	// A pedantic registry fails the gather of any metric whose descriptor
	// Describe did not send, or that is inconsistent with it.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
