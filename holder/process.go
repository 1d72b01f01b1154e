package holder

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts of the talk with a holder process.
const (
	// readyTimeout bounds the wait for a holder's "ready" line. A 1 GiB
	// memory holder is ready within about 1.5 s on warm memory, several
	// times that on cold memory; a slow or swapping host gets the rest.
	readyTimeout = 30 * time.Second
	// replyTimeout bounds the wait for the answer to a command line.
	replyTimeout = 5 * time.Second
	// stopTimeout bounds the wait for a holder to exit after "stop" before
	// it is killed, and the wait for a killed process to go.
	stopTimeout = 5 * time.Second
)

// ownerEnv is the environment variable that marks a holder process with the
// state dir of the manager that started it. A manager holds that state dir's
// lock, so any other process so marked is a leftover of an earlier run.
const ownerEnv = "CRO_HOLDER_OWNER"

// startRequest asks the starter thread to start a command.
type startRequest struct {
	cmd  *exec.Cmd
	done chan<- error
}

var (
	starterOnce sync.Once
	starter     chan startRequest
)

// startOnLockedThread starts cmd from one goroutine locked to its OS thread
// for the life of the process. The kernel sends a child its parent-death
// signal when the thread that forked it exits, not the process: a thread the
// Go runtime may end at any time would kill holders for nothing.
func startOnLockedThread(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		starter = make(chan startRequest)
		go func() {
			// Never unlocked: a locked goroutine that returns takes its
			// thread with it, and the parent-death signals would fire.
			runtime.LockOSThread()
			for req := range starter {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	starter <- startRequest{cmd: cmd, done: done}
	return <-done
}

// launcher starts holder processes.
type launcher struct {
	binary string // the executable started
	argv0  string // its argv[0]: a path ending in cro-exporter
	owner  string // the state dir, put in ownerEnv
	proc   string // procfs root
	logger *slog.Logger
}

// holderProcess is one running holder and the pipes to talk to it.
type holderProcess struct {
	Kind      Kind
	Size      int64   // memory: the bytes asked for
	Duty      float64 // cpu: the duty asked for
	Pid       int
	StartTime uint64 // field 22 of /proc/<pid>/stat
	Resident  int64  // memory: as its ready line said

	ready     chan struct{} // closed once its ready line is read
	cmd       *exec.Cmd
	stdin     *os.File
	lines     chan string // stdout lines; closed at EOF
	stderr    *stderrTail
	closeOnce sync.Once
	exited    chan struct{} // closed once reaped
	waitErr   error         // cmd.Wait's result, set before exited is closed
}

// args are the holder's arguments after argv[0].
func holderArgs(kind Kind, size int64, duty float64) []string {
	if kind == KindCPU {
		return []string{"holder", "cpu", "--duty=" + formatDuty(duty)}
	}
	return []string{"holder", "memory", "--size=" + strconv.FormatInt(size, 10)}
}

// formatDuty writes a duty as a plain decimal, never with an exponent.
func formatDuty(d float64) string { return strconv.FormatFloat(d, 'f', -1, 64) }

// start starts a holder process without waiting for it to be ready. The
// process is reaped by a goroutine of its own whatever happens next.
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
		Kind:   kind,
		Size:   size,
		Duty:   duty,
		stdin:  inW,
		lines:  make(chan string, 16),
		stderr: &stderrTail{logger: l.logger, kind: kind},
		ready:  make(chan struct{}),
		exited: make(chan struct{}),
	}
	p.cmd = &exec.Cmd{
		Path:        l.binary,
		Args:        append([]string{l.argv0}, holderArgs(kind, size, duty)...),
		Env:         append(os.Environ(), ownerEnv+"="+l.owner),
		Stdin:       inR,
		Stdout:      outW,
		Stderr:      p.stderr,
		SysProcAttr: holderSysProcAttr(),
	}
	err = startOnLockedThread(p.cmd)
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
	st, statErr := readProcStat(l.proc, p.Pid)
	p.StartTime = st.StartTime
	go p.readLines(outR)
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if statErr != nil {
		p.kill()
		return nil, fmt.Errorf("starting %s holder: %w", kind, statErr)
	}
	return p, nil
}

// readLines sends the holder's stdout lines to p.lines until EOF. A line
// nobody waits for is dropped rather than block the holder.
func (p *holderProcess) readLines(r *os.File) {
	defer r.Close()
	defer close(p.lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case p.lines <- sc.Text():
		default:
		}
	}
}

// awaitLine waits up to timeout for the holder's next stdout line that
// starts with prefix+" " and returns the rest of it.
func (p *holderProcess) awaitLine(prefix string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			select {
			case <-p.exited:
			case <-timer.C:
				return "", fmt.Errorf("%s holder (pid %d) closed its stdout before saying %q", p.Kind, p.Pid, prefix)
			}
			return "", fmt.Errorf("%s holder (pid %d) exited (%v) before saying %q%s", p.Kind, p.Pid, p.waitErr, prefix, p.stderr.suffix())
		}
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			return rest, nil
		}
		return "", fmt.Errorf("%s holder (pid %d) said %q, want %q", p.Kind, p.Pid, abbreviate(line), prefix+" ...")
	case <-timer.C:
		return "", fmt.Errorf("%s holder (pid %d) did not say %q within %s%s", p.Kind, p.Pid, prefix, timeout, p.stderr.suffix())
	}
}

