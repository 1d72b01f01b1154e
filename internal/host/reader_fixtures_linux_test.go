package host

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/procfs"

	"github.com/cro-exporter/cro-exporter/internal/linux"
)

const kiB = 1024

var readAt = time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)

// fakeDisk is a statfs that reports a fixed filesystem, whatever the path.
func fakeDisk(d diskSpace) func(string) (diskSpace, error) {
	return func(string) (diskSpace, error) { return d, nil }
}

// The disk every fixture test sees: 40 GiB, 10 GiB used, 27.5 GiB
// available and 2.5 GiB reserved for root.
var testDisk = diskSpace{size: 40 << 30, used: 10 << 30, avail: 27<<30 + 512<<20}

func fixtureTree(name string) string { return filepath.Join("fixtures", name) }

// copyFixtureTree copies a fixture tree into a fresh temporary directory.
func copyFixtureTree(t testing.TB, name string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(fixtureTree(name))); err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeTreeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// firstRead is a Reader of the procfs tree dir and the test disk at
// diskPath, and its first Sample.
func firstRead(t *testing.T, dir, diskPath string) (*Reader, Sample) {
	t.Helper()
	r, err := newReader(dir, diskPath, fakeDisk(testDisk))
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Read(readAt)
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

// fixtureHost is what a fixture tree's files say, in their own units.
type fixtureHost struct {
	cpus                   int
	busy, total            int64  // ticks of the aggregate cpu line since boot
	memTotal, memAvailable uint64 // kB
	// PSI's some and full totals in µs, cpu's some, memory's, io's, or
	// none without PSI.
	cpuSome, memSome, memFull, ioSome, ioFull int64
}

// sample is the Sample a first Read of the host's tree and the test disk
// gives.
func (h fixtureHost) sample() Sample {
	s := Sample{
		Time: readAt, CPUs: h.cpus,
		CPU: float64(h.busy) / float64(h.total),
		// Since boot: total ticks at USER_HZ on every CPU.
		CPUSpan:     time.Duration(h.total) * time.Second / (time.Duration(h.cpus) * linux.UserHZ),
		MemoryTotal: h.memTotal * kiB, MemoryAvailable: h.memAvailable * kiB,
		DiskSize: testDisk.size, DiskUsed: testDisk.used, DiskAvailable: testDisk.avail,
	}
	if h.cpuSome != 0 {
		s.Pressure = map[Resource]Stall{
			CPU:    {Some: time.Duration(h.cpuSome) * time.Microsecond},
			Memory: {Some: time.Duration(h.memSome) * time.Microsecond, Full: time.Duration(h.memFull) * time.Microsecond},
			Disk:   {Some: time.Duration(h.ioSome) * time.Microsecond, Full: time.Duration(h.ioFull) * time.Microsecond},
		}
	}
	return s
}

func TestReadGivesTheFixtureHostsExactSample(t *testing.T) {
	tests := []struct {
		name, dir string
		host      fixtureHost
		wantCPU   float64 // the since-boot busy fraction, rounded by hand
		wantMem   float64 // (MemTotal - MemAvailable) / MemTotal, rounded by hand
		wantGiB   float64 // MemTotal in GiB, rounded by hand
	}{
		// busy = user+nice+system+irq+softirq+steal
		//      = 5764472+2192+1618768+0+60088+191533 = 7637053
		// total = busy + idle+iowait = 7637053 + 43172211+81109
		{"a small 8 GB VM with 2 CPUs and PSI", "small-8g", fixtureHost{
			2, 7637053, 50890373, 7966412, 5912332,
			3128841210, 58213377, 41872204, 812445021, 603318876,
		}, 0.1501, 0.2578, 7.597},
		// busy = 70774837+79950+17563287+0+625215+832834 = 89876123
		// total = 89876123 + 218395114+2415509
		{"a medium 12 GB VM with 4 CPUs and PSI", "medium-12g", fixtureHost{
			4, 89876123, 310686746, 12264896, 8110560,
			17721035448, 412987330, 298770412, 3391224780, 2710034196,
		}, 0.2893, 0.3387, 11.697},
		// busy = 244209466+408143+49570838+0+1975763+2642829 = 298807039
		// total = 298807039 + 420173726+4726485
		{"a large 16 GB VM with 4 CPUs and PSI", "large-16g", fixtureHost{
			4, 298807039, 723707250, 16139420, 9021448,
			61877204519, 2210389471, 1688203355, 9874431208, 7702119843,
		}, 0.4129, 0.4410, 15.392},
		// busy = 29411255+8197+10190497+0+289346+0 = 39899295
		// total = 39899295 + 648588751+2002842
		{"a 2 GB VM whose kernel has no PSI", "no-psi", fixtureHost{
			cpus: 2, busy: 39899295, total: 690490888, memTotal: 1990844, memAvailable: 1411208,
		}, 0.0578, 0.2912, 1.899},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := firstRead(t, fixtureTree(tt.dir), "/")
			if diff := cmp.Diff(tt.host.sample(), got); diff != "" {
				t.Errorf("Read() mismatch (-want +got):\n%s", diff)
			}
			near := func(what string, got, want, tolerance float64) {
				t.Helper()
				if math.Abs(got-want) > tolerance {
					t.Errorf("%s = %.5f, want %v", what, got, want)
				}
			}
			near("Usage(CPU)", got.Usage(CPU), tt.wantCPU, 5e-5)
			near("Usage(Memory)", got.Usage(Memory), tt.wantMem, 5e-5)
			near("MemTotal GiB", float64(got.MemoryTotal)/(1<<30), tt.wantGiB, 5e-4)
			near("Usage(Disk)", got.Usage(Disk), 10/37.5, 0) // used / (used + avail)
		})
	}
}

