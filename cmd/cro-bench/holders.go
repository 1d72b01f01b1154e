//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// holderProc is a running holder: `cro-exporter holder <kind>`, which the
// CPU and memory benches start without a daemon.
type holderProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHolder starts `binary holder` with args and waits for its ready
// line, which it returns less "ready "; it stops the holder when the line
// is not one.
func startHolder(binary build, args ...string) (*holderProc, string, error) {
	cmd := binary.command(append([]string{"holder"}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	h := &holderProc{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		h.stop()
		return nil, "", fmt.Errorf("%s holder said %q, not its ready line (%v)", args[0], line, err)
	}
	return h, strings.TrimSpace(strings.TrimPrefix(line, "ready ")), nil
}

// startCPUHolder starts a CPU holder at duty and waits for its ready line.
func startCPUHolder(binary build, duty float64) (*holderProc, error) {
	h, _, err := startHolder(binary, "cpu", "--duty="+strconv.FormatFloat(duty, 'f', -1, 64))
	return h, err
}

// startMemoryHolder starts a memory holder of size bytes and waits for its
// ready line, which must report at least size bytes resident.
func startMemoryHolder(binary build, size int64) (*holderProc, error) {
	h, ready, err := startHolder(binary, "memory", "--size="+strconv.FormatInt(size, 10))
	if err != nil {
		return nil, err
	}
	if n, err := strconv.ParseInt(ready, 10, 64); err != nil || n < size {
		h.stop()
		return nil, fmt.Errorf("memory holder of %d bytes said %q", size, "ready "+ready)
	}
	return h, nil
}

// stop closes the holder's stdin, which ends it, and kills it if it has not
// exited within 5 s; it returns how the holder exited. Stopping a stopped
// holder does nothing.
func (h *holderProc) stop() error {
	if h.cmd.ProcessState != nil {
		return nil
	}
	h.stdin.Close()
	kill := time.AfterFunc(5*time.Second, func() { h.cmd.Process.Kill() })
	defer kill.Stop()
	return h.cmd.Wait()
}
