package host

import (
	"fmt"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Windows' system measures what a Windows auditor's agent sees (psutil,
// the CloudWatch agent, Azure's): the busy share of all logical processors
// from GetSystemTimes, the physical memory in use from
// GlobalMemoryStatusEx, and the volume holding the disk path from
// GetDiskFreeSpaceEx. Windows has no stall times.

var (
	kernel32                 = windows.NewLazySystemDLL("kernel32.dll")
	procGetSystemTimes       = kernel32.NewProc("GetSystemTimes")
	procGlobalMemoryStatusEx = kernel32.NewProc("GlobalMemoryStatusEx")
)

// diskErrorPrefix begins a DiskError, whose cause names the call that
// failed: "disk C:\: GetDiskFreeSpaceEx: ...".
const diskErrorPrefix = "disk "

// fileTimeTick is the unit of GetSystemTimes' counters: a FILETIME counts
// 100 ns intervals.
const fileTimeTick = 100 * time.Nanosecond

// NewReader checks, once, everything Read needs: GetSystemTimes,
// GlobalMemoryStatusEx, and GetDiskFreeSpaceEx of diskPath (normally C:\),
// whose volume is the one the Reader measures for its whole life.
func NewReader(diskPath string) (*Reader, error) {
	sys, err := newWinSystem(diskPath)
	if err != nil {
		return nil, err
	}
	return open(sys, diskPath, fileTimeTick)
}

// winSystem is Windows' system.
type winSystem struct {
	// diskPath is the path the Reader measures, spelled once in UTF-16 so
	// that a read allocates nothing.
	diskPath string
	diskPtr  *uint16
	// The calls' results, kept here so that a read allocates nothing:
	// what escapes to a system call would be allocated each time.
	idle, kernel, user windows.Filetime
	mem                memoryStatusEx
	root               [windows.MAX_PATH + 2]uint16
	volume             device
	total, totalFree   uint64
}

func newWinSystem(diskPath string) (*winSystem, error) {
	if err := procGetSystemTimes.Find(); err != nil {
		return nil, err
	}
	if err := procGlobalMemoryStatusEx.Find(); err != nil {
		return nil, err
	}
	ptr, err := windows.UTF16PtrFromString(diskPath)
	if err != nil {
		return nil, &DiskError{Path: diskPath, Err: err}
	}
	return &winSystem{diskPath: diskPath, diskPtr: ptr}, nil
}

// cpu returns GetSystemTimes' counters, of all logical processors
// together, in 100 ns: busy is kernel + user time less idle time (the
// kernel time includes the idle time), and the number of active logical
// processors of all processor groups, which those counters cover.
func (w *winSystem) cpu() (cpuTicks, int, error) {
	r, _, err := syscall.SyscallN(procGetSystemTimes.Addr(),
		uintptr(unsafe.Pointer(&w.idle)), uintptr(unsafe.Pointer(&w.kernel)), uintptr(unsafe.Pointer(&w.user)))
	if r == 0 {
		return cpuTicks{}, 0, fmt.Errorf("GetSystemTimes: %w", err)
	}
	i, k, u := filetime(w.idle), filetime(w.kernel), filetime(w.user)
	// Never more idle than all the time there was: a busy count that wraps
	// would read as the whole machine busy.
	ticks := cpuTicks{busy: k + u - min(i, k+u), idle: i}
	if ticks.total() == 0 {
		return cpuTicks{}, 0, fmt.Errorf("GetSystemTimes: all counters are 0")
	}
	cpus := int(windows.GetActiveProcessorCount(windows.ALL_PROCESSOR_GROUPS))
	if cpus == 0 {
		return cpuTicks{}, 0, fmt.Errorf("GetActiveProcessorCount: 0 processors")
	}
	return ticks, cpus, nil
}

func filetime(ft windows.Filetime) uint64 {
	return uint64(ft.HighDateTime)<<32 | uint64(ft.LowDateTime)
}

// memoryStatusEx is MEMORYSTATUSEX.
type memoryStatusEx struct {
	length               uint32
	memoryLoad           uint32
	totalPhys            uint64
	availPhys            uint64
	totalPageFile        uint64
	availPageFile        uint64
	totalVirtual         uint64
	availVirtual         uint64
	availExtendedVirtual uint64
}

// memory returns GlobalMemoryStatusEx's physical memory and the part of it
// available (ullTotalPhys, ullAvailPhys): in use is the difference, Task
// Manager's "In use" and psutil's virtual_memory().percent.
func (w *winSystem) memory() (total, avail uint64, err error) {
	w.mem = memoryStatusEx{length: uint32(unsafe.Sizeof(w.mem))}
	r, _, callErr := syscall.SyscallN(procGlobalMemoryStatusEx.Addr(), uintptr(unsafe.Pointer(&w.mem)))
	if r == 0 {
		return 0, 0, fmt.Errorf("GlobalMemoryStatusEx: %w", callErr)
	}
	if w.mem.totalPhys == 0 {
		return 0, 0, fmt.Errorf("GlobalMemoryStatusEx: total physical memory is 0")
	}
	return w.mem.totalPhys, w.mem.availPhys, nil
}

// device is a volume, by its volume GUID path (\\?\Volume{GUID}\), which
// names one volume wherever it is mounted: a path now on another volume
// (another mounted on a folder in the path, a drive letter given to
// another disk) is on another device. Where the mount point has no GUID
// (a network share, a SUBST drive; under Wine, a Unix mount point other
// than a drive's root), it is the mount point, which tells volumes apart
// as well while they stay mounted.
type device struct {
	name [windows.MAX_PATH + 2]uint16
}

func (d device) String() string { return windows.UTF16ToString(d.name[:]) }

// of sets d to the volume path is on; root, of d's length, is where the
// mount point is read, so that nothing is allocated.
func (d *device) of(path *uint16, root []uint16) error {
	// The mount point the path is under: C:\, or the folder another
	// volume is mounted on.
	if err := windows.GetVolumePathName(path, &root[0], uint32(len(root)-1)); err != nil {
		return fmt.Errorf("GetVolumePathName: %w", err)
	}
	// Wine leaves the trailing backslash off a folder; the next call
	// wants it, and there is room for it.
	if n := slices.Index(root, 0); n > 0 && root[n-1] != '\\' {
		root[n], root[n+1] = '\\', 0
	}
	// What a read before left must not make one volume read as two.
	clear(d.name[:])
	if windows.GetVolumeNameForVolumeMountPoint(&root[0], &d.name[0], uint32(len(d.name))) != nil {
		copy(d.name[:], root)
	}
	return nil
}

// VolumeOf names the volume path is on, as the Reader names the disk's.
func VolumeOf(path string) (string, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return "", err
	}
	var d device
	var root [len(d.name)]uint16
	if err := d.of(p, root[:]); err != nil {
		return "", fmt.Errorf("volume of %s: %w", path, err)
	}
	return d.String(), nil
}

// disk measures the volume holding path with GetDiskFreeSpaceEx, counted as
// psutil counts it on Windows (disk_usage().percent is (total - free) /
// total): the volume's free bytes as available, the rest used, so that
// used / (used + available) is psutil's figure. Windows keeps no reserve
// for an administrator; a disk quota, which leaves the caller fewer bytes
// than are free, is not counted (WINDOWS.md).
func (w *winSystem) disk(path string) (diskSpace, error) {
	ptr := w.diskPtr
	if path != w.diskPath {
		var err error
		if ptr, err = windows.UTF16PtrFromString(path); err != nil {
			return diskSpace{}, err
		}
	}
	if err := w.volume.of(ptr, w.root[:]); err != nil {
		return diskSpace{}, err
	}
	if err := windows.GetDiskFreeSpaceEx(ptr, nil, &w.total, &w.totalFree); err != nil {
		return diskSpace{}, fmt.Errorf("GetDiskFreeSpaceEx: %w", err)
	}
	disk := diskSpace{
		size:  w.total,
		used:  w.total - min(w.totalFree, w.total),
		avail: min(w.totalFree, w.total),
		dev:   w.volume,
	}
	return disk, nil
}

// pressure is nil: Windows has no stall times.
func (w *winSystem) pressure() (map[Resource]Stall, error) { return nil, nil }
