package main

import (
	"bufio"
	"encoding/json"
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

	"github.com/prometheus/procfs"
)

// benchScrape measures keep-alive scrape latency with wrk
// for cro-exporter and, in the same run, node_exporter with the cpu, meminfo
// and filesystem collectors; then each one's resident memory.
func benchScrape(binary string) error {
	state, err := os.MkdirTemp("", "cro-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	// A dry run: the scrape costs the same, and this machine holds nothing.
	c, err := startCro(binary, state, "--dry-run")
	if err != nil {
		return err
	}
	defer stop(c.cmd)
	croURL := c.url
	port, err := freePort()
	if err != nil {
		return err
	}
	node := exec.Command("prometheus-node-exporter", "--web.listen-address=127.0.0.1:"+port,
		"--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.filesystem")
	if err := node.Start(); err != nil {
		return fmt.Errorf("starting node_exporter (apt-get install prometheus-node-exporter): %w", err)
	}
	defer stop(node)
	nodeURL := "http://127.0.0.1:" + port + "/metrics"

	// Both settle, then report idle memory before any scrape.
	time.Sleep(2 * time.Second)
	croIdle, nodeIdle := rss(c.cmd.Process.Pid), rss(node.Process.Pid)

	// Alternate the two so that a noisy neighbour hurts both alike.
	var croP50, croP99, nodeP50, nodeP99 []float64
	for range 3 {
		for _, t := range []struct {
			url      string
			p50, p99 *[]float64
		}{{croURL, &croP50, &croP99}, {nodeURL, &nodeP50, &nodeP99}} {
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
	fmt.Printf("memory: cro-exporter RSS %.1f MiB idle, %.1f MiB after scrapes (goal <= 15 MiB);"+
		" node_exporter %.1f MiB idle, %.1f MiB after (reference 20 MiB)\n",
		croIdle, rss(c.cmd.Process.Pid), nodeIdle, rss(node.Process.Pid))
	return nil
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
func startCro(binary, state string, args ...string) (*cro, error) {
	cmd := exec.Command(binary, append([]string{"--web.listen-address=127.0.0.1:0", "--log.format=json", "--state.dir=" + state}, args...)...)
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
		return nil, fmt.Errorf("%s exited before listening", binary)
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

// rss is a process's resident memory in MiB, from /proc/<pid>/status; 0
// when it is gone.
func rss(pid int) float64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	status, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return float64(status.VmRSS) / (1 << 20)
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}
