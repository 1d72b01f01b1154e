package holder

import (
	"os"

	"github.com/cro-exporter/cro-exporter/internal/winholder"
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
