package holder

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/cro-exporter/cro-exporter/internal/winholder"
	"golang.org/x/sys/windows"
)

// virtualAlloc is Windows' ballast: memory committed with VirtualAlloc.
// Windows has no OOM killer to offer the holder to: a commit the system
// cannot back fails, at the start of a holder, and the controller's reserve
// keeps real work's memory free.
type virtualAlloc struct{ b *winholder.Ballast }

// holdMemory commits size bytes and writes every page.
func holdMemory(size int64) (ballast, error) {
	b, err := winholder.Alloc(size)
	if err != nil {
		return nil, err
	}
	return virtualAlloc{b: b}, nil
}

// resident is the holder process's working set.
func (virtualAlloc) resident() (int64, error) { return winholder.Resident(os.Getpid()) }

func (v virtualAlloc) release() { v.b.Release() }

// setProcessInformation is kernel32's (Windows 8 and later), which
// x/sys/windows has no wrapper for.
var setProcessInformation = windows.NewLazySystemDLL("kernel32.dll").NewProc("SetProcessInformation")

// becomeExpendable prepares a holder process: its pages are to be the
// first the memory manager takes back, before any real workload's (the
// lowest memory priority, MEMORY_PRIORITY_VERY_LOW). The priority is
// advice, as the memory manager takes it: a system that does not know the
// call (ERROR_INVALID_FUNCTION: Wine 8) is left without it. Windows has no
// OOM killer; the job object (process_windows.go) ends the holder with its
// daemon.
func becomeExpendable() error {
	const processMemoryPriority = 0 // PROCESS_INFORMATION_CLASS
	priority := uint32(1)           // MEMORY_PRIORITY_VERY_LOW
	r, _, err := setProcessInformation.Call(uintptr(windows.CurrentProcess()), processMemoryPriority,
		uintptr(unsafe.Pointer(&priority)), unsafe.Sizeof(priority))
	if r == 0 && !errors.Is(err, windows.ERROR_INVALID_FUNCTION) {
		return fmt.Errorf("lowering the memory priority: SetProcessInformation: %w", err)
	}
	return nil
}
