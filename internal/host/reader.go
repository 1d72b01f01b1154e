package host

import (
	"errors"
	"fmt"
	"time"

	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)

// Reader reads the host into a Sample through its operating system's
// system (reader_linux.go, reader_windows.go). It keeps the previous CPU
// counters so that each read of the CPU reports the busy fraction since the
// one before, and the disk path's filesystem at the start, the only one it
// measures. ReadParts, which has no pressure, allocates nothing.
type Reader struct {
	sys      system
	diskPath string
	// tick is the length of one unit of the system's CPU counters.
	tick time.Duration
	// dev is the disk path's filesystem at the start: the only one
	// measured, for the Reader's whole life.
	dev device

	// prev holds the CPU counters of the last successful Read; zero before
	// the first, so that the first Read measures since boot.
	prev cpuTicks
	// cpu is the busy fraction the last Read reported.
	cpu float64
}

// system is what an operating system tells of the host: one per operating
// system, so that another is a new file and not edits here.
type system interface {
	// cpu returns the CPU counters of all CPUs together since boot, and
	// how many CPUs there are.
	cpu() (cpuTicks, int, error)
	// memory returns the physical memory and the part of it available to
	// new work, in bytes.
	memory() (total, avail uint64, err error)
	// disk measures the filesystem holding path.
	disk(path string) (diskSpace, error)
	// pressure returns the cumulative stall times of each resource that
	// has them: nil where the system has none.
	pressure() (map[Resource]Stall, error)
}

// open checks, once, everything a Read needs of sys, and measures the disk
// path's filesystem, the one the Reader holds to. tick is the length of one
// unit of sys's CPU counters.
func open(sys system, diskPath string, tick time.Duration) (*Reader, error) {
	r := &Reader{sys: sys, diskPath: diskPath, tick: tick}
	if _, _, err := sys.cpu(); err != nil {
		return nil, err
	}
	if _, _, err := sys.memory(); err != nil {
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

// The parts: the CPU counters, the memory and the disk path's filesystem.
const (
	CPUPart Parts = 1 << iota
	MemoryPart
	DiskPart

	AllParts = CPUPart | MemoryPart | DiskPart
)

// Read takes one Sample of the host at now, all of it: ReadParts of every
// part, and the stall times. Absent pressure figures are not an error:
// Pressure is then nil.
func (r *Reader) Read(now time.Time) (Sample, error) {
	s, err := r.ReadParts(now, AllParts)
	if err != nil {
		return Sample{}, err
	}
	if s.Pressure, err = r.sys.pressure(); err != nil {
		return Sample{}, err
	}
	return s, nil
}

// ReadParts takes a Sample of the given parts of the host at now; the
// fields of the others are zero. The first read of the CPU counters reports the
// CPU busy fraction since boot; later ones, the fraction since the previous
// successful one. Where the counters did not move (or went backwards) it
// reports the previous fraction again. A disk that cannot be measured, or
// whose path has left the filesystem it was on at the start, is no error:
// the Sample says why in DiskErr, without disk figures, so that CPU and
// memory go on. Every read of the CPU moves its baseline, so one loop owns
// a Reader.
func (r *Reader) ReadParts(now time.Time, parts Parts) (Sample, error) {
	s := Sample{Time: now}
	var ticks cpuTicks
	var err error
	if parts&CPUPart != 0 {
		if ticks, s.CPUs, err = r.sys.cpu(); err != nil {
			return Sample{}, err
		}
	}
	if parts&MemoryPart != 0 {
		if s.MemoryTotal, s.MemoryAvailable, err = r.sys.memory(); err != nil {
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
			s.CPUSpan = time.Duration(ticks.total()-r.prev.total()) * r.tick / time.Duration(s.CPUs)
		}
		r.prev, s.CPU = ticks, r.cpu
	}
	return s, nil
}

// diskSpace is the filesystem holding the disk path, in bytes: its size,
// what df counts as used, and what an unprivileged user may still write;
// and its device (st_dev).
type diskSpace struct {
	size, used, avail uint64
	dev               device
}

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
			disk.dev, r.dev)}
	}
	return disk, nil
}

// measureDisk measures the filesystem holding the disk path, whichever it
// is.
func (r *Reader) measureDisk() (diskSpace, error) {
	disk, err := r.sys.disk(r.diskPath)
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

func (e *DiskError) Error() string { return diskErrorPrefix + e.Path + ": " + e.Err.Error() }

func (e *DiskError) Unwrap() error { return e.Err }

// cpuTicks are the CPU counters of all CPUs together, in the system's
// ticks.
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
