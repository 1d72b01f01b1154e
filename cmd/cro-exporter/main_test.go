package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/logtest"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for _, dir := range []string{built.dir, builtWindows.dir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// built is the cro-exporter binary the tests run, built once, by the first
// test that needs it: a -short run of tests that need none builds nothing.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

// binaryPath is the cro-exporter binary, built from this package the
// first time a test asks for it; a build that fails fails every test that
// asks.
func binaryPath(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "cro-exporter-test"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "cro-exporter")
		out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("building cro-exporter: %v", built.err)
	}
	return built.path
}

// skipShort skips the test under go test -short, saying why: it runs the
// live daemon and its holders, a real Prometheus, needs root, or takes
// more than a second. The dry runs on fixture trees stay.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("short: " + why)
	}
}

const fixtures = "../../internal/host/fixtures"

// exporter is a running cro-exporter.
type exporter struct {
	cmd    *exec.Cmd
	url    string
	stderr *logtest.Buffer
	exited chan error
}

// start runs cro-exporter in a dry run (it holds nothing: the tests' hosts
// are fixtures, or this machine) on a loopback port with a fresh state dir,
// waits until it listens, and stops it when the test ends, also on failure.
func start(t *testing.T, args ...string) *exporter {
	t.Helper()
	return startLive(t, append([]string{"--dry-run"}, args...)...)
}

// startLive is start without the dry run: the caller's flags must keep the
// holders small.
func startLive(t *testing.T, args ...string) *exporter {
	t.Helper()
	return startCommand(t, []string{binaryPath(t)}, args...)
}

// startCommand is startLive with the daemon run by command and args: the
// binary, or a wrapper that execs it in its own process, then the binary.
func startCommand(t *testing.T, command []string, args ...string) *exporter {
	t.Helper()
	args = append([]string{
		"--web.listen-address=127.0.0.1:0", "--log.format=json",
		"--state.dir=" + privateDir(t), "--disk.path=" + t.TempDir(),
	}, args...)
	argv := append(slices.Clone(command), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// Should the test binary die (a -timeout), the daemon dies with it, and
	// its holders with the daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &exporter{cmd: cmd, stderr: new(logtest.Buffer), exited: make(chan error, 1)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-e.exited
	})
	addr := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(pipe)
		for lines.Scan() {
			e.stderr.Write(append(lines.Bytes(), '\n'))
			var line struct{ Msg, Address string }
			if json.Unmarshal(lines.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Address
			}
		}
		e.exited <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		e.url = "http://" + a
	case err := <-e.exited:
		e.exited <- err
		t.Fatalf("cro-exporter exited before listening (%v):\n%s", err, e.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("cro-exporter did not listen within 10 s:\n%s", e.stderr)
	}
	return e
}

func (e *exporter) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func (e *exporter) metrics(t *testing.T) string {
	t.Helper()
	code, body := e.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	return body
}

// volatile matches samples whose values depend on the machine or the moment:
// the filesystem under the test's temp dir, the build, the clock.
var volatile = regexp.MustCompile(`^(cro_build_info|cro_last_sample_timestamp_seconds|cro_disk_\w+|cro_(usage|usage_average|audit|setpoint|holder_usage)_ratio\{resource="disk"\}|cro_holders?(_bytes)?\{resource="disk"\}|cro_reserve_bytes\{resource="disk"\})(\{.*\})? `)

// golden keeps the cro_ families of a scrape, with volatile values replaced
// so that their presence is still compared.
func golden(body string) string {
	var out strings.Builder
	for line := range strings.Lines(body) {
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if !strings.HasPrefix(name, "cro_") {
			continue
		}
		if m := volatile.FindString(line); m != "" {
			line = m + "<volatile>\n"
			line = regexp.MustCompile(`(revision|version|goversion|branch|goos|goarch|tags)="[^"]*"`).ReplaceAllStringFunc(line, func(l string) string {
				return l[:strings.Index(l, "=")] + `="<volatile>"`
			})
		}
		out.WriteString(line)
	}
	return out.String()
}

func TestGolden(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: `make test` installs it (Debian package prometheus)")
	}
	for _, tree := range []string{"small-8g", "medium-12g", "large-16g", "no-psi"} {
		t.Run(tree, func(t *testing.T) {
			body := start(t, "--path.procfs="+filepath.Join(fixtures, tree)).metrics(t)

			check := exec.Command(promtool, "check", "metrics")
			check.Stdin = strings.NewReader(body)
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
			for _, family := range []string{"go_goroutines", "process_resident_memory_bytes"} {
				if !strings.Contains(body, "\n"+family+" ") {
					t.Errorf("scrape lacks %s", family)
				}
			}

			got := golden(body)
			path := filepath.Join("testdata", tree+".metrics")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run make update-golden)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("/metrics differs from %s (-want +got); if intended, run make update-golden:\n%s", path, diff)
			}
		})
	}
}

// privateDir is a new state dir as the daemon accepts one: ours, mode 0700
// (t.TempDir's mode follows the umask).
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The first lines a user reads: one start line with the settings, one per
// listener, then the ticks; exporter-toolkit's own listener lines are not
// repeated.
func TestStartIsLoggedBeforeTheTicks(t *testing.T) {
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"))
	e.metrics(t) // served, so exporter-toolkit has logged its lines
	var msgs []string
	for line := range strings.Lines(e.stderr.String()) {
		var l struct{ Msg string }
		if json.Unmarshal([]byte(line), &l) != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		msgs = append(msgs, l.Msg)
	}
	if len(msgs) < 2 || msgs[0] != "starting" || msgs[1] != "listening" {
		t.Errorf("log begins %q, want starting, then listening", msgs)
	}
	for _, m := range msgs {
		if m == "Listening on" || m == "TLS is disabled." {
			t.Errorf("log repeats exporter-toolkit's %q:\n%s", m, e.stderr)
		}
	}
}
