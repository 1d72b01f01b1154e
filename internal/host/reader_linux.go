package host

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/linux"
	"github.com/cro-exporter/cro-exporter/internal/regfile"
	"github.com/prometheus/procfs"
)

// diskErrorPrefix begins a DiskError: the call that measures the disk.
const diskErrorPrefix = "statfs "

// statfsDisk measures the filesystem holding path with fstatfs(2), and
// its device with fstat(2), both on one O_PATH descriptor of path, so that
// the two describe the same filesystem.
func statfsDisk(path string) (diskSpace, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return diskSpace{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return diskSpace{}, err
	}
	var sfs unix.Statfs_t
	for {
		err := unix.Fstatfs(fd, &sfs)
		if err == nil {
			disk := diskSpaceOf(&sfs)
			disk.dev = device(st.Dev)
			return disk, nil
		}
		if err != unix.EINTR {
			return diskSpace{}, err
		}
	}
}

// diskSpaceOf counts a statfs result as df, psutil and gopsutil do: used is
// f_blocks - f_bfree and avail is f_bavail, both in units of f_frsize (of
// f_bsize where f_frsize is 0). The blocks reserved for root are free but
// not available, so they count as neither.
func diskSpaceOf(st *unix.Statfs_t) diskSpace {
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return diskSpace{
		size:  st.Blocks * unit,
		used:  (st.Blocks - min(st.Bfree, st.Blocks)) * unit,
		avail: st.Bavail * unit,
	}
}

// checkPressureFile refuses a pressure file that is there but is not a
// regular file: procfs, which reads them, would wait on a FIFO for good. An
// absent or unreadable one is readPressure's to judge.
func checkPressureFile(path string) error {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nil
	}
	return regfile.Check(path, &st, maxProcFile)
}

// NewReader opens the procfs tree at procPath (normally /proc) and checks,
// once, everything Read needs: /proc/stat with its cpu lines, /proc/meminfo
// with a non-zero MemTotal and MemAvailable, each a regular file (so is any
// /proc/pressure file there is), and statfs of diskPath. Its error names the
// file at fault, on one line.
func NewReader(procPath, diskPath string) (*Reader, error) {
	return newReader(procPath, diskPath, statfsDisk)
}

func newReader(procPath, diskPath string, statfs func(string) (diskSpace, error)) (*Reader, error) {
	sys, err := openProc(procPath, statfs)
	if err != nil {
		return nil, err
	}
	return open(sys, diskPath, time.Second/linux.UserHZ)
}

// procSystem is Linux's system: /proc/stat, /proc/meminfo and
// /proc/pressure/* under a procfs root, and statfs.
type procSystem struct {
	fs       procfs.FS // for /proc/pressure
	procPath string
	stat     procFile
	meminfo  procFile
	// buf holds the last file read; reused, it grows to the largest.
	buf []byte
	// statfs measures the filesystem holding a path: statfsDisk, which
	// tests replace.
	statfs func(path string) (diskSpace, error)
}

// device is a filesystem's device number, st_dev.
type device uint64

func (d device) String() string { return linux.DeviceName(uint64(d)) }

