package main

// The Prometheus, and the node exporter it may scrape, that the end-to-end
// tests of the shipped rules and of a percentile objective run.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/logtest"
)

// promServer is a running Prometheus.
type promServer struct {
	url    string
	log    *logtest.Buffer
	exited chan struct{}
	client *http.Client
	config string      // its configuration file
	proc   *os.Process // to signal it
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// startPrometheus runs Prometheus on loopback, scraping target every second
// as job cro-exporter and evaluating the shipped rules every second, and
// stops it when the test ends, also on failure.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	return runPrometheus(t, rulesFile, promJob, target)
}

// runPrometheus is startPrometheus of the rules file rules, scraping target
// as job.
func runPrometheus(t *testing.T, rulesFile, job, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not in PATH: install Debian's prometheus package (`make tools` does it as root, .ci/run does it in CI)")
	}
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // before the Cleanup below, so removed after Prometheus stops
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, rules, job, target), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{
		url:    "http://127.0.0.1:" + freePort(t),
		log:    new(logtest.Buffer),
		exited: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Second},
		config: config,
	}
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(p.url, "http://"),
	)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.proc = cmd.Process
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
	})
	p.await(t, 15*time.Second, "Prometheus to be ready", func() (bool, string) {
		resp, err := p.client.Get(p.url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// await waits as waitFor does until cond holds, failing the test with
// Prometheus' log when timeout passes or as soon as Prometheus exits.
func (p *promServer) await(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	waitFor(t, timeout, what, func() (bool, string) {
		ok, last := cond()
		if ok {
			return true, last
		}
		select {
		case <-p.exited:
			t.Fatalf("Prometheus exited while waiting for %s (%s):\n%s", what, last, p.log)
		default:
		}
		return false, fmt.Sprintf("%s; Prometheus' log:\n%s", last, p.log)
	})
}

// api GETs an /api/v1 endpoint and decodes its data, failing on anything
// but status success.
func (p *promServer) api(path string, params url.Values, data any) error {
	resp, err := p.client.Get(p.url + "/api/v1/" + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: status %q: %s: %s", path, body.Status, body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// query returns a query variable's query, which Grafana stores as a string
// or as an object with a "query" field.
func (v *dashVariable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	json.Unmarshal(v.Query, &o)
	return o.Query
}

// startNodeExporter runs node_exporter (Debian's prometheus-node-exporter)
// on a free loopback port with the collectors named alone, and stops it
// when the test ends, also on failure. It returns its address.
func startNodeExporter(t *testing.T, collectors ...string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		t.Fatal("prometheus-node-exporter is not in PATH: install Debian's prometheus-node-exporter package")
	}
	addr := "127.0.0.1:" + freePort(t)
	args := []string{"--web.listen-address=" + addr, "--collector.disable-defaults"}
	for _, c := range collectors {
		args = append(args, "--collector."+c)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log := new(logtest.Buffer)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("node_exporter's log:\n%s", log)
		}
	})
	return addr
}

// addScrapeJob adds a job scraping target every second to Prometheus'
// configuration and has Prometheus reload it (SIGHUP).
func (p *promServer) addScrapeJob(t *testing.T, job, target string) {
	t.Helper()
	f, err := os.OpenFile(p.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The file ends in scrape_configs' list, indented as here.
	_, err = fmt.Fprintf(f, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", job, target)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := p.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// promSeries is one series of a query's result: Value for a vector, Values
// for a matrix, each [unix time, "value"].
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// series evaluates expr at the Unix time at.
func (p *promServer) series(t *testing.T, at int64, expr string) []promSeries {
	t.Helper()
	var data struct {
		Result []promSeries `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}, "time": {strconv.FormatInt(at, 10)}}, &data); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return data.Result
}

// scalar evaluates expr, which must give one series, at the Unix time at.
func (p *promServer) scalar(t *testing.T, at int64, expr string) float64 {
	t.Helper()
	s := p.series(t, at, expr)
	if len(s) != 1 {
		t.Fatalf("%s: %d series, want 1: %+v", expr, len(s), s)
	}
	v, err := sampleValue(s[0].Value[1])
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// floats are a matrix series' values.
func (s promSeries) floats(t *testing.T) []float64 {
	t.Helper()
	var xs []float64
	for _, v := range s.Values {
		x, err := sampleValue(v[1])
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	return xs
}

// sampleValue is the number of a sample's value, which the API sends as a
// string.
func sampleValue(v any) (float64, error) { return strconv.ParseFloat(fmt.Sprint(v), 64) }
