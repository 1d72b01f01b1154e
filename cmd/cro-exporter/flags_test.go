package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/google/go-cmp/cmp"
)

func TestUsageNamesEachResourceAndKeepsTheOthersIdle(t *testing.T) {
	var u RealUsage
	if err := u.UnmarshalText([]byte("cpu=0.3,disk=50%")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RealUsage{0.3, idleUsage[1], 0.5}, u); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"gpu=0.1", "cpu=2", "cpu", "cpu=0.1,,"} {
		if err := u.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseTrace(t *testing.T) {
	rows, err := parseTrace(strings.NewReader("seconds,cpu,memory,disk\n0,0.1,0.2,0.3\n\n# a comment\n3600, 10%, 0.25, 0.3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{0, RealUsage{0.1, 0.2, 0.3}}, {time.Hour, RealUsage{0.1, 0.25, 0.3}}}
	if diff := cmp.Diff(want, rows, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	at := real(rows)
	for elapsed, want := range map[time.Duration]float64{0: 0.2, 59 * time.Minute: 0.2, time.Hour: 0.25, 99 * time.Hour: 0.25} {
		if got := at(elapsed)[1]; got != want {
			t.Errorf("memory at %v = %v, want %v", elapsed, got, want)
		}
	}
	for name, tc := range map[string]struct{ in, want string }{
		"too few fields":         {"0,0.1,0.2\n", "line 1"},
		"a bad ratio":            {"0,0.1,0.2,0.3\n60,0.1,2,0.3\n", "line 2: memory"},
		"time going backwards":   {"0,0.1,0.2,0.3\n60,0.1,0.2,0.3\n30,0.1,0.2,0.3\n", "line 3"},
		"a bad time after a row": {"0,0.1,0.2,0.3\nsoon,0.1,0.2,0.3\n", "line 2"},
		"no rows":                {"seconds,cpu,memory,disk\n", "no rows"},
	} {
		if _, err := parseTrace(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", name, err, tc.want)
		}
	}
}

// parse parses args as the daemon does, in process, with env as the only
// CRO_ variables.
func parse(t *testing.T, env map[string]string, args ...string) (*CLI, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CRO_") {
			t.Setenv(name, "") // restored when the test ends
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("cro-exporter"), kong.DefaultEnvars("CRO"), cliVars("test"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = parser.Parse(args)
	return &cli, err
}

func TestPresetsGiveDefaultsThatFlagsOverride(t *testing.T) {
	const day = 24 * time.Hour
	type objectives = map[host.Resource]controller.Objective
	type targets = map[host.Resource]float64
	mean30 := controller.Objective{Window: 30 * day}
	oracle := controller.Objective{Quantile: 0.95, Window: 7 * day, Period: time.Minute}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    objectives
		targets targets // nil: the spec's, for every resource
	}{
		{"no flags: the mean over 30 days at the spec's targets", nil, nil,
			objectives{host.CPU: mean30, host.Memory: mean30, host.Disk: mean30}, targets{}},
		{"the default preset is the same", []string{"--preset=default"}, nil,
			objectives{host.CPU: mean30, host.Memory: mean30, host.Disk: mean30}, targets{}},
		{"oracle-always-free", []string{"--preset=oracle-always-free"}, nil,
			objectives{host.CPU: oracle, host.Memory: oracle, host.Disk: {Window: 7 * day}},
			targets{host.CPU: 0.2, host.Memory: 0, host.Disk: 0}},
		{"explicit flags win over the preset",
			[]string{"--preset=oracle-always-free", "--objective.cpu=p99.9", "--objective.memory=mean", "--window=14d", "--window.cpu=3d", "--audit.period=5m", "--target.memory=25%"}, nil,
			objectives{
				host.CPU:    {Quantile: 0.999, Window: 3 * day, Period: 5 * time.Minute},
				host.Memory: {Window: 14 * day},
				host.Disk:   {Window: 14 * day},
			},
			targets{host.CPU: 0.2, host.Memory: 0.25, host.Disk: 0}},
		{"so do their environment variables",
			[]string{"--preset=oracle-always-free"}, map[string]string{"CRO_OBJECTIVE_CPU": "p90", "CRO_WINDOW_MEMORY": "1d", "CRO_TARGET_DISK": "0.3", "CRO_AUDIT_PERIOD": "15m"},
			objectives{
				host.CPU:    {Quantile: 0.9, Window: 7 * day, Period: 15 * time.Minute},
				host.Memory: {Quantile: 0.95, Window: day, Period: 15 * time.Minute},
				host.Disk:   {Window: 7 * day},
			},
			targets{host.CPU: 0.2, host.Memory: 0, host.Disk: 0.3}},
		{"the preset from the environment", nil, map[string]string{"CRO_PRESET": "oracle-always-free"},
			objectives{host.CPU: oracle, host.Memory: oracle, host.Disk: {Window: 7 * day}},
			targets{host.CPU: 0.2, host.Memory: 0, host.Disk: 0}},
		{"a window per resource", []string{"--window=10d", "--window.disk=30d", "--objective.disk=p50", "--audit.period=1h", "--target.cpu=0.3"}, nil,
			objectives{
				host.CPU:    {Window: 10 * day},
				host.Memory: {Window: 10 * day},
				host.Disk:   {Quantile: 0.5, Window: 30 * day, Period: time.Hour},
			},
			targets{host.CPU: 0.3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := parse(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cli.objectives()); diff != "" {
				t.Errorf("objectives (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.targets, must(cli.targets(2))); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestATargetOfZeroIsAccepted(t *testing.T) {
	cli, err := parse(t, nil, "--preset=oracle-always-free")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := controller.Targets(controller.Classify(24<<30), must(cli.targets(2)), float64(cli.Ceiling))
	if err != nil {
		t.Fatal(err)
	}
	want := map[host.Resource]float64{host.CPU: 0.2, host.Memory: 0, host.Disk: 0}
	if diff := cmp.Diff(want, targets); diff != "" {
		t.Errorf("targets of a large host under oracle-always-free (-want +got):\n%s", diff)
	}
}

func TestBadObjectivesAndPeriodsNameTheirFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--objective.cpu=p100"}, []string{"--objective.cpu", `"p100"`}},
		{[]string{"--objective.memory=95"}, []string{"--objective.memory", `"95"`}},
		{[]string{"--preset=aws"}, []string{"--preset", "aws"}},
		{[]string{"--audit.period=7m"}, []string{"--audit.period=7m", "divide a day"}},
		{[]string{"--audit.period=25h"}, []string{"--audit.period=1d1h", "divide a day"}},
		{[]string{"--objective.cpu=p95", "--audit.period=10s"}, []string{"--audit.period=10s", "multiple of --interval=15s", "--objective.cpu=p95"}},
		{[]string{"--objective.cpu=p95", "--audit.period=20s"}, []string{"--audit.period=20s", "multiple of --interval=15s", "--objective.cpu=p95"}},
		{[]string{"--objective.disk=p95", "--window.disk=30m", "--audit.period=1h"}, []string{"--audit.period=1h", "--window.disk=30m", "--objective.disk=p95"}},
		{[]string{"--preset=oracle-always-free", "--window.memory=30m", "--audit.period=1h"}, []string{"--audit.period=1h", "--window.memory=30m", "--objective.memory=p95 (of --preset=oracle-always-free)"}},
		{[]string{"--objective.memory=p95", "--interval=1s", "--audit.period=1s"}, []string{"--audit.period=1s", "--window=30d", "2592000", strconv.Itoa(controller.MaxPeriods)}},
		{[]string{"--interval=2h", "--window.disk=1h"}, []string{"--interval=2h", "--window.disk=1h"}},
		{[]string{"--preset=oracle-always-free", "--interval=7d"}, []string{"--interval=7d", "--window=7d (of --preset=oracle-always-free)"}},
		{[]string{"--preset=oracle-always-free", "--ceiling=15%"}, []string{"--preset=oracle-always-free", "cpu", "20%", "--ceiling=15%"}},
	} {
		_, err := parse(t, nil, tc.args...)
		if err == nil {
			t.Errorf("%q: parsed", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.args, err, w)
			}
		}
	}
	// A period that only a mean ignores is no error; nor is a preset's
	// target above the ceiling where a flag replaces it.
	for _, ok := range [][]string{
		{"--audit.period=1s", "--interval=1h"},
		{"--preset=oracle-always-free", "--ceiling=15%", "--target.cpu=10%", "--target.memory=0.1"},
		{"--objective.cpu=p95", "--audit.period=15s", "--window=7d"},
		{"--objective.cpu=p95", "--window=1h", "--audit.period=1h", "--interval=15s"},
	} {
		if _, err := parse(t, nil, ok...); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestDescribeObjectives(t *testing.T) {
	for o, want := range map[controller.Objective]string{
		{Window: 30 * 24 * time.Hour}:                                         "mean over 30d",
		{Quantile: 0.95, Window: 7 * 24 * time.Hour, Period: time.Minute}:     "p95 of 1m over 7d",
		{Quantile: 0.999, Window: 20 * time.Minute, Period: 15 * time.Second}: "p99.9 of 15s over 20m",
	} {
		if got := describe(o); got != want {
			t.Errorf("describe(%+v) = %q, want %q", o, got, want)
		}
	}
}

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
