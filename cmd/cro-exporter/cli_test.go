package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/controller"
)

// badInput is a command line, and an environment variable (NAME= unsets
// it), that the daemon refuses at start: each of want must appear in the
// one line it writes.
type badInput struct {
	name string
	args []string
	env  string
	want []string
}

func TestBadInputExitsWithOneLineBeforeListening(t *testing.T) {
	for _, tc := range append(badFlags(), badPaths(t)...) {
		t.Run(tc.name, tc.refused)
	}
}

// badFlags are flag values the daemon refuses whatever the host.
func badFlags() []badInput {
	return []badInput{
		{"an unknown flag", []string{"--no.such-flag"}, "", []string{"--no.such-flag"}},
		{"a negative window", []string{"--window=-1d"}, "", []string{"--window", "-1d", "positive duration"}},
		{"a zero interval", []string{"--interval=0"}, "", []string{"--interval", `"0"`, "positive duration"}},
		{"a duration without a unit", []string{"--interval=15"}, "", []string{"--interval", `"15"`}},
		{"an interval longer than the window", []string{"--interval=2h", "--window=1h"}, "", []string{"--interval=2h", "--window=1h"}},
		{"an interval longer than one resource's window", []string{"--interval=2h", "--window=1d", "--window.memory=1h"}, "", []string{"--interval=2h", "--window.memory=1h"}},
		{"an interval as long as the preset's window", []string{"--preset=oracle-always-free", "--interval=7d"}, "", []string{"--interval=7d", "--window=7d", "--preset=oracle-always-free"}},
		{"an unknown preset", []string{"--preset=aws"}, "", []string{"--preset", "aws"}},
		{"a percentile of 100", []string{"--objective.cpu=p100"}, "", []string{"--objective.cpu", `"p100"`, "0 < NN < 100"}},
		{"a percentile of 0", []string{"--objective.memory=p0"}, "", []string{"--objective.memory", `"p0"`}},
		{"a percentile above 100", []string{"--objective.disk=p101"}, "", []string{"--objective.disk", `"p101"`}},
		{"a percentile that is not a number", []string{"--objective.cpu=pfoo"}, "", []string{"--objective.cpu", `"pfoo"`, "p95"}},
		{"a percentile without its p", []string{"--objective.cpu=95"}, "", []string{"--objective.cpu", `"95"`, "p95"}},
		{"a bad objective from the environment", nil, "CRO_OBJECTIVE_MEMORY=median", []string{"objective.memory", `"median"`}},
		{"an audit period that does not divide a day", []string{"--audit.period=7m"}, "", []string{"--audit.period=7m", "divide a day"}},
		{"an audit period shorter than the interval", []string{"--objective.cpu=p95", "--audit.period=5s"}, "", []string{"--audit.period=5s", "--interval=15s", "--objective.cpu=p95"}},
		{"an audit period longer than a percentile's window", []string{"--objective.disk=p90", "--window.disk=30m", "--audit.period=1h"}, "", []string{"--audit.period=1h", "--window.disk=30m", "--objective.disk=p90"}},
		{"too many audit periods in a window", []string{"--objective.cpu=p95", "--interval=1s", "--audit.period=1s"}, "", []string{"--audit.period=1s", "--window=30d", strconv.Itoa(controller.MaxPeriods)}},
		{"a preset's target above the ceiling", []string{"--preset=oracle-always-free", "--ceiling=10%"}, "CRO_TARGET_CPU=", []string{"--preset=oracle-always-free", "20%", "--ceiling=10%"}},
		{"a target above 100%", []string{"--target.memory=150%"}, "", []string{"--target.memory", "150%", "between 0 and 1"}},
		{"a ceiling above 1", []string{"--ceiling=1.5"}, "", []string{"--ceiling", "1.5", "between 0 and 1"}},
		{"a zero ceiling", []string{"--ceiling=0"}, "", []string{"--ceiling", "above 0"}},
		{"a ratio that is not a number", []string{"--target.cpu=lots"}, "", []string{"--target.cpu", "lots"}},
		{"a target above the ceiling", []string{"--target.memory=95%"}, "", []string{"--target.memory=0.95", "--ceiling=0.90"}},
		{"a target above the ceiling from the environment", nil, "CRO_TARGET_DISK=0.5", []string{"--target.disk=0.50", "--ceiling=0.40"}},
		{"a bad ratio from the environment", nil, "CRO_CEILING=2", []string{"ceiling", `"2"`}},
		{"an unknown log level", []string{"--log.level=loud"}, "", []string{"--log.level", "loud"}},
		{"an empty telemetry path", []string{"--web.telemetry-path="}, "", []string{"--web.telemetry-path", "start with /"}},
		{"a telemetry path without its leading slash", []string{"--web.telemetry-path=metrics"}, "", []string{"--web.telemetry-path", `"metrics"`, "start with /"}},
		{"an empty listen address", []string{"--web.listen-address="}, "", []string{"--web.listen-address", "empty"}},
		{"an empty listen address among others", []string{"--web.listen-address=,"}, "", []string{"--web.listen-address", "empty"}},
		{"a memory chunk of one byte", []string{"--holder.memory-chunk=1"}, "", []string{"--holder.memory-chunk=1B", "between 64MiB and 1GiB"}},
		{"a memory chunk under 64MiB", []string{"--holder.memory-chunk=4MiB"}, "", []string{"--holder.memory-chunk=4MiB", "between 64MiB and 1GiB"}},
		{"a memory reserve of more than all the memory", []string{"--memory.reserve=9TiB"}, "", []string{"--memory.reserve=9TiB", "MemTotal"}},
		{"a memory reserve of all the memory", []string{"--memory.reserve=7966412KiB"}, "", []string{"--memory.reserve", "MemTotal"}},
		{"a disk reserve of the whole filesystem", []string{"--disk.reserve=1000TiB"}, "", []string{"--disk.reserve=1000TiB", "size of the filesystem"}},
		// The version flag takes no environment variable: the bad ceiling
		// is found, rather than the version printed with exit 0.
		{"CRO_VERSION in the environment", []string{"--ceiling=0"}, "CRO_VERSION=1", []string{"--ceiling", "above 0"}},
	}
}

