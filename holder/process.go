package holder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts of the talk with a holder process. The manager never waits for
// a holder's answer: it checks these when it next looks at its holders.
const (
	// readyTimeout bounds the wait for a holder's "ready" line. A 1 GiB
	// memory holder is ready within about 1.5 s on warm memory, several
	// times that on cold memory; a slow or swapping host gets the rest.
	readyTimeout = 30 * time.Second
	// replyTimeout bounds the wait for the answer to a command line,
	// counted from when the holder is ready to read it.
	replyTimeout = 5 * time.Second
	// writeTimeout bounds a write to a holder's stdin. A short line waits
	// only when the pipe is full: the holder has stopped reading.
	writeTimeout = 100 * time.Millisecond
	// stopTimeout bounds the wait for a killed process to go.
	stopTimeout = 5 * time.Second
)

// ownerEnv is the environment variable that marks a holder process with the
// state dir of the manager that started it. A manager holds that state dir's
// lock, so any other process so marked is a leftover of an earlier run.
const ownerEnv = "CRO_HOLDER_OWNER"

// processes is how an operating system starts holder processes tied to the
// daemon's life and tells of them: one per operating system, so that
// another is a new file (process_linux.go has Linux's).
type processes interface {
	// start starts cmd so that it ends with the daemon, even when the
	// daemon is killed.
	start(cmd *exec.Cmd) error
	// times returns a running process's start time, which tells it from a
	// later process that reused its pid, and its CPU time so far:
	// errNoProcess once it is gone.
	times(pid int) (start uint64, cpu time.Duration, err error)
	// resident returns a running process's resident memory, in bytes:
	// errNoProcess once it is gone.
	resident(pid int) (int64, error)
}

// launcher starts holder processes.
type launcher struct {
	binary string // the executable started
	argv0  string // its argv[0]: a path ending in cro-exporter
	owner  string // the state dir, put in ownerEnv
	procs  processes
	logger *slog.Logger
	now    func() time.Time // the clock of the holders' timeouts
}

// holderProcess is one running holder and the pipes to talk to it. Nothing
// ever waits for it to answer: its stdout is read by a goroutine of its
// own, and failure tells whether it has answered in time.
type holderProcess struct {
	Kind      Kind
	Size      int64   // memory: the bytes asked for
	Duty      float64 // cpu: the duty last asked for
	Pid       int
	StartTime uint64    // processes.times' start
	started   time.Time // by clock

	clock func() time.Time
	cmd   *exec.Cmd
	// stdin is the write end of the holder's stdin pipe, an *os.File.
	stdin interface {
		io.WriteCloser
		SetWriteDeadline(time.Time) error
	}
	stderr    *stderrTail
	closeOnce sync.Once
	ready     chan struct{} // closed once its ready line is read
	exited    chan struct{} // closed once reaped
	waitErr   error         // cmd.Wait's result, set before exited is closed

	mu sync.Mutex // guards the state of the talk, which the stdout reader updates
	// readyAt is when its ready line was read, by clock; zero before.
	readyAt time.Time
	// unanswered holds, oldest first, when each command line not answered
	// yet was written.
	unanswered []time.Time
	// broken is the first thing it said out of turn, or the first write to
	// it that failed: either way the talk is over.
	broken error

	// cpuSeen is the most CPU time read of it, in nanoseconds: a counter
	// that never goes back, though /proc counts in ticks and the final
	// rusage in microseconds.
	cpuSeen atomic.Int64
}

// args are the holder's arguments after argv[0].
func holderArgs(kind Kind, size int64, duty float64) []string {
	if kind == kindCPU {
		return []string{"holder", "cpu", "--duty=" + formatDuty(duty)}
	}
	return []string{"holder", "memory", "--size=" + strconv.FormatInt(size, 10)}
}