func TestReadOfAnUnchangedTreeRepeatsTheLastCPUFraction(t *testing.T) {
	r, first := firstRead(t, fixtureTree("small-8g"), "/")
	if first.CPU == 0 {
		t.Fatal("first Read reports CPU 0, want the since-boot fraction")
	}
	for i := range 3 {
		s, err := r.Read(readAt.Add(time.Duration(i+1) * 15 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if s.CPU != first.CPU {
			t.Errorf("Read #%d: CPU = %v, want the first value %v again", i+2, s.CPU, first.CPU)
		}
	}
}

func TestReadWithoutPSIHasNoPressureAndNoError(t *testing.T) {
	tests := []struct {
		name   string
		remove []string
		want   map[Resource]Stall
	}{
		{"no pressure directory at all", []string{"pressure"}, nil},
		{"only the memory file missing", []string{"pressure/memory"}, map[Resource]Stall{
			CPU:  {Some: 3128841210 * time.Microsecond},
			Disk: {Some: 812445021 * time.Microsecond, Full: 603318876 * time.Microsecond},
		}},
		{"an empty pressure directory", []string{"pressure/cpu", "pressure/memory", "pressure/io"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyFixtureTree(t, "small-8g")
			for _, name := range tt.remove {
				if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			r, err := newReader(dir, "/", fakeDisk(testDisk))
			if err != nil {
				t.Fatal(err)
			}
			s, err := r.Read(readAt)
			if err != nil {
				t.Fatalf("Read() error = %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, s.Pressure); diff != "" {
				t.Errorf("Pressure mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPSIAbsentTellsMissingFromBroken(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no error is not absent", nil, false},
		{"a missing file is absent", &fs.PathError{Op: "open", Path: "/proc/pressure/cpu", Err: syscall.ENOENT}, true},
		{"EOPNOTSUPP on a psi=0 kernel is absent, however wrapped",
			fmt.Errorf("%w: psi_stats: %w", procfs.ErrFileRead, &fs.PathError{Op: "read", Path: "/proc/pressure/io", Err: syscall.EOPNOTSUPP}), true},
		{"permission denied is broken", &fs.PathError{Op: "open", Path: "/proc/pressure/io", Err: syscall.EACCES}, false},
		{"a parse error is broken", errors.New("unexpected EOF"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := psiAbsent(tt.err); got != tt.want {
				t.Errorf("psiAbsent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// A disk that cannot be measured, or whose path has left the filesystem it
// was on at start, is said in the sample, without its figures (another
// filesystem's are not the disk's), and CPU and memory are still read.
func TestADiskLostSinceStartIsNotMeasuredAndTheRestIs(t *testing.T) {
	other := testDisk
	other.dev, other.size = 7, 400<<30
	for _, tt := range []struct {
		name    string
		statfs  func(string) (diskSpace, error)
		wantErr string
	}{
		{"statfs fails", func(string) (diskSpace, error) { return diskSpace{}, syscall.EIO }, "statfs /srv: input/output error"},
		{"another filesystem in its place", fakeDisk(other), "statfs /srv: on device 0:7, no longer on the filesystem it was on at start (device 0:0)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, want := firstRead(t, fixtureTree("small-8g"), "/srv")
			r.sys.(*procSystem).statfs = tt.statfs
			got, err := r.Read(readAt.Add(time.Second))
			if err != nil {
				t.Fatalf("Read() = %v, want a sample without the disk", err)
			}
			if _, ok := errors.AsType[*DiskError](got.DiskErr); !ok || got.DiskErr.Error() != tt.wantErr {
				t.Errorf("DiskErr = %v, want a DiskError %q", got.DiskErr, tt.wantErr)
			}
			if got.DiskSize != 0 || got.DiskUsed != 0 || got.DiskAvailable != 0 {
				t.Errorf("disk figures %d/%d/%d, want none", got.DiskSize, got.DiskUsed, got.DiskAvailable)
			}
			if got.MemoryTotal != want.MemoryTotal || got.MemoryAvailable != want.MemoryAvailable || got.CPUs != want.CPUs {
				t.Errorf("memory and CPUs %+v, want them read as before: %+v", got, want)
			}
			r.sys.(*procSystem).statfs = fakeDisk(testDisk)
			if back, err := r.Read(readAt.Add(2 * time.Second)); err != nil || back.DiskErr != nil || back.DiskSize != testDisk.size {
				t.Errorf("back on its filesystem: Read() = %+v, %v; want the disk measured again", back, err)
			}
		})
	}
}

func TestReadPartsReadsOnlyThoseParts(t *testing.T) {
	dir := copyFixtureTree(t, "small-8g")
	statfsCalls := 0
	r, err := newReader(dir, "/", func(string) (diskSpace, error) { statfsCalls++; return testDisk, nil })
	if err != nil {
		t.Fatal(err)
	}
	whole, err := r.Read(readAt)
	if err != nil {
		t.Fatal(err)
	}
	// Without /proc/stat and /proc/meminfo, only the disk can be read.
	for _, name := range []string{"stat", "meminfo"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	calls := statfsCalls
	s, err := r.ReadParts(readAt, DiskPart)
	if err != nil {
		t.Fatalf("ReadParts(DiskPart) read more than the disk: %v", err)
	}
	want := Sample{Time: readAt, DiskSize: whole.DiskSize, DiskUsed: whole.DiskUsed, DiskAvailable: whole.DiskAvailable}
	if diff := cmp.Diff(want, s); diff != "" || statfsCalls != calls+1 {
		t.Errorf("ReadParts(DiskPart) (-want +got), %d statfs calls:\n%s", statfsCalls-calls, diff)
	}
	if _, err := r.ReadParts(readAt, 0); err != nil || statfsCalls != calls+1 {
		t.Errorf("ReadParts of nothing: %v, %d statfs calls; want nothing read", err, statfsCalls-calls-1)
	}
	if _, err := r.ReadParts(readAt, MemoryPart); err == nil {
		t.Errorf("ReadParts(MemoryPart) without /proc/meminfo succeeded")
	}
}

func TestReadSaysHowLongItsCPUFigureStandsFor(t *testing.T) {
	dir := copyFixtureTree(t, "small-8g")
	r, first := firstRead(t, dir, "/")
	if want := 50890373 * time.Second / (2 * linux.UserHZ); first.CPUSpan != want {
		t.Errorf("first Read: CPUSpan = %v, want the uptime %v", first.CPUSpan, want)
	}
	// 3000 ticks on 2 CPUs at 100 Hz: 15 s.
	writeTreeFile(t, filepath.Join(dir, "stat"), statFile(advance(small8gCPUs, cpuRow{User: 500, Idle: 1000}, cpuRow{User: 500, Idle: 1000})))
	if s, err := r.Read(readAt.Add(15 * time.Second)); err != nil || s.CPUSpan != 15*time.Second {
		t.Errorf("second Read: CPUSpan = %v (%v), want 15s", s.CPUSpan, err)
	}
	if s, err := r.Read(readAt.Add(30 * time.Second)); err != nil || s.CPUSpan != 0 {
		t.Errorf("a Read of an unchanged stat: CPUSpan = %v (%v), want 0", s.CPUSpan, err)
	}
}
func BenchmarkRead(b *testing.B) {
	for _, bc := range []struct {
		name     string
		procPath string
		statfs   func(string) (diskSpace, error)
		read     func(r *Reader) (Sample, error)
	}{
		{"fixture", fixtureTree("large-16g"), fakeDisk(testDisk), func(r *Reader) (Sample, error) { return r.Read(readAt) }},
		{"fixture,ReadParts", fixtureTree("large-16g"), fakeDisk(testDisk), func(r *Reader) (Sample, error) { return r.ReadParts(readAt, AllParts) }},
		// What the give-way watcher does four times a second while every
		// resource is held.
		{"proc,statfs,ReadParts", "/proc", statfsDisk, func(r *Reader) (Sample, error) { return r.ReadParts(readAt, AllParts) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := newReader(bc.procPath, b.TempDir(), bc.statfs)
			if err != nil {
				b.Skip(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.read(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
