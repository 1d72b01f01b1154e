package holder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is Linux's ballast: anonymous memory mapped with mmap(2).
type mapping []byte

// holdMemory maps size bytes of anonymous memory and makes every page of
// it resident with non-zero content.
func holdMemory(size int64) (ballast, error) {
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mapping %d bytes: %w", size, err)
	}
	if err := fillMemory(mem); err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return mapping(mem), nil
}

func (mapping) resident() (int64, error) { return residentBytes() }

func (m mapping) release() { unix.Munmap(m) }

// fillMemory makes every page of mem resident and non-zero, as fast as the
// kernel allows: MADV_POPULATE_WRITE, then one word written per page.
//
// Huge pages are left to the kernel's settings, except where it backs
// anonymous memory with PMD-size (2 MiB) pages unasked (thpDir's setting
// "always"): there they are turned off, because a 2 MiB fill is bimodal, now
// faster than small pages, more often several times slower and up to 5x,
// when the kernel or the hypervisor must first find or back whole 2 MiB
// blocks. MADV_NOHUGEPAGE also turns off the smaller multi-size THP folios
// (16 kB, 64 kB, ...), which fill faster than 4 kB pages, so it is called
// only where 2 MiB pages would be used otherwise.
//
// MADV_POPULATE_WRITE rather than MAP_POPULATE because it reports failure
// (MAP_POPULATE gives up silently); kernels before 5.14 refuse it with
// EINVAL, and there the written pass faults the pages in by itself.
func fillMemory(mem []byte) error {
	if pmdHugePagesAlways(thpDir) {
		unix.Madvise(mem, unix.MADV_NOHUGEPAGE) // advice only: THP may be compiled out
	}
	for {
		err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE)
		if errors.Is(err, unix.EINTR) {
			continue // populated pages are skipped on the next try
		}
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("populating %d bytes: %w", len(mem), err)
		}
		break
	}
	stampPages(mem, os.Getpagesize())
	return nil
}

// thpDir holds the kernel's transparent huge page settings.
const thpDir = "/sys/kernel/mm/transparent_hugepage"

// pmdHugePagesAlways tells whether the kernel whose THP settings are in dir
// backs anonymous memory with PMD-size huge pages (2 MiB on x86-64) without
// being asked: hugepages-<size>kB/enabled is "always", or it is "inherit"
// or absent (kernels before 6.8) and enabled is "always". Settings that
// cannot be read count as not "always": the kernel's defaults are kept.
func pmdHugePagesAlways(dir string) bool {
	kb := "2048"
	if b, err := os.ReadFile(filepath.Join(dir, "hpage_pmd_size")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			kb = strconv.FormatInt(n>>10, 10)
		}
	}
	switch thpChoice(filepath.Join(dir, "hugepages-"+kb+"kB", "enabled")) {
	case "always":
		return true
	case "inherit", "":
		return thpChoice(filepath.Join(dir, "enabled")) == "always"
	}
	return false
}

// thpChoice is the setting chosen in a THP settings file, the word in
// brackets ("always [madvise] never" is "madvise"), or "" when the file
// cannot be read or chooses nothing.
func thpChoice(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	_, rest, _ := strings.Cut(string(b), "[")
	choice, _, ok := strings.Cut(rest, "]")
	if !ok {
		return ""
	}
	return choice
}

// stampPages writes one word into every page of mem, distinct from page to
// page and never zero, so that neither the zero page nor a merging of equal
// pages (KSM here, or the hypervisor's) can take the memory back unseen.
func stampPages(mem []byte, pageSize int) {
	const pattern = 0xc0ffee << 40
	for off := 0; off+8 <= len(mem); off += pageSize {
		binary.NativeEndian.PutUint64(mem[off:], pattern|uint64(off))
	}
}

// residentBytes is the resident set of this process, from /proc/self/statm:
// what the holder adds to the host's used memory.
func residentBytes() (int64, error) {
	const path = "/proc/self/statm"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	pages, err := parseStatmResident(b)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// parseStatmResident returns the resident field of a statm file, in pages.
func parseStatmResident(b []byte) (int64, error) {
	fields := bytes.Fields(b)
	if len(fields) < 2 {
		return 0, fmt.Errorf("want at least 2 fields, got %q", b)
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil || pages < 0 {
		return 0, fmt.Errorf("resident field %q is not a page count", fields[1])
	}
	return pages, nil
}

// becomeExpendable prepares a holder process: the OOM killer is to take it
// before any real workload (/proc/self/oom_score_adj raised to 1000, which
// any process may do for itself), and the kernel kills it when its parent
// dies, a backup of the stdin pipe closing. It fails when the parent has died
// already.
func becomeExpendable() error {
	parent := os.Getppid()
	const path = "/proc/self/oom_score_adj"
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("raising %s: %w", path, err)
	}
	_, err = f.WriteString("1000")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raising %s: %w", path, err)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the parent-death signal: %w", err)
	}
	// A parent that died before the prctl sent no signal; its orphan has
	// been handed to a reaper (init or a subreaper) by now.
	if now := os.Getppid(); now != parent {
		return fmt.Errorf("parent process %d has exited", parent)
	}
	return nil
}