// waitReady waits for the holder's ready line. A memory holder's line gives
// its resident bytes, a CPU holder's the duty it runs at. It is called once
// per holder.
func (p *holderProcess) waitReady(timeout time.Duration) error {
	rest, err := p.awaitLine("ready", timeout)
	if err != nil {
		return err
	}
	if p.Kind == KindMemory {
		if p.Resident, err = strconv.ParseInt(rest, 10, 64); err != nil {
			return fmt.Errorf("memory holder (pid %d): ready line %q: %w", p.Pid, "ready "+rest, err)
		}
	} else if _, err := strconv.ParseFloat(rest, 64); err != nil {
		return fmt.Errorf("cpu holder (pid %d): ready line %q: %w", p.Pid, "ready "+rest, err)
	}
	close(p.ready)
	return nil
}

// isReady tells whether the holder has said it is ready.
func (p *holderProcess) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// setDuty tells a CPU holder its new duty and waits for it to answer that it
// applied it.
func (p *holderProcess) setDuty(duty float64) error {
	if err := p.send("duty " + formatDuty(duty)); err != nil {
		return err
	}
	rest, err := p.awaitLine("duty", replyTimeout)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseFloat(rest, 64); err != nil {
		return fmt.Errorf("cpu holder (pid %d): answer %q: %w", p.Pid, "duty "+rest, err)
	}
	p.Duty = duty
	return nil
}

// send writes one command line to the holder's stdin.
func (p *holderProcess) send(line string) error {
	// A holder that stopped reading must not block the caller.
	p.stdin.SetWriteDeadline(time.Now().Add(replyTimeout))
	if _, err := p.stdin.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("%s holder (pid %d): writing %q: %w", p.Kind, p.Pid, line, err)
	}
	return nil
}

// hasExited tells whether the holder has ended and been reaped.
func (p *holderProcess) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// closeStdin closes the holder's stdin, which ends it.
func (p *holderProcess) closeStdin() { p.closeOnce.Do(func() { p.stdin.Close() }) }

// stop asks the holder to stop, closes its stdin and waits for it to exit:
// up to stopTimeout, then it is killed. It returns an error when the holder
// had to be killed or ended badly; either way the holder is gone and reaped.
// A memory holder that has not filled yet is killed at once, as planned.
func (p *holderProcess) stop() error {
	if p.hasExited() {
		p.closeStdin()
		return nil
	}
	if p.Kind == KindMemory && !p.isReady() {
		// Still filling, it reads no stdin until it is full: killing it
		// frees its memory soonest.
		p.kill()
		return nil
	}
	p.send("stop") // it may be gone already: EPIPE
	p.closeStdin()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("%s holder (pid %d) stopped: %w%s", p.Kind, p.Pid, p.waitErr, p.stderr.suffix())
		}
		return nil
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s holder (pid %d) did not stop within %s; killed it", p.Kind, p.Pid, stopTimeout)
	}
}

// kill kills the holder and waits until it is reaped. The signal goes
// through the process handle, which never reaches a process that reused the
// pid after the holder was reaped.
func (p *holderProcess) kill() {
	p.cmd.Process.Kill()
	p.closeStdin()
	<-p.exited
}

// stderrTail logs a holder's stderr line by line and keeps its end for
// error messages.
type stderrTail struct {
	logger *slog.Logger
	kind   Kind
	mu     sync.Mutex
	pid    int
	line   []byte // the unfinished line
	tail   []byte // the end of what was written
}

const stderrTailSize = 1024

func (t *stderrTail) setPid(pid int) {
	t.mu.Lock()
	t.pid = pid
	t.mu.Unlock()
}

// Write logs every complete line of b as a warning.
func (t *stderrTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tail = append(t.tail, b...)
	if len(t.tail) > stderrTailSize {
		t.tail = t.tail[len(t.tail)-stderrTailSize:]
	}
	t.line = append(t.line, b...)
	for {
		i := strings.IndexByte(string(t.line), '\n')
		if i < 0 {
			break
		}
		t.logger.Warn("Holder said on stderr", "kind", t.kind, "pid", t.pid, "line", string(t.line[:i]))
		t.line = t.line[i+1:]
	}
	if len(t.line) > stderrTailSize {
		t.line = t.line[len(t.line)-stderrTailSize:]
	}
	return len(b), nil
}

// suffix is ": stderr: <tail>" for an error message, or "" when the holder
// wrote nothing on stderr.
func (t *stderrTail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.tail))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

// openForeign opens pid and checks, after the process handle is open, that
// it is the process check accepts. The check sees its stat and command
// line; a process gone, ended, or refused by check is errNoProcess or
// check's error and is never signalled. Once the handle is open, a pid
// reused by another process does not matter: the handle names the process
// that was checked.
func openForeign(proc string, pid int, check func(procStat, []string) error) (*foreignProcess, error) {
	f, err := openPidfd(pid)
	if err != nil {
		return nil, err
	}
	st, err := readProcStat(proc, pid)
	var argv []string
	if err == nil {
		if st.exited() {
			err = fmt.Errorf("pid %d: %w", pid, errNoProcess)
		} else {
			argv, err = readCmdline(proc, pid)
		}
	}
	if err == nil {
		err = check(st, argv)
	}
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// kill kills the process and waits up to timeout for it to end.
func (f *foreignProcess) kill(timeout time.Duration) error {
	if err := f.signal(unix.SIGKILL); err != nil {
		return err
	}
	if !f.wait(timeout) {
		return fmt.Errorf("pid %d still runs %s after SIGKILL", f.pid, timeout)
	}
	return nil
}
