package winholder

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Job is a job object that kills every process in it when its last handle
// closes (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE): the daemon keeps the one
// handle open for its life, so that its death, however it comes, closes it
// and the kernel kills its holders. It is the analogue of Linux's
// parent-death signal.
type Job struct {
	h windows.Handle
}

// NewJob creates an unnamed job object that kills its processes on close.
func NewJob() (*Job, error) {
	h, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateJobObject: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{
			LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
		},
	}
	if _, err := windows.SetInformationJobObject(h, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("SetInformationJobObject: %w", err)
	}
	return &Job{h: h}, nil
}

// Start starts cmd and puts it in the job; should that fail, the process
// is killed and reaped, and the error returned. Between CreateProcess and
// AssignProcessToJobObject the process runs outside the job for a moment:
// should the daemon die then, the holder still ends, at the EOF of its
// stdin pipe, which is what ends a holder in the first place (the job is
// the backup, as the parent-death signal is on Linux).
func (j *Job) Start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	// exec.Cmd holds no handle it hands out: open one of our own, which
	// cannot reach another process, since the child is not reaped yet.
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(cmd.Process.Pid))
	if err == nil {
		err = windows.AssignProcessToJobObject(j.h, h)
		windows.CloseHandle(h)
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("putting pid %d in the job object: %w", cmd.Process.Pid, err)
	}
	return nil
}

// Close closes the job's handle, which kills every process still in it.
func (j *Job) Close() error { return windows.CloseHandle(j.h) }

// ErrNoProcess is returned for a pid no process has.
var ErrNoProcess = errors.New("no such process")

// openProcess opens pid to query it; a pid no process has is ErrNoProcess.
func openProcess(pid int) (windows.Handle, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return 0, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return 0, fmt.Errorf("pid %d: OpenProcess: %w", pid, err)
	}
	return h, nil
}

// Times returns a running process's creation time (FILETIME, 100 ns units
// since 1601), which tells it from a later process with its pid, and its
// CPU time so far, kernel and user, from GetProcessTimes (under Wine, from
// its threads': underWine). A process that
// has ended is ErrNoProcess, though its object lives while a handle to it
// is open (exec.Cmd's, until Wait; Wine's server keeps it a while longer):
// the holder's final CPU time comes from exec.Cmd's ProcessState.
func Times(pid int) (start uint64, cpu time.Duration, err error) {
	h, err := openProcess(pid)
	if err != nil {
		return 0, 0, err
	}
	defer windows.CloseHandle(h)
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &creation, &exit, &kernel, &user); err != nil {
		return 0, 0, fmt.Errorf("pid %d: GetProcessTimes: %w", pid, err)
	}
	if filetime(exit) != 0 {
		return 0, 0, fmt.Errorf("pid %d: ended: %w", pid, ErrNoProcess)
	}
	cpu = time.Duration(filetime(kernel)+filetime(user)) * 100
	if underWine && pid != os.Getpid() {
		threads, err := threadsCPU(uint32(pid))
		if err != nil {
			return 0, 0, fmt.Errorf("pid %d: %w", pid, err)
		}
		cpu = max(cpu, threads)
	}
	return filetime(creation), cpu, nil
}

// underWine tells whether we run under Wine, whose ntdll exports
// wine_get_version. Wine 8's GetProcessTimes of another process counts
// its main thread alone (a busy holder's burner threads read 20 ms after
// seconds), while each thread's GetThreadTimes is current: there, Times
// adds up its threads'. On Windows, GetProcessTimes counts every thread,
// ended ones too.
var underWine = windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil

// getThreadTimes is kernel32's, which x/sys/windows has no wrapper for.
var getThreadTimes = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetThreadTimes")

