package holder

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// idleStep is the resolution of the machine's idle time: GetSystemTimes
// counts it by the clock tick, 15.625 ms by default (Wine's, from Linux's
// /proc/stat, is 10 ms).
const idleStep = 15625 * time.Microsecond

// spinGap is the longest wall time between two reads of a spin's clock
// that a burner thread counts as run: a step of spinWork is about 20 µs,
// and a thread that was switched out for another is gone a slice of the
// scheduler's, a millisecond or more.
const spinGap = 500 * time.Microsecond

// threadPriorityIdle is THREAD_PRIORITY_IDLE, which x/sys/windows lacks.
const threadPriorityIdle = -15

// x/sys/windows has no wrappers for these.
var (
	kernel32                      = windows.NewLazySystemDLL("kernel32.dll")
	procGetSystemTimes            = kernel32.NewProc("GetSystemTimes")
	procGetThreadTimes            = kernel32.NewProc("GetThreadTimes")
	procSetThreadPriority         = kernel32.NewProc("SetThreadPriority")
	procQueryPerformanceCounter   = kernel32.NewProc("QueryPerformanceCounter")
	procQueryPerformanceFrequency = kernel32.NewProc("QueryPerformanceFrequency")
)

// burnerThread is a handle of a burner thread that may query its times.
// It is never closed: the burners run until their process ends.
type burnerThread windows.Handle

// idleThread gives the calling thread THREAD_PRIORITY_IDLE, base priority
// 1, under which any other ready thread of priority 2 and up, any normal
// program's, takes the CPU first. Its process goes to IDLE_PRIORITY_CLASS
// too, so that the runtime's own threads, the command reader's above all,
// do not preempt real work either (a thread at idle priority is 1 in every
// class but realtime). It returns a handle of the thread, for
// burnerClocks.
func idleThread() (burnerThread, error) {
	id := windows.GetCurrentThreadId()
	if err := windows.SetPriorityClass(windows.CurrentProcess(), windows.IDLE_PRIORITY_CLASS); err != nil {
		return 0, fmt.Errorf("burner thread %d: SetPriorityClass(IDLE_PRIORITY_CLASS): %w", id, err)
	}
	prio := threadPriorityIdle
	if r, _, err := syscall.SyscallN(procSetThreadPriority.Addr(), uintptr(windows.CurrentThread()), uintptr(prio)); r == 0 {
		return 0, fmt.Errorf("burner thread %d: SetThreadPriority(THREAD_PRIORITY_IDLE): %w", id, err)
	}
	h, err := windows.OpenThread(windows.THREAD_QUERY_LIMITED_INFORMATION, false, id)
	if err != nil {
		return 0, fmt.Errorf("burner thread %d: OpenThread: %w", id, err)
	}
	return burnerThread(h), nil
}

// cpu reads the thread's CPU time, from any thread of the process.
func (t burnerThread) cpu() time.Duration { return threadTimes(windows.Handle(t)) }

// threadCPU reads the calling thread's CPU time.
func threadCPU() time.Duration { return threadTimes(windows.CurrentThread()) }

// threadTimes is a thread's kernel and user time, by the clock tick (10 ms
// under Wine): enough for a ledger that adds periods up, too coarse for a
// spin (spinClock).
func threadTimes(h windows.Handle) time.Duration {
	var creation, exit, kernel, user windows.Filetime
	r, _, _ := syscall.SyscallN(procGetThreadTimes.Addr(), uintptr(h),
		uintptr(unsafe.Pointer(&creation)), uintptr(unsafe.Pointer(&exit)),
		uintptr(unsafe.Pointer(&kernel)), uintptr(unsafe.Pointer(&user)))
	if r == 0 {
		return 0 // a pseudo or open handle with query access: never fails
	}
	return fileTime(kernel) + fileTime(user)
}

// processCPU reads the process's CPU time: all its threads together.
func processCPU() time.Duration {
	var creation, exit, kernel, user windows.Filetime
	if windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user) != nil {
		return 0 // the pseudo handle has every access: never fails
	}
	return fileTime(kernel) + fileTime(user)
}

// fileTime is a FILETIME's count of 100 ns as a duration.
func fileTime(f windows.Filetime) time.Duration {
	return time.Duration(uint64(f.HighDateTime)<<32|uint64(f.LowDateTime)) * 100
}

// machineIdle reads GetSystemTimes' idle time: it needs nothing open.
type machineIdle struct{}

func openMachineIdle() machineIdle { return machineIdle{} }

// idle is the time all CPUs together have been idle, or -1 when unknown.
func (machineIdle) idle() time.Duration {
	var idle, kernel, user windows.Filetime
	r, _, _ := syscall.SyscallN(procGetSystemTimes.Addr(),
		uintptr(unsafe.Pointer(&idle)), uintptr(unsafe.Pointer(&kernel)), uintptr(unsafe.Pointer(&user)))
	if r == 0 {
		return -1
	}
	return fileTime(idle)
}

func (machineIdle) close() {}

// qpcFrequency is QueryPerformanceCounter's counts per second, fixed at
// boot.
var qpcFrequency = func() int64 {
	var f int64
	syscall.SyscallN(procQueryPerformanceFrequency.Addr(), uintptr(unsafe.Pointer(&f)))
	return f
}()

// monotonic reads QueryPerformanceCounter, in nanoseconds. The runtime's
// clock (time.Since) reads the interrupt time, which moves by the clock
// tick (about 1 ms under Wine, up to 15.6 ms on Windows): too coarse to
// place a burn or to see a spin lose its CPU.
func monotonic() int64 {
	var c int64
	syscall.SyscallN(procQueryPerformanceCounter.Addr(), uintptr(unsafe.Pointer(&c)))
	return c/qpcFrequency*int64(time.Second) + c%qpcFrequency*int64(time.Second)/qpcFrequency
}

// spinClock is the CPU time of a spin. The thread's CPU time moves by the
// clock tick, so a spin counts its own: the wall time since it started,
// less every gap between two reads longer than spinGap, in which the
// thread was not running.
type spinClock struct {
	last int64 // monotonic, at the last read
	lost time.Duration
	wall time.Duration // since the start, at the last read
}

func startSpin() spinClock { return spinClock{last: monotonic()} }

func (c *spinClock) cpu() time.Duration {
	now := monotonic()
	gap := time.Duration(now - c.last)
	if gap > spinGap {
		c.lost += gap
	}
	c.last, c.wall = now, c.wall+gap
	return c.wall - c.lost
}
