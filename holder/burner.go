package holder

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// RunCPU is the CPU holder process: one burner thread per CPU, each at the
// system's idle priority (idleThread), together burning duty of the whole
// machine (0.3 = 30% of all CPUs together). It prints "ready <duty>" on out once every thread runs,
// then reads lines from in: "duty R" sets a new duty and is answered
// "duty R"; "stop", or the end of in, stops (nil). Any other line is an
// error naming it.
func RunCPU(duty float64, in io.Reader, out io.Writer) error {
	if !(duty >= 0 && duty <= 1) {
		return fmt.Errorf("duty %v is not between 0 and 1", duty)
	}
	if err := becomeExpendable(); err != nil {
		return err
	}
	n := runtime.NumCPU()
	// One P more than there are burners, so that the command reader and the
	// runtime never wait for a burner to be preempted.
	runtime.GOMAXPROCS(n + 1)

	ctl := newCPUControl(duty)
	var clocks burnerClocks
	started := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { burn(ctl, &clocks, started) })
	}
	defer func() {
		ctl.update(0, true)
		wg.Wait()
	}()
	var errs []error
	for range n {
		errs = append(errs, <-started)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, readyLine(duty)); err != nil {
		return fmt.Errorf("writing the ready line: %w", err)
	}
	return readCommands(in, func(line string) (bool, error) {
		cmd, err := parseCPUCommand(line)
		if err != nil || cmd.stop {
			return cmd.stop, err
		}
		ctl.update(cmd.duty, false)
		if _, err := fmt.Fprintln(out, dutyLine(cmd.duty)); err != nil {
			return false, fmt.Errorf("answering %q: %w", line, err)
		}
		return false, nil
	})
}

// cpuControl is what the burner threads are told: the duty, or to stop.
type cpuControl struct {
	mu      sync.Mutex
	duty    float64
	stopped bool
	changed chan struct{} // closed, and replaced, on every update
}

func newCPUControl(duty float64) *cpuControl {
	return &cpuControl{duty: duty, changed: make(chan struct{})}
}

// get returns the duty, whether to stop, and a channel closed at the next
// update.
func (c *cpuControl) get() (duty float64, stopped bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.duty, c.stopped, c.changed
}

// update sets a new duty, or stops the burners, and wakes those that wait.
func (c *cpuControl) update(duty float64, stop bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.duty, c.stopped = duty, c.stopped || stop
	close(c.changed)
	c.changed = make(chan struct{})
}

// burn is one burner thread. Each period it burns duty of the period in CPU
// time, counted by its ledger (see cpu.go): its own thread's CPU clock, so
// that time taken by other tasks is not counted as burnt, and its share of
// the rest of the process's. Periods have absolute boundaries on the
// monotonic clock, so sleeping late does not add up. It gives way to real
// work as cpu.go's "Giving way" says: it skips a period when the machine had
// no idle time while it was off, stops a burn that loses its CPU, and backs
// off while either goes on.
func burn(ctl *cpuControl, clocks *burnerClocks, started chan<- error) {
	// The thread stays locked to this goroutine and ends with it: an idle
	// priority thread must never run another goroutine.
	runtime.LockOSThread()
	thread, err := idleThread()
	if err == nil {
		clocks.add(thread)
	}
	started <- err
	if err != nil {
		return
	}
	var sink uint64
	defer func() { spinSink.Add(sink) }()
	machine := openMachineIdle()
	defer machine.close()
	var account ledger
	streak := 0 // periods in a row in which real work wanted the CPUs
	next := monotonic()
	offSince, idleSince := next, machine.idle()
	for {
		duty, stopped, changed := ctl.get()
		if stopped {
			return
		}
		if duty == 0 {
			<-changed // sleep, no spinning, until told otherwise
			streak, next = 0, monotonic()
			account.forgive()
			offSince, idleSince = next, machine.idle()
			continue
		}
		start := next
		next = start + int64(cpuPeriod)
		base := time.Duration(duty * float64(cpuPeriod))
		budget := account.roll(base, clocks.read())
		if !sleepUntil(start+int64(burnWindow(cpuPeriod, budget, rand.Float64())), changed) {
			next = monotonic() // a new duty, or stop
			account.forgive()
			continue
		}
		now, idle := monotonic(), machine.idle()
		wanted := idle >= 0 && idleSince >= 0 && machineFull(idle-idleSince, time.Duration(now-offSince))
		if wanted {
			offSince, idleSince = now, idle
		} else {
			cpu, wall := spin(budget, next, &sink)
			wanted = contended(cpu, wall)
			offSince, idleSince = monotonic(), machine.idle()
		}
		if wanted {
			streak++
		} else {
			streak = 0
		}
		if streak >= 2 {
			account.forgive() // a blip is made up; what real work goes on taking is not
		}
		next += int64(backoffPeriods(streak)) * int64(cpuPeriod)
		if !sleepUntil(next, changed) {
			next = monotonic()
			account.forgive()
			continue
		}
		if now := monotonic(); now-next > int64(cpuPeriod) {
			next = now // stopped or starved for long: start afresh, no burst
			account.forgive()
		}
	}
}

// spinSink keeps the burners' arithmetic from being optimised away.
var spinSink atomic.Uint64

// spin burns the thread's CPU until it has burnt budget, the monotonic clock
// reaches deadline, or the burn is contended. It returns the CPU time burnt
// and the wall time it took.
func spin(budget time.Duration, deadline int64, sink *uint64) (cpu, wall time.Duration) {
	clock, wall0 := startSpin(), monotonic()
	for cpu < budget {
		*sink += spinWork(*sink)
		now := monotonic()
		cpu, wall = clock.cpu(), time.Duration(now-wall0)
		if now >= deadline || contended(cpu, wall) {
			break
		}
	}
	return cpu, wall
}

// spinWork is about 20 µs of arithmetic: fine enough steps to stop within
// a hair of the budget, coarse enough that reading the clocks between
// steps costs little.
//
//go:noinline
func spinWork(x uint64) uint64 {
	for range 8192 {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// burnerClocks reads the CPU clocks a burner's ledger counts by.
type burnerClocks struct {
	mu      sync.Mutex
	threads []burnerThread
}

// add counts a thread as a burner.
func (c *burnerClocks) add(t burnerThread) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.threads = append(c.threads, t)
}

// read returns the calling burner's CPU time and its share of the CPU time
// the rest of the process has used: everything but the burner threads.
func (c *burnerClocks) read() cpuTimes {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest := processCPU()
	for _, t := range c.threads {
		rest -= t.cpu()
	}
	return cpuTimes{own: threadCPU(), rest: rest / time.Duration(len(c.threads))}
}

// sleepUntil sleeps until monotonic() reaches t (true), or until
// changed is closed (false). It parks the goroutine on a runtime timer
// rather than blocking its thread in a system call (clock_nanosleep): a
// thread blocked in one keeps the runtime's sysmon thread polling every few
// microseconds, which alone cost 0.5% of a CPU on Linux.
func sleepUntil(t int64, changed <-chan struct{}) bool {
	d := time.Duration(t - monotonic())
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-changed:
		return false
	}
}