// openProc names the files of the procfs tree at procPath, each checked to
// be a regular file (so is any /proc/pressure file there is).
func openProc(procPath string, statfs func(string) (diskSpace, error)) (*procSystem, error) {
	pfs, err := procfs.NewFS(procPath)
	if err != nil {
		return nil, readError(procPath, err)
	}
	p := &procSystem{fs: pfs, procPath: procPath, statfs: statfs}
	// Both named once, so that a read copies no path.
	if p.stat, err = newProcFile(p.path("stat")); err != nil {
		return nil, readError(p.path("stat"), err)
	}
	if p.meminfo, err = newProcFile(p.path("meminfo")); err != nil {
		return nil, readError(p.path("meminfo"), err)
	}
	for _, f := range psiFiles {
		if err := checkPressureFile(p.path("pressure", f.name)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *procSystem) disk(path string) (diskSpace, error) { return p.statfs(path) }

// readStat reads /proc/stat: the aggregate cpu counters and the number of
// cpuN lines.
func (p *procSystem) cpu() (cpuTicks, int, error) {
	path := p.stat.path
	data, err := p.read(p.stat)
	if err != nil {
		return cpuTicks{}, 0, readError(path, err)
	}
	ticks, cpus, err := parseStat(data)
	if err != nil {
		return cpuTicks{}, 0, readError(path, err)
	}
	if ticks.total() == 0 {
		return cpuTicks{}, 0, fmt.Errorf("reading %s: no cpu line", path)
	}
	if cpus == 0 {
		return cpuTicks{}, 0, fmt.Errorf("reading %s: no cpuN lines", path)
	}
	return ticks, cpus, nil
}

// readMeminfo reads MemTotal and MemAvailable from /proc/meminfo, in bytes.
func (p *procSystem) memory() (total, avail uint64, err error) {
	path := p.meminfo.path
	data, err := p.read(p.meminfo)
	if err != nil {
		return 0, 0, readError(path, err)
	}
	total, avail, haveTotal, haveAvail, err := parseMeminfo(data)
	switch {
	case err != nil:
		return 0, 0, readError(path, err)
	case !haveTotal:
		return 0, 0, fmt.Errorf("reading %s: no MemTotal", path)
	case total == 0:
		return 0, 0, fmt.Errorf("reading %s: MemTotal is 0", path)
	case !haveAvail:
		return 0, 0, fmt.Errorf("reading %s: no MemAvailable (kernel older than 3.14?)", path)
	}
	return total, avail, nil
}

// read reads f whole into the Reader's buffer; the bytes are good until the
// next read.
func (p *procSystem) read(f procFile) ([]byte, error) {
	data, err := f.read(p.buf)
	p.buf = data[:0]
	return data, err
}

// psiFiles maps each resource to its file under /proc/pressure.
var psiFiles = [...]struct {
	resource Resource
	name     string
}{
	{CPU, "cpu"},
	{Memory, "memory"},
	{Disk, "io"},
}

// readPressure reads the cumulative stall times of /proc/pressure/*. A file
// that is absent, or that the kernel refuses (booted with psi=0), has no
// entry; the map is nil when there is no PSI at all.
func (p *procSystem) pressure() (map[Resource]Stall, error) {
	var pressure map[Resource]Stall
	for _, f := range psiFiles {
		st, err := p.fs.PSIStatsForResource(f.name)
		if psiAbsent(err) {
			continue
		}
		path := p.path("pressure", f.name)
		if err != nil {
			return nil, readError(path, err)
		}
		stall, err := stallOf(st)
		if err != nil {
			return nil, readError(path, err)
		}
		if pressure == nil {
			pressure = make(map[Resource]Stall, len(psiFiles))
		}
		pressure[f.resource] = stall
	}
	return pressure, nil
}

func (p *procSystem) path(elem ...string) string {
	return filepath.Join(append([]string{p.procPath}, elem...)...)
}

// psiAbsent tells a kernel without PSI (no file, or EOPNOTSUPP when booted
// with psi=0) from a real failure.
func psiAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EOPNOTSUPP)
}

// stallOf turns a pressure file into its cumulative stall times. Kernels
// before 5.13 have no "full" line for cpu: Full is then 0.
func stallOf(st procfs.PSIStats) (Stall, error) {
	if st.Some == nil {
		return Stall{}, errors.New(`no "some" line`)
	}
	s := Stall{Some: micros(st.Some.Total)}
	if st.Full != nil {
		s.Full = micros(st.Full.Total)
	}
	return s, nil
}

func micros(us uint64) time.Duration {
	return time.Duration(min(us, math.MaxInt64/uint64(time.Microsecond))) * time.Microsecond
}

// readError names the file a read failed on. It drops an *fs.PathError's
// own "open <path>" so the line says it once, but keeps its cause wrapped;
// a file refused (regfile.Error) is named already.
func readError(path string, err error) error {
	if _, ok := errors.AsType[*regfile.Error](err); ok {
		return err
	}
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("reading %s: %w", pe.Path, pe.Err)
	}
	return fmt.Errorf("reading %s: %w", path, err)
}