// start starts a holder process without waiting for it to be ready. The
// process is reaped, and its stdout read, by goroutines of its own whatever
// happens next.
func (l *launcher) start(kind Kind, size int64, duty float64) (*holderProcess, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s holder: %w", kind, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("starting %s holder: %w", kind, err)
	}
	p := &holderProcess{
		Kind:    kind,
		Size:    size,
		Duty:    duty,
		started: l.now(),
		clock:   l.now,
		stdin:   inW,
		stderr:  &stderrTail{logger: l.logger, kind: kind},
		ready:   make(chan struct{}),
		exited:  make(chan struct{}),
	}
	p.cmd = &exec.Cmd{
		Path:   l.binary,
		Args:   append([]string{l.argv0}, holderArgs(kind, size, duty)...),
		Env:    append(os.Environ(), ownerEnv+"="+l.owner),
		Stdin:  inR,
		Stdout: outW,
		Stderr: p.stderr,
	}
	err = l.procs.start(p.cmd)
	// The child has its own copies now; ours would keep the pipes open.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("starting %s holder: %w", kind, err)
	}
	p.Pid = p.cmd.Process.Pid
	p.stderr.setPid(p.Pid)
	// Not reaped yet, so the pid is still the child's, zombie or not.
	var statErr error
	p.StartTime, _, statErr = l.procs.times(p.Pid)
	go p.readLines(outR)
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if statErr != nil {
		p.kill()
		<-p.exited
		return nil, fmt.Errorf("starting %s holder: %w", kind, statErr)
	}
	return p, nil
}

// readLines reads the holder's stdout until EOF: its ready line, then a CPU
// holder's answers. A line out of turn breaks the talk; the rest is read
// all the same, so that the holder never blocks on a full pipe.
func (p *holderProcess) readLines(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if err := p.heard(sc.Text()); err != nil {
			p.breakTalk(err)
		}
	}
	if err := sc.Err(); err != nil {
		p.breakTalk(fmt.Errorf("%s holder (pid %d): reading its stdout: %w", p.Kind, p.Pid, err))
		io.Copy(io.Discard, r)
	}
}

// heard takes one line the holder said: "ready <resident bytes>" (memory)
// or "ready <duty>" (cpu) first, then "duty R" for each duty line written.
func (p *holderProcess) heard(line string) error {
	word, rest, _ := strings.Cut(line, " ")
	ready := p.isReady()
	switch {
	case !ready && word == "ready":
		var err error
		if p.Kind == kindMemory {
			_, err = strconv.ParseInt(rest, 10, 64) // its resident bytes
		} else {
			_, err = parseDuty(rest)
		}
		if err != nil {
			return fmt.Errorf("%s holder (pid %d): ready line %q: %w", p.Kind, p.Pid, abbreviate(line), err)
		}
		p.mu.Lock()
		p.readyAt = p.clock()
		p.mu.Unlock()
		close(p.ready)
		return nil
	case ready && p.Kind == kindCPU && word == "duty":
		if _, err := parseDuty(rest); err != nil {
			return fmt.Errorf("cpu holder (pid %d): answer %q: %w", p.Pid, abbreviate(line), err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.unanswered) == 0 {
			return fmt.Errorf("cpu holder (pid %d) answered %q, which was not asked", p.Pid, abbreviate(line))
		}
		p.unanswered = p.unanswered[1:]
		return nil
	}
	return fmt.Errorf("%s holder (pid %d) said %q out of turn", p.Kind, p.Pid, abbreviate(line))
}

// breakTalk records the first thing that ended the talk with the holder.
func (p *holderProcess) breakTalk(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken == nil {
		p.broken = err
	}
}

// isReady tells whether the holder has said it is ready.
func (p *holderProcess) isReady() bool { return isClosed(p.ready) }

// setDuty writes a CPU holder its new duty without waiting for the answer,
// which failure then expects within replyTimeout. The write itself waits at
// most writeTimeout. The line is counted as asked before it is written: a
// holder may answer before the write returns.
func (p *holderProcess) setDuty(duty float64) error {
	line := dutyLine(duty)
	p.mu.Lock()
	p.unanswered = append(p.unanswered, p.clock())
	p.mu.Unlock()
	p.stdin.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		err = fmt.Errorf("%s holder (pid %d): writing %q: %w", p.Kind, p.Pid, line, err)
		p.breakTalk(err)
		return err
	}
	p.Duty = duty
	return nil
}