// threadsCPU adds up the kernel and user time of the threads of pid that
// run now (threadsOf).
func threadsCPU(pid uint32) (time.Duration, error) {
	tids, err := threadsOf(pid)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, tid := range tids {
		h, err := windows.OpenThread(windows.THREAD_QUERY_LIMITED_INFORMATION, false, tid)
		if err != nil {
			continue // ended since the snapshot
		}
		var creation, exit, kernel, user windows.Filetime
		r, _, _ := getThreadTimes.Call(uintptr(h), uintptr(unsafe.Pointer(&creation)), uintptr(unsafe.Pointer(&exit)),
			uintptr(unsafe.Pointer(&kernel)), uintptr(unsafe.Pointer(&user)))
		windows.CloseHandle(h)
		if r != 0 {
			sum += time.Duration(filetime(kernel)+filetime(user)) * 100
		}
	}
	return sum, nil
}

// threadSnapshot is the system's threads by process, from a Toolhelp
// snapshot at most threadSnapshotAge old: a snapshot costs Wine about
// 10 ms, and the daemon reads every holder's CPU time four times a second
// while it holds anything. A holder's threads are all made as it starts;
// one made later counts from the next snapshot.
var threadSnapshot struct {
	sync.Mutex
	at    time.Time
	byPid map[uint32][]uint32
}

const threadSnapshotAge = time.Second

// threadsOf is the ids of pid's threads, from threadSnapshot.
func threadsOf(pid uint32) ([]uint32, error) {
	threadSnapshot.Lock()
	defer threadSnapshot.Unlock()
	if time.Since(threadSnapshot.at) < threadSnapshotAge && threadSnapshot.byPid[pid] != nil {
		return threadSnapshot.byPid[pid], nil
	}
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return nil, fmt.Errorf("CreateToolhelp32Snapshot: %w", err)
	}
	defer windows.CloseHandle(snap)
	byPid := map[uint32][]uint32{}
	te := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		byPid[te.OwnerProcessID] = append(byPid[te.OwnerProcessID], te.ThreadID)
	}
	if !errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		return nil, fmt.Errorf("Thread32Next: %w", err)
	}
	threadSnapshot.at, threadSnapshot.byPid = time.Now(), byPid
	return byPid[pid], nil
}

func filetime(ft windows.Filetime) uint64 {
	return uint64(ft.HighDateTime)<<32 | uint64(ft.LowDateTime)
}

// processMemoryCounters is PROCESS_MEMORY_COUNTERS (psapi.h).
type processMemoryCounters struct {
	cb                         uint32
	PageFaultCount             uint32
	PeakWorkingSetSize         uintptr
	WorkingSetSize             uintptr
	QuotaPeakPagedPoolUsage    uintptr
	QuotaPagedPoolUsage        uintptr
	QuotaPeakNonPagedPoolUsage uintptr
	QuotaNonPagedPoolUsage     uintptr
	PagefileUsage              uintptr
	PeakPagefileUsage          uintptr
}

// getProcessMemoryInfo is psapi's, which x/sys/windows has no wrapper for
// (kernel32 exports it as K32GetProcessMemoryInfo since Windows 7; psapi's
// forwards there).
var getProcessMemoryInfo = windows.NewLazySystemDLL("psapi.dll").NewProc("GetProcessMemoryInfo")

// Resident returns a running process's working set, in bytes: the pages
// of it in physical memory, what Task Manager's "Working set" column shows
// and the analogue of Linux's resident set. A process that has ended is
// ErrNoProcess, as for Times.
func Resident(pid int) (int64, error) {
	h, err := openProcess(pid)
	if err != nil {
		return 0, err
	}
	defer windows.CloseHandle(h)
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &creation, &exit, &kernel, &user); err != nil {
		return 0, fmt.Errorf("pid %d: GetProcessTimes: %w", pid, err)
	}
	if filetime(exit) != 0 {
		return 0, fmt.Errorf("pid %d: ended: %w", pid, ErrNoProcess)
	}
	var pmc processMemoryCounters
	pmc.cb = uint32(unsafe.Sizeof(pmc))
	if r, _, err := getProcessMemoryInfo.Call(uintptr(h), uintptr(unsafe.Pointer(&pmc)), uintptr(pmc.cb)); r == 0 {
		return 0, fmt.Errorf("pid %d: GetProcessMemoryInfo: %w", pid, err)
	}
	return int64(pmc.WorkingSetSize), nil
}
