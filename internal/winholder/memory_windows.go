package winholder

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Ballast is memory held outside the Go heap: committed with VirtualAlloc
// and written page by page, so that every page is in physical memory, as
// Linux's populated anonymous mmap is.
type Ballast struct {
	addr uintptr
	mem  []byte
}

// Alloc commits size bytes (MEM_COMMIT|MEM_RESERVE, PAGE_READWRITE) and
// writes a non-zero byte to every page. Committing alone charges the commit
// limit (RAM + page file) but takes no physical page: a page is only found
// when first touched, which is what moves the available memory figure.
func Alloc(size int64) (*Ballast, error) {
	if size <= 0 || uint64(size) > uint64(^uintptr(0)>>1) {
		return nil, fmt.Errorf("ballast of %d bytes: out of range", size)
	}
	addr, err := windows.VirtualAlloc(0, uintptr(size), windows.MEM_COMMIT|windows.MEM_RESERVE, windows.PAGE_READWRITE)
	if err != nil {
		return nil, fmt.Errorf("VirtualAlloc of %d bytes: %w", size, err)
	}
	// The memory is not Go's: unsafe.Slice over it is what mmap's []byte
	// is on Linux, and the GC never scans or moves it. The address goes
	// through a pointer to itself because vet rightly flags a uintptr turned
	// into a pointer, which is wrong for Go's memory and right for this.
	mem := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), int(size))
	page := os.Getpagesize()
	for i := 0; i < len(mem); i += page {
		mem[i] = 1
	}
	return &Ballast{addr: addr, mem: mem}, nil
}

// Release gives the memory back (VirtualFree, MEM_RELEASE); the ballast is
// not to be used after.
func (b *Ballast) Release() error {
	b.mem = nil
	return windows.VirtualFree(b.addr, 0, windows.MEM_RELEASE)
}