// badPaths are paths the daemon refuses, and the files they name.
func badPaths(t *testing.T) []badInput {
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badWebConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(badWebConfig, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := badFiles(t)
	// A fill dir on another filesystem than the disk path's temp dir; a
	// start that wrongly went on would leave it behind, empty.
	otherFS := fmt.Sprintf("/dev/shm/cro-exporter-test-fill-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(otherFS) })
	return []badInput{
		{"a procfs without MemAvailable", []string{"--path.procfs=" + filepath.Join(fixtures, "broken-no-memavailable")}, "", []string{"--path.procfs", "meminfo", "MemAvailable"}},
		{"a procfs without stat", []string{"--path.procfs=" + filepath.Join(fixtures, "broken-no-stat")}, "", []string{"--path.procfs", "stat"}},
		{"a procfs that does not exist", []string{"--path.procfs=/nonexistent"}, "", []string{"--path.procfs", "/nonexistent"}},
		{"a disk path that does not exist", []string{"--disk.path=/nonexistent"}, "", []string{"--disk.path", "/nonexistent"}},
		{"a state dir that cannot be created", []string{"--state.dir=" + filepath.Join(regular, "state")}, "", []string{"--state.dir", regular}},
		{"a web config file that does not exist", []string{"--web.config.file=/nonexistent.yml"}, "", []string{"--web.config.file", "/nonexistent.yml"}},
		{"a web config file naming missing certificates", []string{"--web.config.file=" + badWebConfig}, "", []string{"--web.config.file", "nonexistent"}},
		// Each file read is refused promptly, never waited on or read
		// whole: each of these hung the start for good or filled memory.
		{"a web config file that is a FIFO", []string{"--web.config.file=" + files.fifo}, "", []string{"--web.config.file", files.fifo + " is a FIFO, not a regular file"}},
		{"a web config file that is /dev/zero", []string{"--web.config.file=/dev/zero"}, "", []string{"--web.config.file", "/dev/zero is a device, not a regular file"}},
		{"a web config file of 100 MB", []string{"--web.config.file=" + files.large}, "", []string{"--web.config.file", files.large + " is larger than 1048576 bytes"}},
		{"a web config file naming a FIFO as its certificate", []string{"--web.config.file=" + files.webConfigNamingFIFO}, "", []string{"--web.config.file", files.fifo + " is a FIFO, not a regular file"}},
		{"a procfs whose stat is a FIFO", []string{"--path.procfs=" + files.procStatFIFO}, "", []string{"--path.procfs", "stat is a FIFO, not a regular file"}},
		{"a procfs whose meminfo is /dev/zero", []string{"--path.procfs=" + files.procMeminfoZero}, "", []string{"--path.procfs", "meminfo is a device, not a regular file"}},
		{"a procfs whose pressure file is a FIFO", []string{"--path.procfs=" + files.procPressureFIFO}, "", []string{"--path.procfs", "pressure/cpu is a FIFO, not a regular file"}},
		{"a procfs whose stat is 100 MB", []string{"--path.procfs=" + files.procStatLarge}, "", []string{"--path.procfs", "stat is larger than 16777216 bytes"}},
		{"a fill dir on another filesystem than the disk path", []string{"--disk.fill-dir=" + otherFS}, "", []string{"--disk.fill-dir=" + otherFS}},
	}
}

// refused runs the daemon with tc's flags and environment, on a fixture
// host, and checks that it exits with a usage error and the one line tc
// wants, writing nothing to stdout and growing little.
func (tc badInput) refused(t *testing.T) {
	args := []string{"--path.procfs=" + filepath.Join(fixtures, "small-8g"), "--disk.path=" + t.TempDir(), "--state.dir=" + privateDir(t)}
	if !slices.ContainsFunc(tc.args, func(a string) bool { return strings.HasPrefix(a, "--web.listen-address") }) {
		args = append(args, "--web.listen-address=127.0.0.1:0")
	}
	args = append(args, tc.args...)
	if tc.env == "CRO_TARGET_DISK=0.5" {
		args = append(args, "--ceiling=40%")
	}
	// A start that is not refused is killed, not waited for.
	bin := binaryPath(t) // built before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Targets of 0, unless a case sets one: a start that wrongly
	// goes on holds nothing on this machine. A case's NAME=
	// unsets NAME.
	cmd.Env = append(os.Environ(), "CRO_TARGET_CPU=0", "CRO_TARGET_MEMORY=0", "CRO_TARGET_DISK=0", tc.env)
	if name, value, _ := strings.Cut(tc.env, "="); name != "" && value == "" {
		cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitUsage {
		t.Fatalf("exit: %v, want status %d; stdout:\n%s\nstderr:\n%s", err, exitUsage, &stdout, &stderr)
	}
	if rss := grownRSS(t, cmd); rss > maxRefusedRSS {
		t.Errorf("peak RSS %d MiB above --version's, want at most %d MiB: nothing read may grow with the file", rss>>20, maxRefusedRSS>>20)
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout: %q, want nothing", &stdout)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr has %d lines, want one:\n%s", len(lines), &stderr)
	}
	for _, w := range tc.want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr %q lacks %q", lines[0], w)
		}
	}
}

