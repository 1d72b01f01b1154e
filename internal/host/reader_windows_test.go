package host

// The Windows reader runs under Wine on the Linux host that tests it
// (WINDOWS.md): Wine answers GetSystemTimes, GlobalMemoryStatusEx and
// GetDiskFreeSpaceEx from the host's own figures, so these tests hold the
// Windows reader's figures against the Linux host's, read through Wine's
// drive Z: (Z:\proc\meminfo, Z:\proc\stat), and df's figures of /tmp that
// the Linux side hands over in CRO_HOST_DF_TMP:
//
//	CRO_HOST_DF_TMP="$(df -B1 --output=size,used,avail /tmp | tail -n1)" \
//	GOOS=windows go test -exec "$PWD/tools/wine/exec.sh" ./internal/host/
//
// On Windows itself the comparisons are skipped and the rest runs.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// underWine tells Wine from Windows: Wine's ntdll exports wine_get_version.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// hostFile reads a file of the Linux host through drive Z:, or skips the
// test where there is none.
func hostFile(t *testing.T, path string) []byte {
	t.Helper()
	if !underWine() {
		t.Skip("not under Wine: no Linux host to compare with")
	}
	data, err := os.ReadFile(`Z:` + filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hostMeminfo returns a field of the host's /proc/meminfo, in bytes.
func hostMeminfo(t *testing.T, field string) uint64 {
	t.Helper()
	for line := range strings.Lines(string(hostFile(t, "/proc/meminfo"))) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("/proc/meminfo: %s: %v", field, err)
		}
		return kb << 10
	}
	t.Fatalf("/proc/meminfo: no %s", field)
	return 0
}

// hostStat returns the host's /proc/stat aggregate busy and total jiffies
// (busy: all but idle and iowait, as reader_linux.go counts), and its
// number of cpuN lines.
func hostStat(t *testing.T) (busy, total uint64, cpus int) {
	t.Helper()
	for line := range strings.Lines(string(hostFile(t, "/proc/stat"))) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu"):
		case fields[0] != "cpu":
			cpus++
		default:
			// user nice system idle iowait irq softirq steal (guest and
			// guest_nice are in user and nice already).
			for i, f := range fields[1:min(len(fields), 9)] {
				n, err := strconv.ParseUint(f, 10, 64)
				if err != nil {
					t.Fatalf("/proc/stat: %q: %v", line, err)
				}
				total += n
				if i != 3 && i != 4 {
					busy += n
				}
			}
		}
	}
	return busy, total, cpus
}

