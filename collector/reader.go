package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/cro-exporter/cro-exporter/internal/linux"
	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// Reader reads the host into a Sample: /proc/stat, /proc/meminfo and
// /proc/pressure/* under its procfs root, and statfs of the disk path.
// It keeps the previous /proc/stat counters so that each Read reports the
// CPU busy fraction since the one before. Without pressure, a Read
// allocates nothing (procstat.go).
type Reader struct {
	fs       procfs.FS // for /proc/pressure
	procPath string
	stat     procFile
	meminfo  procFile
	// buf holds the last file read; reused, it grows to the largest.
	buf      []byte
	diskPath string
	// statfs measures the filesystem holding path: statfsDisk, which tests
	// replace.
	statfs func(path string) (diskSpace, error)

	// prev holds the /proc/stat counters of the last successful Read; zero
	// before the first, so that the first Read measures since boot.
	prev cpuTicks
	// cpu is the busy fraction the last Read reported.
	cpu float64

	// NoPressure has Read leave /proc/pressure alone (Sample.Pressure is
	// nil): the give-way watcher, which reads four times a second, needs
	// no stall times, and reading them was a third of its garbage.
	NoPressure bool
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
	pfs, err := procfs.NewFS(procPath)
	if err != nil {
		return nil, readError(procPath, err)
	}
	r := &Reader{fs: pfs, procPath: procPath, diskPath: diskPath, statfs: statfs}
	// Both named once, so that a Read copies no path.
	if r.stat, err = newProcFile(r.path("stat")); err != nil {
		return nil, readError(r.path("stat"), err)
	}
	if r.meminfo, err = newProcFile(r.path("meminfo")); err != nil {
		return nil, readError(r.path("meminfo"), err)
	}
	for _, f := range psiFiles {
		if err := checkPressureFile(r.path("pressure", f.name)); err != nil {
			return nil, err
		}
	}
	if _, _, err := r.readStat(); err != nil {
		return nil, err
	}
	if _, _, err := r.readMeminfo(); err != nil {
		return nil, err
	}
	if _, err := r.readDisk(); err != nil {
		return nil, err
	}
	return r, nil
}

// Read takes one Sample of the host at now. The first Read reports the CPU
// busy fraction since boot; later ones, the fraction since the previous
// successful Read. Where /proc/stat did not move (or went backwards) it
// reports the previous fraction again. Absent PSI is not an error: Pressure
// is then nil. Every call moves the CPU baseline, so one loop owns a Reader.
func (r *Reader) Read(now time.Time) (Sample, error) {
	ticks, cpus, err := r.readStat()
	if err != nil {
		return Sample{}, err
	}
	memTotal, memAvail, err := r.readMeminfo()
	if err != nil {
		return Sample{}, err
	}
	disk, err := r.readDisk()
	if err != nil {
		return Sample{}, err
	}
	var pressure map[Resource]Stall
	if !r.NoPressure {
		if pressure, err = r.readPressure(); err != nil {
			return Sample{}, err
		}
	}

	// Only a complete sample moves the baseline, so that the next one
	// still covers the time since the last sample the caller saw.
	r.cpu = busyFraction(r.prev, ticks, r.cpu)
	var span time.Duration
	if ticks.total() > r.prev.total() {
		span = time.Duration(ticks.total()-r.prev.total()) * time.Second / time.Duration(linux.UserHZ*cpus)
	}
	r.prev = ticks

	return Sample{
		Time:            now,
		CPUs:            cpus,
		CPU:             r.cpu,
		CPUSpan:         span,
		MemoryTotal:     memTotal,
		MemoryAvailable: memAvail,
		DiskSize:        disk.size,
		DiskUsed:        disk.used,
		DiskAvailable:   disk.avail,
		Pressure:        pressure,
	}, nil
}

// readStat reads /proc/stat: the aggregate cpu counters and the number of
// cpuN lines.
func (r *Reader) readStat() (cpuTicks, int, error) {
	path := r.stat.path
	data, err := r.read(r.stat)
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
func (r *Reader) readMeminfo() (total, avail uint64, err error) {
	path := r.meminfo.path
	data, err := r.read(r.meminfo)
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
func (r *Reader) read(f procFile) ([]byte, error) {
	data, err := f.read(r.buf)
	r.buf = data[:0]
	return data, err
}

// diskSpace is the filesystem holding the disk path, in bytes: its size,
// what df counts as used, and what an unprivileged user may still write.
type diskSpace struct{ size, used, avail uint64 }

// readDisk measures the filesystem holding the disk path.
func (r *Reader) readDisk() (diskSpace, error) {
	disk, err := r.statfs(r.diskPath)
	if err != nil {
		return diskSpace{}, &DiskError{Path: r.diskPath, Err: err}
	}
	if disk.size == 0 {
		// A pseudo filesystem (/proc, an unlimited tmpfs) has no size to
		// fill or measure.
		return diskSpace{}, &DiskError{Path: r.diskPath, Err: errors.New("filesystem reports a size of 0")}
	}
	return disk, nil
}

// DiskError is a failure to measure the filesystem of the disk path, so that
// a caller can tell it from a failure to read procfs.
type DiskError struct {
	Path string
	Err  error
}

func (e *DiskError) Error() string { return "statfs " + e.Path + ": " + e.Err.Error() }

func (e *DiskError) Unwrap() error { return e.Err }

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
func (r *Reader) readPressure() (map[Resource]Stall, error) {
	var pressure map[Resource]Stall
	for _, f := range psiFiles {
		st, err := r.fs.PSIStatsForResource(f.name)
		if psiAbsent(err) {
			continue
		}
		path := r.path("pressure", f.name)
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

func (r *Reader) path(elem ...string) string {
	return filepath.Join(append([]string{r.procPath}, elem...)...)
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

// cpuTicks are the aggregate /proc/stat counters, in ticks: busy is user,
// nice, system, irq, softirq and steal; idle is idle and iowait.
type cpuTicks struct {
	busy, idle uint64
}

func (t cpuTicks) total() uint64 { return t.busy + t.idle }

// busyFraction is the share of busy ticks between prev and cur, 0..1. When
// nothing elapsed (0/0) or a counter went backwards it returns last, so the
// result is never NaN or negative.
func busyFraction(prev, cur cpuTicks, last float64) float64 {
	if cur.busy < prev.busy || cur.total() <= prev.total() {
		return last
	}
	// idle+iowait may step back a little (iowait is not monotonic on
	// NO_HZ kernels), which can put busy above total: clamp.
	return min(1, float64(cur.busy-prev.busy)/float64(cur.total()-prev.total()))
}
