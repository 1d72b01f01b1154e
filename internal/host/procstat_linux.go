package host

// The host reads of the give-way watcher, four a second, make no garbage:
// /proc/stat and /proc/meminfo are read with raw system calls into a buffer
// the Reader keeps, and parsed in place by the two small parsers below, one
// per file; statfs takes a path spelled once. procfs parses every line into
// new values (the "intr" line of /proc/stat alone is thousands of numbers),
// which at four reads a second keeps an idle daemon collecting garbage.
// procstat_test.go checks the parsers against procfs on every fixture tree
// and on this machine's /proc.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// maxProcFile bounds one read: far above any real /proc/stat (a few hundred
// KB on thousands of CPUs), so that a --path.procfs pointing at something
// else fails rather than fills memory.
const maxProcFile = 16 << 20

// firstProcBuffer is the buffer's size before its first read: a 2-core
// machine's /proc/stat and /proc/meminfo are 1 to 2 KB each.
const firstProcBuffer = 4 << 10

// procFile is a file of the procfs tree, named once: path for messages,
// cpath, the same NUL-terminated, for open(2).
type procFile struct {
	path  string
	cpath []byte
}

// newProcFile names the file path, refusing one that is not a regular file
// before it is ever opened: procfs's own files are regular, of size 0.
func newProcFile(path string) (procFile, error) {
	c, err := unix.ByteSliceFromString(path)
	if err != nil {
		return procFile{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return procFile{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := regfile.Check(path, &st, maxProcFile); err != nil {
		return procFile{}, err
	}
	return procFile{path: path, cpath: c}, nil
}

// read reads the whole file into buf, from its start, growing it where the
// file is larger, and returns the bytes read: buf[:n], or the grown buffer
// (its capacity is kept for the next read, also after a failure).
// A file that is not regular (a FIFO is never waited on), or larger than
// maxProcFile, is refused. It allocates only to grow or to report a
// failure, and leaves no file open.
func (f procFile) read(buf []byte) ([]byte, error) {
	fd, err := openRead(f.cpath)
	if err != nil {
		return buf[:0], &fs.PathError{Op: "open", Path: f.path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return buf[:0], &fs.PathError{Op: "fstat", Path: f.path, Err: err}
	}
	if err := regfile.Check(f.path, &st, maxProcFile); err != nil {
		return buf[:0], err
	}
	buf = buf[:cap(buf)]
	if len(buf) == 0 {
		buf = make([]byte, firstProcBuffer)
	}
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
			buf = buf[:cap(buf)]
		}
		m, err := unix.Read(fd, buf[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return buf[:0], &fs.PathError{Op: "read", Path: f.path, Err: err}
		case m == 0:
			return buf[:n], nil
		}
		n += m
		if n > maxProcFile {
			// Not kept: the next read starts small again.
			return nil, regfile.TooLarge(f.path, maxProcFile)
		}
	}
}

// openRead opens a NUL-terminated path read-only and without blocking on a
// FIFO, as os.Open does with O_NONBLOCK, without unix.Open's copy of the
// path.
func openRead(cpath []byte) (int, error) {
	dir := unix.AT_FDCWD
	for {
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dir), uintptr(unsafe.Pointer(&cpath[0])),
			uintptr(unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_LARGEFILE), 0, 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
}

// parseStat reads /proc/stat: the aggregate "cpu" line's counters, in ticks,
// summed into busy (user, nice, system, irq, softirq and steal) and idle
// (idle and iowait), and the number of cpuN lines. guest and guest_nice are
// left out: the kernel already counts them in user and nice. Like procfs, it
// skips a line with fewer than two fields, takes a line with fewer than ten
// counters (older kernels) with the missing ones 0 and ignores counters past
// the tenth; unlike procfs, it does not parse the lines it has no use for
// (intr, softirq, ...). A cpu line with a counter that is not a number is an
// error wrapping procfs.ErrFileParse, in procfs's words. No cpu line gives
// zero ticks.
func parseStat(data []byte) (ticks cpuTicks, cpus int, err error) {
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		if !bytes.HasPrefix(line, []byte("cpu")) {
			continue
		}
		name, rest := nextField(line)
		if f, _ := nextField(rest); f == nil {
			continue
		}
		id := name[len("cpu"):]
		if len(id) > 0 {
			if _, ok := parseUint(id); !ok {
				return cpuTicks{}, 0, fmt.Errorf("%w: couldn't parse %q (cpu/cpuid): %w", procfs.ErrFileParse, line, numError(id))
			}
		}
		// user nice system idle iowait irq softirq steal guest guest_nice
		var c [10]uint64
		for i := range c {
			var f []byte
			if f, rest = nextField(rest); f == nil {
				break
			}
			v, ok := parseUint(f)
			if !ok {
				return cpuTicks{}, 0, fmt.Errorf("%w: couldn't parse %q (cpu): %w", procfs.ErrFileParse, line, numError(f))
			}
			c[i] = v
		}
		if len(id) == 0 {
			ticks = cpuTicks{busy: c[0] + c[1] + c[2] + c[5] + c[6] + c[7], idle: c[3] + c[4]}
		} else {
			cpus++
		}
	}
	return ticks, cpus, nil
}

// parseMeminfo reads MemTotal and MemAvailable from /proc/meminfo, in bytes
// (the kernel writes kB; a value without a unit is bytes, as procfs has it),
// and says which it found. Only those two lines are parsed: a malformed one,
// or one in another unit, is an error wrapping procfs.ErrFileParse.
func parseMeminfo(data []byte) (total, avail uint64, haveTotal, haveAvail bool, err error) {
	for len(data) > 0 && !(haveTotal && haveAvail) {
		var line []byte
		line, data = nextLine(data)
		name, rest := nextField(line)
		var v *uint64
		switch string(name) {
		case "MemTotal:":
			v, haveTotal = &total, true
		case "MemAvailable:":
			v, haveAvail = &avail, true
		default:
			continue
		}
		num, rest := nextField(rest)
		unit, rest := nextField(rest)
		if extra, _ := nextField(rest); num == nil || extra != nil {
			return 0, 0, false, false, fmt.Errorf("%w: Malformed line %q", procfs.ErrFileParse, line)
		}
		n, ok := parseUint(num)
		if !ok {
			return 0, 0, false, false, fmt.Errorf("%w: couldn't parse %q: %w", procfs.ErrFileParse, line, numError(num))
		}
		switch {
		case unit == nil:
		case string(unit) != "kB":
			return 0, 0, false, false, fmt.Errorf("%w: Unsupported unit in optional 3rd field %q", procfs.ErrFileParse, unit)
		case n > math.MaxUint64/1024:
			return 0, 0, false, false, fmt.Errorf("%w: couldn't parse %q: %w", procfs.ErrFileParse, line, strconv.ErrRange)
		default:
			n *= 1024
		}
		*v = n
	}
	return total, avail, haveTotal, haveAvail, nil
}

// nextLine cuts data at its first newline.
func nextLine(data []byte) (line, rest []byte) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i], data[i+1:]
	}
	return data, nil
}

// nextField returns the first field of b, split at spaces and tabs, and
// what follows it; field is nil where there is none.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if i == len(b) {
		return nil, nil
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// parseUint parses a decimal number as strconv.ParseUint(s, 10, 64) does,
// without making a string of it.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		d := uint64(c) - '0'
		if d > 9 || n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// numError says why parseUint refused b, in strconv's words.
func numError(b []byte) error {
	if _, err := strconv.ParseUint(string(b), 10, 64); err != nil {
		return err
	}
	return errors.New("not a number")
}