func newTestReader(t *testing.T, diskPath string) *Reader {
	t.Helper()
	r, err := NewReader(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Memory is GlobalMemoryStatusEx's, which Wine answers from
// /proc/meminfo: the total as MemTotal, the available near MemAvailable.
func TestMemoryIsTheHosts(t *testing.T) {
	r := newTestReader(t, `C:\`)
	s, err := r.ReadParts(time.Now(), MemoryPart)
	if err != nil {
		t.Fatal(err)
	}
	total, avail := hostMeminfo(t, "MemTotal"), hostMeminfo(t, "MemAvailable")
	t.Logf("Windows: total %d, available %d; Linux: MemTotal %d, MemAvailable %d", s.MemoryTotal, s.MemoryAvailable, total, avail)
	if d := diff(s.MemoryTotal, total); d > total/100 {
		t.Errorf("memory total %d, MemTotal %d: %d apart, over 1%%", s.MemoryTotal, total, d)
	}
	if d := diff(s.MemoryAvailable, avail); d > total/20 {
		t.Errorf("memory available %d, MemAvailable %d: %d apart, over 5%% of the total", s.MemoryAvailable, avail, d)
	}
	if s.MemoryAvailable > s.MemoryTotal {
		t.Errorf("memory available %d above the total %d", s.MemoryAvailable, s.MemoryTotal)
	}
}

// The CPU counters are all logical processors', as many as the host's
// cpuN lines; one busy CPU for a second shows as at least 0.4 of one CPU's
// share, and the busy fraction is near /proc/stat's over the same second.
func TestCPUIsTheHosts(t *testing.T) {
	r := newTestReader(t, `C:\`)
	if _, err := r.ReadParts(time.Now(), CPUPart); err != nil {
		t.Fatal(err)
	}
	busy0, total0, cpus := hostStat(t)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
	}
	s, err := r.ReadParts(time.Now(), CPUPart)
	if err != nil {
		t.Fatal(err)
	}
	busy1, total1, _ := hostStat(t)
	host := float64(busy1-busy0) / float64(total1-total0)
	t.Logf("Windows: %d CPUs, %.3f busy over %v; Linux: %d CPUs, %.3f busy", s.CPUs, s.CPU, s.CPUSpan, cpus, host)
	if s.CPUs != cpus {
		t.Errorf("%d CPUs, the host has %d", s.CPUs, cpus)
	}
	if one := 1 / float64(s.CPUs); s.CPU < 0.4*one {
		t.Errorf("CPU busy %.3f over a second of a busy loop, below 0.4 of one CPU's share (%.3f)", s.CPU, one)
	}
	if d := s.CPU - host; d < -0.1 || d > 0.1 {
		t.Errorf("CPU busy %.3f, the host's %.3f: over 0.1 apart", s.CPU, host)
	}
	if s.CPUSpan < 500*time.Millisecond || s.CPUSpan > 5*time.Second {
		t.Errorf("CPU figure stands for %v, want about a second", s.CPUSpan)
	}
}

// The disk is counted as psutil counts it on Windows and df on Linux, and
// Wine maps one to the other: the volume of Z:\tmp is df's /tmp, and
// writing 64 MiB there moves its available bytes by about that.
func TestDiskIsTheHosts(t *testing.T) {
	if !underWine() {
		t.Skip("not under Wine: no Linux host to compare with")
	}
	r := newTestReader(t, `Z:\tmp`)
	t.Logf("Z:\\tmp is on %v", r.dev)
	s, err := r.ReadParts(time.Now(), DiskPart)
	if err != nil || s.DiskErr != nil {
		t.Fatal(err, s.DiskErr)
	}
	t.Logf("Windows: size %d, used %d, available %d", s.DiskSize, s.DiskUsed, s.DiskAvailable)
	if s.DiskSize == 0 || s.DiskUsed+s.DiskAvailable > s.DiskSize {
		t.Errorf("size %d, used %d, available %d: want used + available within the size", s.DiskSize, s.DiskUsed, s.DiskAvailable)
	}

	// df's figures, from before the test binary was built: the size is
	// df's, the available bytes within what the build and others wrote
	// since. Wine answers GetDiskFreeSpaceEx's total free bytes with
	// statfs's f_bavail, as it does the caller's available bytes: blocks
	// free but not available (ext4's reserve for root) count as used under
	// Wine, where df counts them as neither.
	if df := os.Getenv("CRO_HOST_DF_TMP"); df == "" {
		t.Log("CRO_HOST_DF_TMP unset: not compared with df")
	} else {
		var size, used, avail uint64
		if _, err := fmt.Sscan(df, &size, &used, &avail); err != nil {
			t.Fatalf("CRO_HOST_DF_TMP=%q, want df -B1 --output=size,used,avail: %v", df, err)
		}
		t.Logf("df /tmp: size %d, used %d, available %d", size, used, avail)
		const slack = 256 << 20
		if s.DiskSize != size || diff(s.DiskAvailable, avail) > slack || s.DiskUsed != s.DiskSize-s.DiskAvailable {
			t.Errorf("size %d, used %d, available %d; df's: %d, %d, %d; want df's size, its available bytes and the rest used",
				s.DiskSize, s.DiskUsed, s.DiskAvailable, size, used, avail)
		}
	}

	f, err := os.CreateTemp(`Z:\tmp`, "cro-wine-disk")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const size = 64 << 20
	if _, err := f.Write(bytes.Repeat([]byte{1}, size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	after, err := r.ReadParts(time.Now(), DiskPart)
	if err != nil || after.DiskErr != nil {
		t.Fatal(err, after.DiskErr)
	}
	moved := int64(s.DiskAvailable) - int64(after.DiskAvailable)
	t.Logf("writing %d bytes moved available by %d", size, moved)
	if moved < size*3/4 || moved > size*5/4 {
		t.Errorf("writing %d bytes moved available by %d, want about that", size, moved)
	}
}

// A disk path whose directory is gone is not measured, and CPU and memory
// still are.
func TestADiskLostSinceStartIsNotMeasuredAndTheRestIs(t *testing.T) {
	dir, err := os.MkdirTemp("", "cro-disk")
	if err != nil {
		t.Fatal(err)
	}
	r := newTestReader(t, dir)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	s, err := r.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.DiskErr == nil || !strings.HasPrefix(s.DiskErr.Error(), "disk "+dir+": ") || s.DiskSize != 0 {
		t.Errorf("disk %d bytes, error %v; want an error naming %s and no figures", s.DiskSize, s.DiskErr, dir)
	}
	if s.CPUs == 0 || s.MemoryTotal == 0 || s.Pressure != nil {
		t.Errorf("CPUs %d, memory %d, pressure %v; want CPU and memory, and no pressure", s.CPUs, s.MemoryTotal, s.Pressure)
	}
}

// ReadParts allocates nothing, as on Linux: the give-way watcher reads
// four times a second.
func TestReadPartsAllocatesNothing(t *testing.T) {
	r := newTestReader(t, `C:\`)
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadParts(time.Now(), AllParts); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ReadParts allocates %v times a read, want none", allocs)
	}
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
