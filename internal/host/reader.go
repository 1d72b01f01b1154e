package host

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
// It keeps the previous /proc/stat counters so that each read of the CPU
// reports the busy fraction since the one before. ReadParts, which has no
// pressure, allocates nothing (procstat.go).
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
	// dev is the device of the disk path's filesystem at NewReader: the
	// only one measured, for the Reader's whole life.
	dev uint64

	// prev holds the /proc/stat counters of the last successful Read; zero
	// before the first, so that the first Read measures since boot.
	prev cpuTicks
	// cpu is the busy fraction the last Read reported.
	cpu float64
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
	disk, err := r.measureDisk()
	if err != nil {
		return nil, err
	}
	r.dev = disk.dev
	return r, nil
}

// Parts is a set of the host's resources for ReadParts to read.
type Parts uint8

// The parts: /proc/stat, /proc/meminfo and statfs of the disk path.
const (
	CPUPart Parts = 1 << iota
	MemoryPart
	DiskPart

	AllParts = CPUPart | MemoryPart | DiskPart
)

// Read takes one Sample of the host at now, all of it: ReadParts of every
// part, and the stall times of /proc/pressure. Absent PSI is not an error:
// Pressure is then nil.
func (r *Reader) Read(now time.Time) (Sample, error) {
	s, err := r.ReadParts(now, AllParts)
	if err != nil {
		return Sample{}, err
	}
	if s.Pressure, err = r.readPressure(); err != nil {
		return Sample{}, err
	}
	return s, nil
}

// ReadParts takes a Sample of the given parts of the host at now; the
// fields of the others are zero. The first read of /proc/stat reports the
// CPU busy fraction since boot; later ones, the fraction since the previous
// successful one. Where /proc/stat did not move (or went backwards) it
// reports the previous fraction again. A disk that cannot be measured, or
// whose path has left the filesystem it was on at NewReader, is no error:
// the Sample says why in DiskErr, without disk figures, so that CPU and
// memory go on. Every read of the CPU moves its baseline, so one loop owns
// a Reader.
func (r *Reader) ReadParts(now time.Time, parts Parts) (Sample, error) {
	s := Sample{Time: now}
	var ticks cpuTicks
	var err error
	if parts&CPUPart != 0 {
		if ticks, s.CPUs, err = r.readStat(); err != nil {
			return Sample{}, err
		}
	}
	if parts&MemoryPart != 0 {
		if s.MemoryTotal, s.MemoryAvailable, err = r.readMeminfo(); err != nil {
			return Sample{}, err
		}
	}
	if parts&DiskPart != 0 {
		disk, err := r.readDisk()
		s.DiskSize, s.DiskUsed, s.DiskAvailable, s.DiskErr = disk.size, disk.used, disk.avail, err
	}
	if parts&CPUPart != 0 {
		// Only a complete sample moves the baseline, so that the next one
		// still covers the time since the last sample the caller saw.
		r.cpu = busyFraction(r.prev, ticks, r.cpu)
		if ticks.total() > r.prev.total() {
			s.CPUSpan = time.Duration(ticks.total()-r.prev.total()) * time.Second / time.Duration(linux.UserHZ*s.CPUs)
		}
		r.prev, s.CPU = ticks, r.cpu
	}
	return s, nil
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
// what df counts as used, and what an unprivileged user may still write;
// and its device (st_dev).
type diskSpace struct{ size, used, avail, dev uint64 }

// readDisk measures the filesystem holding the disk path, which must be
// the one it held at NewReader: another one (the first unmounted, lazily
// too, the path deleted, another filesystem mounted or linked in its place)
// is not the disk cro-exporter holds, and is not measured.
func (r *Reader) readDisk() (diskSpace, error) {
	disk, err := r.measureDisk()
	if err != nil {
		return diskSpace{}, err
	}
	if disk.dev != r.dev {
		return diskSpace{}, &DiskError{Path: r.diskPath, Err: fmt.Errorf("on device %s, no longer on the filesystem it was on at start (device %s)",
			linux.DeviceName(disk.dev), linux.DeviceName(r.dev))}
	}
	return disk, nil
}

// measureDisk measures the filesystem holding the disk path, whichever it
// is.
func (r *Reader) measureDisk() (diskSpace, error) {
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