// maxRefusedRSS bounds how far the peak RSS of a start refused for bad
// input may rise above that of --version: by a few MiB; reading a 100 MB
// file, or /dev/zero, would take hundreds.
const maxRefusedRSS = 32 << 20

// grownRSS is how far the peak resident memory of the process cmd ran rose
// above that of a run of --version now, in bytes. A child's peak counts its
// parent's memory, which it shares until it execs (the test binary's: 50
// MiB under -race), so only the difference says what the child read.
func grownRSS(t *testing.T, cmd *exec.Cmd) int64 {
	t.Helper()
	version := exec.Command(binaryPath(t), "--version")
	if err := version.Run(); err != nil {
		t.Fatalf("%s --version: %v", binaryPath(t), err)
	}
	return maxRSS(cmd) - maxRSS(version)
}

// maxRSS is the peak resident memory of the process cmd ran, in bytes.
func maxRSS(cmd *exec.Cmd) int64 {
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
}

// files a start must refuse, each at once and reading little of it.
type refusedFiles struct {
	fifo, large, webConfigNamingFIFO                               string
	procStatFIFO, procMeminfoZero, procPressureFIFO, procStatLarge string
}

// badFiles makes the files of refusedFiles: a FIFO, a sparse 100 MB file,
// a web config naming the FIFO as its certificate, and copies of a fixture
// procfs tree with a FIFO, /dev/zero or 100 MB in place of one file.
func badFiles(t *testing.T) refusedFiles {
	t.Helper()
	dir := t.TempDir()
	f := refusedFiles{fifo: filepath.Join(dir, "fifo"), large: filepath.Join(dir, "large.yml"), webConfigNamingFIFO: filepath.Join(dir, "web.yml")}
	if err := unix.Mkfifo(f.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	makeLarge := func(path string) error {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			return err
		}
		return os.Truncate(path, 100<<20) // sparse: no disk taken
	}
	if err := makeLarge(f.large); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.webConfigNamingFIFO, []byte("tls_server_config:\n  cert_file: fifo\n  key_file: /dev/zero\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tree := func(file string, plant func(path string) error) string {
		root := filepath.Join(t.TempDir(), "proc")
		if err := os.CopyFS(root, os.DirFS(filepath.Join(fixtures, "small-8g"))); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, file)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := plant(path); err != nil {
			t.Fatal(err)
		}
		return root
	}
	fifo := func(path string) error { return unix.Mkfifo(path, 0o600) }
	f.procStatFIFO = tree("stat", fifo)
	f.procMeminfoZero = tree("meminfo", func(path string) error { return os.Symlink("/dev/zero", path) })
	f.procPressureFIFO = tree("pressure/cpu", fifo)
	f.procStatLarge = tree("stat", makeLarge)
	return f
}

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	out, err := exec.Command(binaryPath(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, f := range []string{
		"web.listen-address", "web.telemetry-path", "web.config.file", "path.procfs",
		"disk.path", "state.dir", "interval", "window", "target.cpu", "target.memory",
		"target.disk", "ceiling", "log.level", "log.format", "preset", "objective.cpu",
		"objective.memory", "objective.disk", "audit.period", "window.cpu", "window.memory", "window.disk",
	} {
		env := "$CRO_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(f))
		if !bytes.Contains(out, []byte("--"+f)) || !bytes.Contains(out, []byte(env)) {
			t.Errorf("--help lacks --%s or %s", f, env)
		}
	}
	// Flags a preset gives defaults for have none of kong's, yet say theirs.
	for _, d := range []string{"default: mean", "default: 1m", "default: 30d", "default, oracle-always-free, azure-advisor"} {
		if !bytes.Contains(out, []byte(d)) {
			t.Errorf("--help lacks %q", d)
		}
	}
	if !bytes.Contains(out, []byte("--version")) || bytes.Contains(out, []byte("CRO_VERSION")) {
		t.Errorf("--help should list --version, with no environment variable")
	}
}

func TestSIGTERMSavesTheAveragesAndExitsZero(t *testing.T) {
	state := privateDir(t)
	// Live, holding nothing: a dry run saves nothing.
	e := startLive(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--state.dir="+state,
		"--target.cpu=0", "--target.memory=0", "--target.disk=0")
	stop(t, e)
	if _, err := os.Stat(filepath.Join(state, "averages.json")); err != nil {
		t.Errorf("averages not saved at shutdown: %v", err)
	}
}

func TestScrapesServeTheLastSampleWithoutRereadingProc(t *testing.T) {
	proc := t.TempDir()
	if err := os.CopyFS(proc, os.DirFS(filepath.Join(fixtures, "small-8g"))); err != nil {
		t.Fatal(err)
	}
	e := start(t, "--path.procfs="+proc, "--interval=1h")
	before := e.metrics(t)
	meminfo := filepath.Join(proc, "meminfo")
	data, err := os.ReadFile(meminfo)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), "MemAvailable:", "MemAvailable:        1\nX:", 1)
	if err := os.WriteFile(meminfo, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	after := e.metrics(t)
	if usage := `cro_usage_ratio{resource="memory"}`; metricLine(before, usage) != metricLine(after, usage) {
		t.Errorf("a scrape re-read /proc/meminfo: %s became %s", metricLine(before, usage), metricLine(after, usage))
	}
}

