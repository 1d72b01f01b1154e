//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchScrape starts cro-exporter and node_exporter (cpu, meminfo and
// filesystem collectors) together and measures, side by side: each one's
// resident memory 30 s after start, before any scrape, then after 10,000
// scrapes sent as Prometheus sends them, then keep-alive scrape latency
// with wrk.
func benchScrape(binary build) error {
	b, err := startBeside()
	if err != nil {
		return err
	}
	defer b.close()
	// A dry run, at the default interval: the scrape and the tick cost the
	// same, and this machine holds nothing.
	c, err := startCro(binary, b.dir, "--dry-run")
	if err != nil {
		return err
	}
	defer stop(c.cmd)
	started := time.Now()
	fmt.Println("scrape and memory: cro-exporter --dry-run (holds nothing) at the default 15 s interval," +
		" beside node_exporter with its cpu, meminfo and filesystem collectors, both started together")

	// Idle: past the ticks at 0 and 15 s, and the give-way watcher's 120
	// reads, before any scrape.
	time.Sleep(time.Until(started.Add(idleAfter)))
	croIdle, nodeIdle := memoryOf(c.cmd.Process.Pid), memoryOf(b.node.Process.Pid)

	// The same scrapes of each, at once, each on its own keep-alive
	// connection.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, url := range []string{c.url, b.nodeURL} {
		wg.Go(func() { errs[i] = scrapes(url, memoryScrapes) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	croAfter, nodeAfter := memoryOf(c.cmd.Process.Pid), memoryOf(b.node.Process.Pid)
	fmt.Printf("memory, idle %v after start: cro-exporter RSS %v; node_exporter %v (goal: cro-exporter <= node_exporter + 1 MiB: %s)\n",
		idleAfter, croIdle, nodeIdle, met(croIdle.rss <= nodeIdle.rss+1))
	fmt.Printf("memory, after %d scrapes (keep-alive, gzip, Prometheus' Accept): cro-exporter RSS %v; node_exporter %v (goal: cro-exporter <= node_exporter: %s)\n",
		memoryScrapes, croAfter, nodeAfter, met(croAfter.rss <= nodeAfter.rss))

	// Alternate the two so that a noisy neighbour hurts both alike.
	var croP50, croP99, nodeP50, nodeP99 []float64
	for range 3 {
		for _, t := range []struct {
			url      string
			p50, p99 *[]float64
		}{{c.url, &croP50, &croP99}, {b.nodeURL, &nodeP50, &nodeP99}} {
			p50, p99, err := wrk(t.url)
			if err != nil {
				return err
			}
			*t.p50, *t.p99 = append(*t.p50, p50), append(*t.p99, p99)
		}
	}
	fmt.Printf("scrape (wrk -t1 -c1 -d5s, median of 3): cro-exporter p50 %.3f ms, p99 %.3f ms (goal p50 <= 0.30 ms);"+
		" node_exporter cpu+meminfo+filesystem p50 %.3f ms, p99 %.3f ms (reference 0.78 / 1.47 ms)\n",
		median(croP50), median(croP99), median(nodeP50), median(nodeP99))
	return nil
}

// idleAfter is when idle memory is read, and memoryScrapes how many
// scrapes each exporter serves before it is read again.
const (
	idleAfter     = 30 * time.Second
	memoryScrapes = 10000
)

// Headers Prometheus 3 sends with every scrape.
const (
	prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6," +
		"application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4," +
		"text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
	prometheusAcceptEncoding = "gzip"
)

// beside is what the benches that set cro-exporter beside node_exporter
// start from: a temporary dir, and node_exporter running with the
// collectors that read what cro-exporter reads (cpu, meminfo and
// filesystem) on a free loopback port.
type beside struct {
	dir     string
	node    *exec.Cmd
	nodeURL string // node_exporter's metrics
}

// startBeside makes the dir and starts node_exporter.
func startBeside() (*beside, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cro-bench")
	if err != nil {
		return nil, err
	}
	node := exec.Command("prometheus-node-exporter", "--web.listen-address=127.0.0.1:"+port,
		"--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.filesystem")
	if err := node.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting node_exporter (apt-get install prometheus-node-exporter): %w", err)
	}
	return &beside{dir: dir, node: node, nodeURL: "http://127.0.0.1:" + port + "/metrics"}, nil
}

// close stops node_exporter and removes the dir.
func (b *beside) close() {
	stop(b.node)
	os.RemoveAll(b.dir)
}

// scraper scrapes as Prometheus does: on one keep-alive connection, with
// Prometheus' headers, reading each (compressed) body to the end.
type scraper struct{ client *http.Client }

func newScraper() scraper {
	return scraper{&http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}}}
}

