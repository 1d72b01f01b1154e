package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// TestBadIdleRuleFlagsExitNamingTheFlag: the real binary, on a 2-CPU
// fixture host, refuses each with status 2 and one line naming the flag,
// before it listens or holds anything.
func TestBadIdleRuleFlagsExitNamingTheFlag(t *testing.T) {
	for _, tc := range []badInput{
		// A sub-period must divide a day whatever the objectives, as the
		// period must.
		{"a sub-period that does not divide a day", []string{"--audit.subperiod=7m", "--audit.period=30m"}, "", []string{"--audit.subperiod=7m", "divide a day"}},
		{"a sub-period that does not divide the period", []string{"--objective.cpu=p95", "--audit.subperiod=4m", "--audit.period=30m"}, "", []string{"--audit.subperiod=4m", "--audit.period=30m", "--objective.cpu=p95"}},
		{"a sub-period as long as the period", []string{"--objective.cpu=p95", "--audit.subperiod=30m", "--audit.period=30m"}, "", []string{"--audit.subperiod=30m", "two or more"}},
		{"a sub-period of part of a sample", []string{"--objective.cpu=p95", "--audit.subperiod=20s", "--audit.period=1m"}, "", []string{"--audit.subperiod=20s", "--interval=15s"}},
		{"a sub-period with the max", []string{"--objective.cpu=max", "--audit.subperiod=1m", "--audit.period=30m"}, "", []string{"--audit.subperiod=1m", "--objective.cpu=max"}},
		{"the max under a preset's sub-period", []string{"--preset=azure-advisor", "--objective.cpu=max"}, "", []string{"--audit.subperiod=1m (of --preset=azure-advisor)", "--objective.cpu=max"}},
		{"a memory target in CPUs", []string{"--target.memory=0.03cpus"}, "", []string{"--target.memory", `"0.03cpus"`, "only --target.cpu"}},
		{"a disk target in CPUs from the environment", nil, "CRO_TARGET_DISK=1cpu", []string{"target.disk", `"1cpu"`}},
		{"no CPUs", []string{"--target.cpu=0cpus"}, "", []string{"--target.cpu", `"0cpus"`}},
		{"negative CPUs", []string{"--target.cpu=-1cpus"}, "", []string{"--target.cpu", `"-1cpus"`}},
		{"more CPUs than the host has", []string{"--target.cpu=3cpus"}, "", []string{"--target.cpu=3cpus", "2 CPUs"}},
		{"all the host's CPUs, above the ceiling", []string{"--target.cpu=2cpus"}, "", []string{"--target.cpu", "--ceiling"}},
	} {
		t.Run(tc.name, tc.refused)
	}
}

// TestASubPeriodIsForPercentiles: a mean ignores --audit.subperiod, as it
// ignores --audit.period; a percentile takes both, every resource alike.
func TestASubPeriodIsForPercentiles(t *testing.T) {
	const day = 24 * time.Hour
	type objectives = map[host.Resource]controller.Objective
	mean30 := controller.Objective{Window: 30 * day}
	for _, tc := range []struct {
		args []string
		want objectives
	}{
		{[]string{"--audit.subperiod=1m"}, objectives{host.CPU: mean30, host.Memory: mean30, host.Disk: mean30}},
		{[]string{"--audit.subperiod=1m", "--audit.period=30m", "--objective.cpu=p95", "--objective.disk=p90", "--window.disk=1d"}, objectives{
			host.CPU:    {Quantile: 0.95, Window: 30 * day, Period: 30 * time.Minute, Sub: time.Minute},
			host.Memory: mean30,
			host.Disk:   {Quantile: 0.9, Window: day, Period: 30 * time.Minute, Sub: time.Minute},
		}},
		{[]string{"--preset=azure-advisor"}, objectives{
			host.CPU:    {Quantile: 0.95, Window: 7 * day, Period: 30 * time.Minute, Sub: time.Minute},
			host.Memory: {Window: 7 * day},
			host.Disk:   {Window: 7 * day},
		}},
		{[]string{"--preset=huawei-idle-ecs"}, objectives{
			host.CPU:    {Quantile: controller.Max, Window: 7 * day, Period: 5 * time.Minute},
			host.Memory: {Window: 7 * day},
			host.Disk:   {Window: 7 * day},
		}},
	} {
		cli, err := parse(t, nil, tc.args...)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if diff := cmp.Diff(tc.want, cli.objectives()); diff != "" {
			t.Errorf("%q: objectives (-want +got):\n%s", tc.args, diff)
		}
	}
}

// TestATargetInCPUsIsARatioOfTheHostsCPUs: 0.03 CPUs of the 2-CPU
// fixture is a target of 1.5%, on the start line and in the metrics;
// simulate converts with its --cpus, a preset's target in CPUs too.
func TestATargetInCPUsIsARatioOfTheHostsCPUs(t *testing.T) {
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--target.cpu=0.03cpus")
	if got := metricLine(e.metrics(t), `cro_target_ratio{resource="cpu"}`); got != `cro_target_ratio{resource="cpu"} 0.015` {
		t.Errorf("scrape has %q, want a CPU target of 0.03/2", got)
	}
	if !strings.Contains(e.stderr.String(), `"target_cpu":0.015`) {
		t.Errorf("the start line lacks the CPU target 0.03/2:\n%s", e.stderr)
	}
	for _, tc := range []struct {
		args []string
		want float64
	}{
		{[]string{"--cpus=4", "--target.cpu=0.06cpus"}, 0.015},
		{[]string{"--cpus=4", "--preset=gcp-idle-vm"}, 0.0075},
		{[]string{"--cpus=1", "--preset=gcp-idle-vm"}, 0.03},
		{[]string{"--cpus=4", "--preset=gcp-idle-vm", "--target.cpu=5%"}, 0.05},
	} {
		args := append([]string{"simulate", "--days=1", "--format=csv"}, tc.args...)
		out, err := exec.Command(binaryPath(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		if got := csvField(t, out, "1,cpu,", 3); got != tc.want {
			t.Errorf("%q: CPU target %v, want %v", args, got, tc.want)
		}
	}
}
