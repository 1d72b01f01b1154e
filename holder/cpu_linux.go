package holder

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// idleStep is the resolution of the machine's idle time, /proc/uptime's
// hundredths of a second.
const idleStep = 10 * time.Millisecond

// burnerThread is a burner thread's id.
type burnerThread int

// idleThread puts the calling thread under SCHED_IDLE, so that any other
// runnable task of its group takes the CPU first; where that is refused,
// it gets nice 19. It returns the thread, for burnerClocks.
func idleThread() (burnerThread, error) {
	tid := unix.Gettid()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE, Nice: 19}
	err := unix.SchedSetAttr(0, &attr, 0)
	if err == nil {
		return burnerThread(tid), nil
	}
	if nerr := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); nerr != nil {
		return 0, fmt.Errorf("burner thread %d: setting SCHED_IDLE: %v; setting nice 19: %w", tid, err, nerr)
	}
	return burnerThread(tid), nil
}

// cpu reads the thread's CPU clock, from any thread of the process.
func (t burnerThread) cpu() time.Duration { return cpuClock(threadClock(int(t))) }

// processCPU reads the process's CPU clock: all its threads together.
func processCPU() time.Duration { return cpuClock(unix.CLOCK_PROCESS_CPUTIME_ID) }

// machineIdle is /proc/uptime, kept open: a burner reads it every period.
type machineIdle struct{ f *os.File }

func openMachineIdle() machineIdle {
	f, _ := os.Open("/proc/uptime") // a nil file reads as unknown
	return machineIdle{f}
}

// idle is the time all CPUs together have been idle, or -1 when unknown.
func (u machineIdle) idle() time.Duration {
	if u.f == nil {
		return -1
	}
	var buf [128]byte
	n, err := u.f.ReadAt(buf[:], 0)
	if n == 0 || (err != nil && err != io.EOF) {
		return -1
	}
	idle, err := parseUptimeIdle(buf[:n])
	if err != nil {
		return -1
	}
	return idle
}

func (u machineIdle) close() {
	if u.f != nil {
		u.f.Close()
	}
}

// parseUptimeIdle returns the second field of /proc/uptime: the time all
// CPUs together have been idle, written in seconds with two decimals.
func parseUptimeIdle(b []byte) (time.Duration, error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("want 2 fields, got %q", b)
	}
	secs, cents, ok := strings.Cut(f[1], ".")
	s, err1 := strconv.ParseUint(secs, 10, 63)
	c, err2 := strconv.ParseUint(cents, 10, 7)
	if !ok || err1 != nil || err2 != nil || len(cents) != 2 {
		return 0, fmt.Errorf("idle time %q is not in seconds with two decimals", f[1])
	}
	return time.Duration(s)*time.Second + time.Duration(c)*10*time.Millisecond, nil
}

// monoBase is the origin of monotonic.
var monoBase = time.Now()

// monotonic reads the monotonic clock, in nanoseconds since monoBase,
// through the vDSO: no system call.
func monotonic() int64 { return int64(time.Since(monoBase)) }

// spinClock is the CPU time of a spin: the thread's CPU clock, exact to the
// nanosecond, since its start.
type spinClock time.Duration

func startSpin() spinClock { return spinClock(threadCPU()) }

func (c spinClock) cpu() time.Duration { return threadCPU() - time.Duration(c) }

// threadClock is the clock id of another thread's CPU clock, as the kernel
// makes it (MAKE_THREAD_CPUCLOCK with CPUCLOCK_SCHED): any thread of the
// process may read it.
func threadClock(tid int) int32 { return int32(^tid<<3 | 6) }

// threadCPU reads the calling thread's CPU clock.
func threadCPU() time.Duration { return cpuClock(unix.CLOCK_THREAD_CPUTIME_ID) }

// cpuClock reads a CPU clock. The vDSO does not serve these clocks, and a
// burner reads its own every few microseconds: a raw system call, which the
// Go scheduler does not see, is cheaper, and it does not wake the runtime's
// sysmon thread, which then polls for a millisecond (together 0.2% of a CPU
// less, measured).
func cpuClock(id int32) time.Duration {
	var ts unix.Timespec
	unix.RawSyscall(unix.SYS_CLOCK_GETTIME, uintptr(id), uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