func TestWindowAndIntervalAreExportedForTheRules(t *testing.T) {
	body := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--window=7d", "--window.disk=30d", "--interval=1h").metrics(t)
	for _, want := range []string{
		`cro_average_window_seconds{resource="cpu"} 604800`, `cro_average_window_seconds{resource="memory"} 604800`,
		`cro_average_window_seconds{resource="disk"} 2.592e+06`, "cro_sample_interval_seconds 3600",
	} {
		series, _, _ := strings.Cut(want, " ")
		if got := metricLine(body, series); got != want {
			t.Errorf("scrape has %q, want %q", got, want)
		}
	}
}

func TestAPresetReachesTheStartLineAndTheMetrics(t *testing.T) {
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--preset=oracle-always-free", "--window.disk=30d")
	body := e.metrics(t)
	for _, want := range []string{
		`cro_objective_info{resource="cpu",statistic="p95"} 1`,
		`cro_objective_info{resource="memory",statistic="p95"} 1`,
		`cro_objective_info{resource="disk",statistic="mean"} 1`,
		`cro_average_window_seconds{resource="cpu"} 604800`,
		`cro_average_window_seconds{resource="disk"} 2.592e+06`,
		`cro_audit_period_seconds{resource="cpu"} 60`,
		`cro_target_ratio{resource="cpu"} 0.2`,
		`cro_target_ratio{resource="memory"} 0`,
		`cro_target_ratio{resource="disk"} 0`,
	} {
		series, _, _ := strings.Cut(want, " ")
		if got := metricLine(body, series); got != want {
			t.Errorf("scrape has %q, want %q", got, want)
		}
	}
	for _, want := range []string{`"objective_cpu":"p95 of 1m over 7d"`, `"objective_memory":"p95 of 1m over 7d"`, `"objective_disk":"mean over 30d"`} {
		if !strings.Contains(e.stderr.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, e.stderr)
		}
	}
}