// scrape GETs url once and checks that it is served, compressed.
func (s scraper) scrape(url string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", prometheusAccept)
	req.Header.Set("Accept-Encoding", prometheusAcceptEncoding)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		return fmt.Errorf("%s, Content-Encoding %q, want 200 and gzip", resp.Status, resp.Header.Get("Content-Encoding"))
	}
	return nil
}

// close closes the scraper's connection.
func (s scraper) close() { s.client.CloseIdleConnections() }

// scrapes GETs url n times, one after the other on one keep-alive
// connection, as Prometheus does.
func scrapes(url string, n int) error {
	s := newScraper()
	defer s.close()
	for i := range n {
		if err := s.scrape(url); err != nil {
			return fmt.Errorf("scrape %d of %s: %w", i+1, url, err)
		}
	}
	return nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// cro is a running cro-exporter and the JSON log lines it wrote.
type cro struct {
	cmd *exec.Cmd
	url string // of its metrics

	mu   sync.Mutex
	logs []logLine
}

// logLine is what the benches read of a log line.
type logLine struct {
	Time time.Time
	Msg  string
}

// startCro starts cro-exporter on a loopback port with its state in state
// and the given flags, and returns once it listens.
func startCro(binary build, state string, args ...string) (*cro, error) {
	cmd := binary.command(append([]string{"--web.listen-address=127.0.0.1:0", "--log.format=json", "--state.dir=" + state}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &cro{cmd: cmd}
	listening := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			var line struct {
				logLine
				Address string
			}
			if json.Unmarshal(lines.Bytes(), &line) != nil {
				continue
			}
			if line.Msg == "listening" {
				listening <- line.Address
			}
			c.mu.Lock()
			c.logs = append(c.logs, line.logLine)
			c.mu.Unlock()
		}
		close(listening)
	}()
	addr, ok := <-listening
	if !ok {
		stop(cmd)
		return nil, fmt.Errorf("%s exited before listening", binary.argv)
	}
	c.url = "http://" + addr + "/metrics"
	return c, nil
}

// logged returns the times of the log lines with message msg.
func (c *cro) logged(msg string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ts []time.Time
	for _, l := range c.logs {
		if l.Msg == msg {
			ts = append(ts, l.Time)
		}
	}
	return ts
}

// metric is the value of one series in a scrape, e.g.
// cro_setpoint_ratio{resource="cpu"}.
func (c *cro) metric(series string) (float64, error) {
	resp, err := http.Get(c.url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in the scrape", series)
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// wrkLatency matches the p50 and p99 lines of wrk --latency.
var wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)$`)

// wrk runs wrk for 5 s on one keep-alive connection and returns the p50 and
// p99 latency in milliseconds.
func wrk(url string) (p50, p99 float64, err error) {
	out, err := exec.Command("wrk", "-t1", "-c1", "-d5s", "--latency", url).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk %s (apt-get install wrk): %v\n%s", url, err, out)
	}
	scale := map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}
	ms := map[string]float64{}
	for _, m := range wrkLatency.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		ms[m[1]] = v * scale[m[3]]
	}
	if len(ms) != 2 {
		return 0, 0, fmt.Errorf("no latency distribution in wrk's output:\n%s", out)
	}
	return ms["50"], ms["99"], nil
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}
