//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// benchGiveWay measures how fast the daemon gives CPU and memory back to
// real work, and how fast CPU load comes back: memory of each build in
// turn, the rest of the Linux build's.
func benchGiveWay(builds []build) error {
	if err := benchCPUGiveWay(builds[0]); err != nil {
		return err
	}
	for _, b := range builds {
		if err := benchMemoryGiveWay(b); err != nil {
			return err
		}
	}
	return benchHostileGiveWay(builds[0])
}

// benchCPUGiveWay holds 0.30 of the machine, runs `stress-ng --cpu N
// --cpu-load 50` for 30 s, and reports the machine's busy fraction and the
// burner's share during it, and how long the load takes to come back.
func benchCPUGiveWay(binary build) error {
	state, err := os.MkdirTemp("", "cro-bench-giveway")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	// History of 20 days at the setpoint, so that the 30 s workload barely
	// moves it and the load comes back to the same level.
	history := fmt.Sprintf(`{"version":1,"resources":{"cpu":{"value":0.305,"weight":0.736,"last":%q}}}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	if err := os.WriteFile(filepath.Join(state, "averages.json"), []byte(history), 0o600); err != nil {
		return err
	}
	c, err := startCro(binary, state, "--disk.path="+state, "--interval=5s",
		"--target.cpu=0.30", "--target.memory=0", "--target.disk=0")
	if err != nil {
		return err
	}
	defer terminate(c.cmd, binary.stop)
	time.Sleep(12 * time.Second) // the burner starts at the first tick
	setpoint, err := c.metric(`cro_setpoint_ratio{resource="cpu"}`)
	if err != nil {
		return err
	}
	held, _, err := windows(c, 10)
	if err != nil {
		return err
	}

	ncpu := strconv.Itoa(runtime.NumCPU())
	work := exec.Command("stress-ng", "--cpu", ncpu, "--cpu-load", "50", "--timeout", "30s", "--quiet")
	if err := work.Start(); err != nil {
		return fmt.Errorf("starting stress-ng (apt-get install stress-ng): %w", err)
	}
	defer terminate(work, syscall.SIGTERM)
	time.Sleep(2 * time.Second) // stress-ng settles its duty cycle
	busy, burner, err := windows(c, 26)
	if err != nil {
		return err
	}
	if err := work.Wait(); err != nil {
		return fmt.Errorf("stress-ng: %w", err)
	}
	ended := time.Now()
	back := time.Duration(-1)
	for time.Since(ended) < 20*time.Second {
		b, _, err := windows(c, 1)
		if err != nil {
			return err
		}
		if b[0] >= setpoint-0.02 {
			back = time.Since(ended)
			break
		}
	}
	fmt.Printf("cpu give-way: holding %.3f (setpoint %.3f): machine %.3f; under stress-ng --cpu-load 50 for 30 s: machine %.3f (goal 0.50 ± 0.01), burner's share %.4f (goal < 0.005; lookbusy 0.008, NeverIdle 0.026, stress-ng 0.273)\n",
		mean(held), setpoint, mean(held), mean(busy), mean(burner))
	if back < 0 {
		fmt.Printf("cpu give-way: load not back at the setpoint within 20 s after the workload ended (goal 5 s)\n")
	} else {
		fmt.Printf("cpu give-way: back at the setpoint %.1f s after the workload ended (goal <= 5 s; NeverIdle ~20 s, lookbusy dips to 0.05 for a 5 s window)\n", back.Seconds())
	}
	return nil
}

// windows measures n one-second windows: the machine's busy fraction and
// the share of it the daemon's CPU holders took.
func windows(c *cro, n int) (busy, burner []float64, err error) {
	for range n {
		a, err := readCPUStat()
		if err != nil {
			return nil, nil, err
		}
		before := holderCPU(c.cmd.Process.Pid, "cpu")
		time.Sleep(time.Second)
		after := holderCPU(c.cmd.Process.Pid, "cpu")
		b, err := readCPUStat()
		if err != nil {
			return nil, nil, err
		}
		var spent float64
		for pid, t := range after {
			spent += t - min(t, before[pid]) // a holder started in between counts whole
		}
		busy = append(busy, b.busySince(a))
		burner = append(burner, spent/(b.total-a.total))
	}
	return busy, burner, nil
}

// benchMemoryGiveWay holds about 512 MiB of ballast in 128 MiB chunks with
// the reserve just under what the host has free, then takes memory in
// 128 MiB steps, as a real workload would, and times each release.
func benchMemoryGiveWay(binary build) error {
	state, err := os.MkdirTemp("", "cro-bench-giveway")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	total, avail, err := meminfo()
	if err != nil {
		return err
	}
	const mib = 1 << 20
	target := float64(total-avail+512*mib) / float64(total)
	reserve := avail - 800*mib
	c, err := startCro(binary, state, "--disk.path="+state, "--interval=2s", "--holder.memory-chunk=128MiB",
		"--target.cpu=0", "--target.disk=0", fmt.Sprintf("--target.memory=%.6f", target), fmt.Sprintf("--memory.reserve=%d", reserve))
	if err != nil {
		return err
	}
	defer terminate(c.cmd, binary.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		held, err := c.metric(`cro_holder_bytes{resource="memory"}`)
		if err != nil {
			return err
		}
		if held >= 480*mib {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("memory ballast reached only %.0f MiB in 60 s", held/mib)
		}
		time.Sleep(500 * time.Millisecond)
	}

	var taken [][]byte
	var latencies []float64
	for range 5 {
		// Timed from the step's start: the release may come while the
		// step still touches its pages.
		stepped := time.Now()
		step := make([]byte, 128*mib)
		for i := 0; i < len(step); i += os.Getpagesize() {
			step[i] = 1
		}
		taken = append(taken, step)
		_, avail, err := meminfo()
		if err != nil {
			return err
		}
		if avail >= reserve {
			time.Sleep(2 * time.Second)
			continue
		}
		for time.Since(stepped) < 5*time.Second {
			if released := c.logged("memory ballast released"); len(released) > 0 && released[len(released)-1].After(stepped) {
				latencies = append(latencies, released[len(released)-1].Sub(stepped).Seconds())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
	}
	runtime.KeepAlive(taken)
	if len(latencies) == 0 {
		return fmt.Errorf("no step took MemAvailable under the reserve, or no release was logged")
	}
	lo, hi := minMax(latencies)
	fmt.Printf("memory give-way%s: %d steps of 128 MiB under the reserve, ballast released %.2f s after each step began (median; %.2f-%.2f s) (goal < 1 s)\n",
		binary.row, len(latencies), median(latencies), lo, hi)
	return nil
}

// terminate stops a process with sig, a daemon with its build's stop, so
// that it stops its holders and removes its fill files.
func terminate(cmd *exec.Cmd, sig syscall.Signal) {
	cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
