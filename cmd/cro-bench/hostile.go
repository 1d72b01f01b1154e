//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
)

// idleConnections is how many idle connections the hostile give-way bench
// holds open to the daemon.
const idleConnections = 10000

// benchHostileGiveWay times the memory give-way while everything else that
// could hold it up happens at once: 10,000 idle connections held open to
// the daemon, a memory holder stopped with SIGSTOP, and the workload's step
// crossing the reserve just as a tick starts a 1 GiB chunk and the CPU
// burner. It also times the shutdown with the stopped holder.
func benchHostileGiveWay(binary build) error {
	var latencies, fromSteps, shutdowns []float64
	var established int
	for range 3 {
		lat, fromStep, down, n, err := hostileRound(binary)
		if err != nil {
			return err
		}
		latencies, fromSteps, shutdowns, established = append(latencies, lat), append(fromSteps, fromStep), append(shutdowns, down), n
	}
	lo, hi := minMax(latencies)
	slo, shi := minMax(fromSteps)
	fmt.Printf("memory give-way under attack (%d idle connections tried, %d open, one holder SIGSTOPped, a 1 GiB chunk and the CPU burner starting): ballast released %.3f s after MemAvailable crossed the reserve (median of 3; %.3f-%.3f s), %.2f s after the step began (%.2f-%.2f s) (goal < 1 s)\n",
		idleConnections, established, median(latencies), lo, hi, median(fromSteps), slo, shi)
	lo, hi = minMax(shutdowns)
	fmt.Printf("shutdown with a SIGSTOPped holder: %.3f s (median of 3; %.3f-%.3f s) (goal < 1 s)\n", median(shutdowns), lo, hi)
	return nil
}

// hostileRound is one round of benchHostileGiveWay: the release latency,
// the shutdown time, and how many idle connections were open.
func hostileRound(binary build) (latency, fromStep, shutdown float64, established int, err error) {
	state, err := os.MkdirTemp("", "cro-bench-hostile")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer os.RemoveAll(state)
	total, avail, err := meminfo()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	const gib = 1 << 30
	// Room for two 1 GiB chunks above what is used now; the reserve leaves
	// the full ballast 400 MiB above it.
	target := float64(total-avail+2*gib) / float64(total)
	reserve := avail - 2*gib - 400<<20
	c, err := startCro(binary, state, "--disk.path="+state, "--interval=4s",
		"--target.cpu=0.3", "--target.disk=0", fmt.Sprintf("--target.memory=%.6f", target), fmt.Sprintf("--memory.reserve=%d", reserve))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer terminate(c.cmd, binary.stop)
	conns := openIdle(strings.TrimSuffix(strings.TrimPrefix(c.url, "http://"), "/metrics"), idleConnections)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()

	daemon := c.cmd.Process.Pid
	first, err := stopFullChunk(daemon)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer syscall.Kill(first, syscall.SIGCONT)

	// The next tick starts the second chunk and the CPU burner: step in.
	if err := await(10*time.Second, func() bool {
		return len(holderCPU(daemon, "memory")) >= 2 && len(holderCPU(daemon, "cpu")) >= 1
	}); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("the second tick started no chunk and burner: %w", err)
	}
	if latency, fromStep, err = stepUnder(c, reserve); err != nil {
		return 0, 0, 0, 0, err
	}

	// Stop the daemon while a holder may still be stopped.
	syscall.Kill(first, syscall.SIGSTOP)
	begin := time.Now()
	terminate(c.cmd, binary.stop)
	return latency, fromStep, time.Since(begin).Seconds(), len(conns), nil
}

// stopFullChunk waits for the first tick's 1 GiB chunk of the daemon to
// be full, then stops it with SIGSTOP and returns its pid.
func stopFullChunk(daemon int) (int, error) {
	var first int
	if err := await(30*time.Second, func() bool {
		for pid := range holderCPU(daemon, "memory") {
			if rss(pid) >= 1000 {
				first = pid
				return true
			}
		}
		return false
	}); err != nil {
		return 0, fmt.Errorf("no full 1 GiB chunk: %w", err)
	}
	return first, syscall.Kill(first, syscall.SIGSTOP)
}

// stepUnder takes MemAvailable half a GiB under reserve in one step, as a
// workload would, and times the release c logs: from when MemAvailable
// crossed the reserve, and from when the step began.
func stepUnder(c *cro, reserve int64) (latency, fromStep float64, err error) {
	_, now, err := meminfo()
	if err != nil {
		return 0, 0, err
	}
	crossed, stopWatch := watchCrossing(reserve)
	stepped := time.Now()
	step := make([]byte, now-reserve+512<<20)
	for i := 0; i < len(step); i += os.Getpagesize() {
		step[i] = 1
	}
	var at time.Time
	select {
	case at = <-crossed:
	case <-time.After(5 * time.Second):
		close(stopWatch)
		return 0, 0, fmt.Errorf("the step never took MemAvailable under the reserve")
	}
	if err := await(5*time.Second, func() bool {
		r := c.logged("memory ballast released")
		return len(r) > 0 && !r[len(r)-1].Before(at.Add(-time.Second))
	}); err != nil {
		return 0, 0, fmt.Errorf("no release logged: %w", err)
	}
	released := c.logged("memory ballast released")
	last := released[len(released)-1]
	runtime.KeepAlive(step)
	step = nil
	debug.FreeOSMemory() // the next round starts with this one's memory back
	// The bench's own reads of MemAvailable may lag the daemon's while
	// the step takes the CPU: a release seen first counts as 0.
	return max(0, last.Sub(at).Seconds()), last.Sub(stepped).Seconds(), nil
}

// watchCrossing sends the time on crossed when MemAvailable first reads
// under reserve, polling every 2 ms until then or until stop is closed.
func watchCrossing(reserve int64) (crossed <-chan time.Time, stop chan struct{}) {
	ch := make(chan time.Time, 1)
	stop = make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, a, err := meminfo(); err == nil && a < reserve {
				ch <- time.Now()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return ch, stop
}

// openIdle opens up to n connections to addr and sends nothing on them.
// Connections the daemon's backlog cannot take time out and are not
// counted.
func openIdle(addr string, n int) []net.Conn {
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	todo := make(chan struct{}, n)
	for range n {
		todo <- struct{}{}
	}
	close(todo)
	for range 1000 {
		wg.Go(func() {
			for range todo {
				conn, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns
}

// await polls cond every 5 ms for up to timeout.
func await(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