// metricLine is the sample line of series in a scrape, or "".
func metricLine(body, series string) string {
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func TestLandingPageLinksTheMetrics(t *testing.T) {
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--web.telemetry-path=/m")
	code, body := e.get(t, "/")
	if code != http.StatusOK || !strings.Contains(body, `href="/m"`) {
		t.Errorf("GET / = %d, want 200 and a link to /m:\n%s", code, body)
	}
	if code, _ := e.get(t, "/m"); code != http.StatusOK {
		t.Errorf("GET /m = %d, want 200", code)
	}
	// No profiling is served, so none is linked.
	if strings.Contains(body, "debug/pprof") {
		t.Errorf("GET / links profiling, which is not served:\n%s", body)
	}
}

func TestWebConfigFileRequiresBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(config, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--web.config.file="+config)
	if code, _ := e.get(t, "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without credentials = %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", e.url+"/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics with credentials = %d, want 200", resp.StatusCode)
	}
}

func TestSimulateSaysWhenAHostPassesAndAtWhatCost(t *testing.T) {
	out, err := exec.Command(binaryPath(t), "simulate", "--days=3").CombinedOutput()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	for _, want := range []string{"small host", "cpu mean", "cpu    meets its target on day 1 (mean over 30d)", "memory meets its target on day 1", "disk   meets its target on day 1", "CPU holders spent"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("simulate output lacks %q:\n%s", want, out)
		}
	}
	// A host already above its targets needs no holders.
	out, err = exec.Command(binaryPath(t), "simulate", "--days=2", "--spec=large", "--load=cpu=0.5,memory=0.5,disk=0.5", "--format=csv").CombinedOutput()
	if err != nil {
		t.Fatalf("simulate --format=csv: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1+2*3 || lines[0] != "day,resource,average,target,holder_load,met,statistic,audit,holder_cpu_hours,constant_cpu_hours" {
		t.Fatalf("csv has %d lines, want a header and 6 rows:\n%s", len(lines), out)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if f[3] != "0.400000" || f[4] != "0.000000" || f[5] != "true" || f[6] != "mean" {
			t.Errorf("row %q: want target 0.4, no holder load, met, the mean", l)
		}
		if cpu := f[1] == "cpu"; (f[8] != "" || f[9] != "") == !cpu || cpu && (f[8] != "0.000000" || f[9] != "0.000000") {
			t.Errorf("row %q: want no CPU-hours of holders or of a constant hold (real work holds the target), on the cpu row only", l)
		}
	}
}