// failure tells why the holder has failed by now, or nil while it has not:
// it ended, broke the talk, was not ready within readyTimeout of its start,
// or left a command unanswered for replyTimeout once ready to read it.
func (p *holderProcess) failure(now time.Time) error {
	if p.hasExited() {
		how := "exited"
		if p.waitErr != nil {
			how = p.waitErr.Error()
		}
		return fmt.Errorf("%s holder (pid %d) ended by itself (%s)%s", p.Kind, p.Pid, how, p.stderr.suffix())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.broken != nil:
		return p.broken
	case p.readyAt.IsZero():
		if now.Sub(p.started) > readyTimeout {
			return fmt.Errorf("%s holder (pid %d) was not ready within %s%s", p.Kind, p.Pid, readyTimeout, p.stderr.suffix())
		}
	case len(p.unanswered) > 0:
		asked := p.unanswered[0]
		if p.readyAt.After(asked) {
			asked = p.readyAt
		}
		if now.Sub(asked) > replyTimeout {
			return fmt.Errorf("%s holder (pid %d) did not answer within %s%s", p.Kind, p.Pid, replyTimeout, p.stderr.suffix())
		}
	}
	return nil
}

// hasExited tells whether the holder has ended and been reaped.
func (p *holderProcess) hasExited() bool { return isClosed(p.exited) }

// closeStdin closes the holder's stdin, which ends it.
func (p *holderProcess) closeStdin() { p.closeOnce.Do(func() { p.stdin.Close() }) }

// kill kills the holder and does not wait: SIGKILL needs nothing of it,
// not even to run (a stopped process dies too), and its own goroutine reaps
// it. The kernel frees its memory as it dies. The signal goes through the
// process handle, which never reaches a process that reused the pid after
// the holder was reaped.
func (p *holderProcess) kill() {
	p.cmd.Process.Kill()
	p.closeStdin()
}

// cpuTime is the holder's CPU time so far: from procs while it runs, from
// its rusage once reaped.
func (p *holderProcess) cpuTime(procs processes) (time.Duration, error) {
	var read time.Duration
	var err error
	if p.hasExited() {
		read = p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	} else {
		var start uint64
		var cpu time.Duration
		start, cpu, err = procs.times(p.Pid)
		switch {
		case errors.Is(err, errNoProcess):
			err = nil // reaped this moment: exited brings the final time
		case err == nil && start == p.StartTime:
			read = cpu
		}
	}
	for {
		seen := p.cpuSeen.Load()
		if int64(read) <= seen {
			return time.Duration(seen), err
		}
		if p.cpuSeen.CompareAndSwap(seen, int64(read)) {
			return read, err
		}
	}
}

// waitReaped waits up to timeout for killed holders to be reaped, and
// names those that were not.
func waitReaped(ps []*holderProcess, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	expired := false
	var errs []error
	for _, p := range ps {
		if !expired {
			select {
			case <-p.exited:
			case <-timer.C:
				expired = true
			}
		}
		if !p.hasExited() {
			errs = append(errs, fmt.Errorf("%s holder (pid %d) still runs %s after SIGKILL", p.Kind, p.Pid, timeout))
		}
	}
	return errors.Join(errs...)
}

// isClosed tells, without waiting, whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// errNoProcess is returned when a process is gone: /proc/<pid> does not
// exist.
var errNoProcess = errors.New("no such process")

// abbreviate shortens s for an error message.
func abbreviate(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
