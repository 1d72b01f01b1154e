package holder

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// threadPolicies counts a process's threads by scheduling policy, from
// /proc/<pid>/task/<tid>/stat (5 is SCHED_IDLE).
func threadPolicies(t *testing.T, pid int) map[int]int {
	t.Helper()
	threads, err := procfs.AllThreads(pid)
	if err != nil || len(threads) == 0 {
		t.Fatalf("no threads of %d: %v", pid, err)
	}
	policies := map[int]int{}
	for _, thread := range threads {
		st, err := thread.Stat()
		if err != nil {
			t.Fatal(err)
		}
		policies[int(st.Policy)]++
	}
	return policies
}

// machineTimes reads the machine's CPU time from /proc/stat: all of it and
// the idle part (idle and iowait).
func machineTimes(t *testing.T) (total, idle time.Duration) {
	t.Helper()
	c := kernelStat(t).CPUTotal
	seconds := func(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
	idle = seconds(c.Idle + c.Iowait)
	return idle + seconds(c.User+c.Nice+c.System+c.IRQ+c.SoftIRQ+c.Steal), idle
}

// burnt measures the CPU time a holder uses over d, and the CPU time the
// rest of the machine used meanwhile.
func burnt(t *testing.T, pid int, d time.Duration) (holder, others time.Duration) {
	t.Helper()
	total0, idle0 := machineTimes(t)
	cpu0 := kernelCPUTime(t, pid)
	time.Sleep(d)
	cpu1 := kernelCPUTime(t, pid)
	total1, idle1 := machineTimes(t)
	holder = cpu1 - cpu0
	return holder, (total1 - total0) - (idle1 - idle0) - holder
}

func TestCPUHolderAnswersAndRunsItsThreadsUnderSchedIdle(t *testing.T) {
	h := startLiveHolder(t, "holder", "cpu", "--duty=0.1")
	if line := h.line(t, 10*time.Second); line != "ready 0.1" {
		t.Fatalf("first line %q, want %q", line, "ready 0.1")
	}
	for _, duty := range []string{"0.5", "0", "1", "0.25"} {
		h.send(t, "duty "+duty)
		if line := h.line(t, 5*time.Second); line != "duty "+duty {
			t.Fatalf("answer to %q is %q", "duty "+duty, line)
		}
	}
	if idle, ncpu := threadPolicies(t, h.cmd.Process.Pid)[5], runtime.NumCPU(); idle < ncpu {
		t.Errorf("%d threads under SCHED_IDLE, want one per CPU (%d)", idle, ncpu)
	}
	h.checkOOMFirst(t)
	h.stopCleanly(t)
}

func TestCPUHolderBurnsItsDutyAndNothingAtZero(t *testing.T) {
	ncpu := time.Duration(runtime.NumCPU())
	h := startLiveHolder(t, "holder", "cpu", "--duty=0")
	h.line(t, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // past its start
	if used, _ := burnt(t, h.cmd.Process.Pid, time.Second); used > 50*time.Millisecond {
		t.Errorf("at duty 0 it used %s of CPU in 1 s, want next to nothing", used)
	}

	h.send(t, "duty 0.5")
	h.line(t, 5*time.Second)
	const d = 2 * time.Second
	want := ncpu * d / 2
	// It gives way to real work, by design, so it is held to its duty only
	// as far as other work left the machine idle: 0.3 of the least of its
	// duty and what the rest left, less a tick's worth of the kernel's
	// counting (50 ms). One round of three must pass that; no round may
	// burn more than its duty, busy or not.
	inOneOfRounds(t, 3, func() error {
		used, others := burnt(t, h.cmd.Process.Pid, d)
		if used > want*13/10+50*time.Millisecond {
			t.Fatalf("at duty 0.5 it used %s of CPU in %s, more than its %s", used, d, want)
		}
		if left := ncpu*d - others; used+50*time.Millisecond < min(want, left)*3/10 {
			return fmt.Errorf("at duty 0.5 it used %s of CPU in %s, want about %s; other work took %s and left %s", used, d, want, others, left)
		}
		return nil
	})
}

// inOneOfRounds runs round up to rounds times, until one returns nil: for
// a test of what an idle CPU gives, which a busy machine may deny any one
// round. It fails with every round's error when none passes.
func inOneOfRounds(t *testing.T, rounds int, round func() error) {
	t.Helper()
	var errs []error
	for i := range rounds {
		err := round()
		if err == nil {
			return
		}
		errs = append(errs, fmt.Errorf("round %d: %w", i+1, err))
	}
	t.Errorf("no round of %d passed:\n%v", rounds, errors.Join(errs...))
}

func TestCPUHolderRejectsBadLines(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"duty 2", "duty x", "duty -0.1", "duty 30%", "duty", "jump", ""} {
		t.Run(fmt.Sprintf("%q", line), func(t *testing.T) {
			t.Parallel()
			h := startLiveHolder(t, "holder", "cpu", "--duty=0")
			h.line(t, 10*time.Second)
			h.send(t, line)
			if code := h.wait(t, 5*time.Second); code == 0 {
				t.Errorf("exit status is 0, want a failure")
			}
			if stderr := h.stderr.String(); !strings.Contains(stderr, line) {
				t.Errorf("stderr does not name the line %q: %s", line, stderr)
			}
		})
	}
}

func TestCPUHolderRefusesABadDutyFlag(t *testing.T) {
	t.Parallel()
	for _, duty := range []string{"2", "-0.1", "x"} {
		t.Run(duty, func(t *testing.T) {
			t.Parallel()
			h := startLiveHolder(t, "holder", "cpu", "--duty="+duty)
			if code := h.wait(t, 5*time.Second); code != 2 {
				t.Errorf("exit status is %d, want 2 (usage); stderr: %s", code, h.stderr.String())
			}
		})
	}
}

func TestBurnerClocksTellTheBurnersFromTheRest(t *testing.T) {
	skipShort(t, "needs a CPU to itself for 30 ms, which a busy machine may not give it")
	const burnt = 30 * time.Millisecond
	// A burner's spin stops short when the machine takes its CPU away:
	// one round of five must get its 30 ms.
	inOneOfRounds(t, 5, func() error {
		var clocks burnerClocks
		type result struct {
			thread      burnerThread
			before, end cpuTimes
		}
		done, release := make(chan result), make(chan struct{})
		defer close(release)
		go func() {
			// Like a burner: its own thread, counted, spinning on its clock.
			runtime.LockOSThread() // never unlocked: the thread ends with it
			r := result{thread: burnerThread(unix.Gettid())}
			clocks.add(r.thread)
			r.before = clocks.read()
			var sink uint64
			spin(burnt, monotonic()+int64(time.Minute), &sink)
			r.end = clocks.read()
			done <- r
			<-release
		}()
		r := <-done

		if own := r.end.own - r.before.own; own < burnt {
			return fmt.Errorf("the burner's own clock moved %v over a spin of %v: it lost its CPU", own, burnt)
		}
		if rest := r.end.rest - r.before.rest; rest >= burnt/2 {
			t.Errorf("the rest of the process moved %v over the burner's spin of %v: the burner's time is counted as the rest's", rest, burnt)
		}
		if got := r.thread.cpu(); got < r.end.own || got > r.end.own+10*time.Millisecond {
			t.Errorf("another thread reads the burner's clock as %v, the burner read %v", got, r.end.own)
		}
		return nil
	})
}

func TestParseUptimeIdle(t *testing.T) {
	testParse(t, "parseUptimeIdle", parseUptimeIdle, []parseCase[time.Duration]{
		{"idle seconds are read", "1313.77 1709.25\n", 1709*time.Second + 250*time.Millisecond, false},
		{"hundredths are read", "1.00 0.05\n", 50 * time.Millisecond, false},
		{"a missing field is an error", "1313.77\n", 0, true},
		{"a missing fraction is an error", "1313.77 1709\n", 0, true},
		{"one decimal is an error", "1313.77 1709.2\n", 0, true},
		{"a negative time is an error", "1313.77 -1.00\n", 0, true},
		{"garbage is an error", "x y\n", 0, true},
	})
}