func TestSimulateAPercentileAtAFractionOfAConstantHold(t *testing.T) {
	// A sample a minute, one per audit period: a quarter of the ticks.
	out, err := exec.Command(binaryPath(t), "simulate", "--days=2", "--preset=oracle-always-free", "--interval=1m").CombinedOutput()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	for _, want := range []string{"cpu p95", "memory p95", "disk mean", "cpu-h", "const-h",
		"cpu    meets its target on day 1 (p95 of 1m over 7d)", "memory meets its target on day 1 (p95 of 1m over 7d)", "disk   meets its target on day 1 (mean over 7d)"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("simulate output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(binaryPath(t), "simulate", "--days=3", "--preset=oracle-always-free", "--interval=1m", "--format=csv").CombinedOutput()
	if err != nil {
		t.Fatalf("simulate --format=csv: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		f := strings.Split(l, ",")
		if f[1] != "cpu" {
			continue
		}
		if f[6] != "p95" || f[3] != "0.200000" {
			t.Errorf("row %q: want p95 at a target of 0.2", l)
		}
		if audit, _ := strconv.ParseFloat(f[7], 64); audit < 0.2 || f[5] != "true" {
			t.Errorf("row %q: the p95 is under 0.2", l)
		}
		held, _ := strconv.ParseFloat(f[8], 64)
		constant, _ := strconv.ParseFloat(f[9], 64)
		// A constant hold at 0.2 of 2 CPUs from an idle 1% costs
		// 0.19 x 2 x 24 CPU-hours a day; the p95 needs 5% of the minutes
		// at 0.2, about a twentieth of that, once the first day has
		// built the window up.
		if want := 0.19 * 2 * 24; math.Abs(constant-want) > 0.01*want {
			t.Errorf("row %q: a constant hold's %.2f CPU-hours, want %.2f", l, constant, want)
		}
		if f[0] != "1" && held > 0.1*constant {
			t.Errorf("row %q: holders spent %.2f CPU-hours, more than a tenth of a constant hold's %.2f", l, held, constant)
		}
	}
}

func TestSimulateFollowsATraceAndNamesItsBadLines(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	// Busy for the first day, idle after.
	os.WriteFile(good, []byte("seconds,cpu,memory,disk\n0,0.6,0.6,0.6\n86400,0.01,0.1,0.1\n"), 0o600)
	out, err := exec.Command(binaryPath(t), "simulate", "--days=2", "--trace="+good, "--format=csv").CombinedOutput()
	if err != nil {
		t.Fatalf("simulate --trace: %v\n%s", err, out)
	}
	// Day 1's last sample, at the step, reads the next day's value: 15 s
	// of 86,400 off.
	if day1 := csvField(t, out, "1,cpu,", 2); math.Abs(day1-0.6) > 0.001 {
		t.Errorf("day 1 of the trace averages %v cpu, want 0.6:\n%s", day1, out)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("0,0.1,0.1,0.1\n60,0.1,1.5,0.1\n"), 0o600)
	cmd := exec.Command(binaryPath(t), "simulate", "--trace="+bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitUsage || !strings.Contains(stderr.String(), "line 2: memory") {
		t.Errorf("a bad trace: %v, stderr %q; want exit %d naming line 2's memory", err, stderr.String(), exitUsage)
	}
}

// A trace is read as every file is: a FIFO is refused, not waited on, and
// /dev/zero is not read until memory runs out.
func TestSimulateRefusesATraceThatIsNotARegularFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "trace.csv")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{fifo, "is a FIFO, not a regular file"},
		{"/dev/zero", "is a device, not a regular file"},
	} {
		bin := binaryPath(t) // built before the clock starts
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "simulate", "--trace="+tc.path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != exitUsage ||
			strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "--trace="+tc.path+": "+tc.path+" "+tc.want) {
			t.Errorf("simulate --trace=%s: %v, stderr %q; want exit %d and one line: %s", tc.path, err, &stderr, exitUsage, tc.want)
		}
		if rss := grownRSS(t, cmd); rss > maxRefusedRSS {
			t.Errorf("simulate --trace=%s: peak RSS %d MiB above --version's, want at most %d MiB", tc.path, rss>>20, maxRefusedRSS>>20)
		}
	}
}

// csvField is the float in field i of the first line of out that starts
// with prefix.
func csvField(t *testing.T, out []byte, prefix string, i int) float64 {
	t.Helper()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			x, err := strconv.ParseFloat(strings.Split(l, ",")[i], 64)
			if err != nil {
				t.Fatalf("line %q: field %d: %v", l, i, err)
			}
			return x
		}
	}
	t.Fatalf("no line starts with %q:\n%s", prefix, out)
	return 0
}
