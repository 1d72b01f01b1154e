package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
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

func TestReadGivesTheFixtureHostsExactSample(t *testing.T) {
	disk := func(s Sample) Sample {
		s.Time, s.DiskSize, s.DiskUsed, s.DiskAvailable = readAt, testDisk.size, testDisk.used, testDisk.avail
		return s
	}
	tests := []struct {
		name    string
		dir     string
		want    Sample
		wantCPU float64 // the since-boot busy fraction, rounded by hand
		wantMem float64 // (MemTotal - MemAvailable) / MemTotal, rounded by hand
		wantGiB float64 // MemTotal in GiB, rounded by hand
	}{
		{
			name: "a small 8 GB VM with 2 CPUs and PSI",
			dir:  "small-8g",
			want: disk(Sample{
				CPUs: 2,
				// busy = user+nice+system+irq+softirq+steal
				//      = 5764472+2192+1618768+0+60088+191533 = 7637053
				// total = busy + idle+iowait = 7637053 + 43172211+81109
				CPU: 7637053.0 / 50890373.0,
				// Since boot: total ticks at 100 Hz on 2 CPUs.
				CPUSpan:         50890373 * time.Second / (2 * linux.UserHZ),
				MemoryTotal:     7966412 * kiB,
				MemoryAvailable: 5912332 * kiB,
				Pressure: map[Resource]Stall{
					CPU:    {Some: 3128841210 * time.Microsecond},
					Memory: {Some: 58213377 * time.Microsecond, Full: 41872204 * time.Microsecond},
					Disk:   {Some: 812445021 * time.Microsecond, Full: 603318876 * time.Microsecond},
				},
			}),
			wantCPU: 0.1501, wantMem: 0.2578, wantGiB: 7.597,
		},
		{
			name: "a medium 12 GB VM with 4 CPUs and PSI",
			dir:  "medium-12g",
			want: disk(Sample{
				CPUs: 4,
				// busy = 70774837+79950+17563287+0+625215+832834 = 89876123
				// total = 89876123 + 218395114+2415509
				CPU: 89876123.0 / 310686746.0,
				// Since boot: total ticks at 100 Hz on 4 CPUs.
				CPUSpan:         310686746 * time.Second / (4 * linux.UserHZ),
				MemoryTotal:     12264896 * kiB,
				MemoryAvailable: 8110560 * kiB,
				Pressure: map[Resource]Stall{
					CPU:    {Some: 17721035448 * time.Microsecond},
					Memory: {Some: 412987330 * time.Microsecond, Full: 298770412 * time.Microsecond},
					Disk:   {Some: 3391224780 * time.Microsecond, Full: 2710034196 * time.Microsecond},
				},
			}),
			wantCPU: 0.2893, wantMem: 0.3387, wantGiB: 11.697,
		},
		{
			name: "a large 16 GB VM with 4 CPUs and PSI",
			dir:  "large-16g",
			want: disk(Sample{
				CPUs: 4,
				// busy = 244209466+408143+49570838+0+1975763+2642829 = 298807039
				// total = 298807039 + 420173726+4726485
				CPU: 298807039.0 / 723707250.0,
				// Since boot: total ticks at 100 Hz on 4 CPUs.
				CPUSpan:         723707250 * time.Second / (4 * linux.UserHZ),
				MemoryTotal:     16139420 * kiB,
				MemoryAvailable: 9021448 * kiB,
				Pressure: map[Resource]Stall{
					CPU:    {Some: 61877204519 * time.Microsecond},
					Memory: {Some: 2210389471 * time.Microsecond, Full: 1688203355 * time.Microsecond},
					Disk:   {Some: 9874431208 * time.Microsecond, Full: 7702119843 * time.Microsecond},
				},
			}),
			wantCPU: 0.4129, wantMem: 0.4410, wantGiB: 15.392,
		},
		{
			name: "a 2 GB VM whose kernel has no PSI",
			dir:  "no-psi",
			want: disk(Sample{
				CPUs: 2,
				// busy = 29411255+8197+10190497+0+289346+0 = 39899295
				// total = 39899295 + 648588751+2002842
				CPU: 39899295.0 / 690490888.0,
				// Since boot: total ticks at 100 Hz on 2 CPUs.
				CPUSpan:         690490888 * time.Second / (2 * linux.UserHZ),
				MemoryTotal:     1990844 * kiB,
				MemoryAvailable: 1411208 * kiB,
			}),
			wantCPU: 0.0578, wantMem: 0.2912, wantGiB: 1.899,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := newReader(fixtureTree(tt.dir), "/", fakeDisk(testDisk))
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Read(readAt)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
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
	r, err := newReader(fixtureTree("small-8g"), "/", fakeDisk(testDisk))
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Read(readAt)
	if err != nil {
		t.Fatal(err)
	}
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

// cpuRow is one cpuN line of /proc/stat, in ticks. Signed, so that a test
// can move a counter backwards.
type cpuRow struct {
	User, Nice, System, Idle, Iowait, IRQ, SoftIRQ, Steal, Guest, GuestNice int64
}

func (a cpuRow) plus(b cpuRow) cpuRow {
	return cpuRow{
		a.User + b.User, a.Nice + b.Nice, a.System + b.System, a.Idle + b.Idle, a.Iowait + b.Iowait,
		a.IRQ + b.IRQ, a.SoftIRQ + b.SoftIRQ, a.Steal + b.Steal, a.Guest + b.Guest, a.GuestNice + b.GuestNice,
	}
}

func (a cpuRow) String() string {
	return fmt.Sprintf("%d %d %d %d %d %d %d %d %d %d", a.User, a.Nice, a.System, a.Idle, a.Iowait,
		a.IRQ, a.SoftIRQ, a.Steal, a.Guest, a.GuestNice)
}

// small8gCPUs are the cpuN lines of fixtures/small-8g/stat.
var small8gCPUs = []cpuRow{
	{2893417, 1204, 812356, 21567820, 41233, 0, 38211, 96420, 0, 0},
	{2871055, 988, 806412, 21604391, 39876, 0, 21877, 95113, 0, 0},
}

// statFile renders a /proc/stat with an aggregate cpu line summed from rows,
// as the kernel does.
func statFile(rows []cpuRow) string {
	var sum cpuRow
	var b strings.Builder
	for i, row := range rows {
		sum = sum.plus(row)
		fmt.Fprintf(&b, "cpu%d %s\n", i, row)
	}
	return fmt.Sprintf("cpu  %s\n%sbtime 1795531000\n", sum, b.String())
}

// advance adds deltas, one per CPU, to rows.
func advance(rows []cpuRow, deltas ...cpuRow) []cpuRow {
	out := make([]cpuRow, len(rows))
	for i := range rows {
		out[i] = rows[i].plus(deltas[i])
	}
	return out
}

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

func TestReadGivesTheBusyFractionBetweenTwoStats(t *testing.T) {
	sinceBoot := 7637053.0 / 50890373.0 // small-8g, see above
	// 15 s on 2 CPUs is 3000 ticks.
	tests := []struct {
		name  string
		steps [][]cpuRow // the cpuN lines of each later /proc/stat
		want  []float64  // the CPU of each later Read
	}{
		{
			name: "a 15 s interval with 800 busy ticks of 3000 reports 800/3000",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{User: 350, System: 80, SoftIRQ: 5, Steal: 20, Idle: 1020, Iowait: 25},
				cpuRow{User: 250, System: 70, SoftIRQ: 5, Steal: 20, Idle: 1130, Iowait: 25},
			)},
			want: []float64{800.0 / 3000.0},
		},
		{
			name: "nice and SCHED_IDLE time counts as busy",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{Nice: 1500},
				cpuRow{Nice: 600, Idle: 900},
			)},
			want: []float64{2100.0 / 3000.0},
		},
		{
			name: "steal counts as busy and iowait as idle",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{Steal: 300, Iowait: 1200},
				cpuRow{Steal: 300, Iowait: 1200},
			)},
			want: []float64{600.0 / 3000.0},
		},
		{
			name: "guest time counts once, inside user",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{User: 900, Guest: 600, Idle: 600},
				cpuRow{User: 300, GuestNice: 300, Nice: 300, Idle: 900},
			)},
			want: []float64{1500.0 / 3000.0},
		},
		{
			name: "an all idle interval reports 0",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{Idle: 1500}, cpuRow{Idle: 1500},
			)},
			want: []float64{0},
		},
		{
			name: "an all busy interval reports 1",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{User: 1500}, cpuRow{System: 1500},
			)},
			want: []float64{1},
		},
		{
			name: "iowait stepping back so busy exceeds total clamps at 1",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{User: 1500, Iowait: -40}, cpuRow{User: 1500, Iowait: -40},
			)},
			want: []float64{1},
		},
		{
			name: "busy counters going backwards keep the last value, then measure from there",
			steps: [][]cpuRow{
				advance(small8gCPUs, cpuRow{User: -1000, Idle: 1500}, cpuRow{Idle: 1500}),
				advance(small8gCPUs, cpuRow{User: -1000 + 300, Idle: 1500 + 1200}, cpuRow{Idle: 1500 + 1500}),
			},
			want: []float64{sinceBoot, 300.0 / 3000.0},
		},
		{
			name: "all counters going backwards keep the last value",
			steps: [][]cpuRow{advance(small8gCPUs,
				cpuRow{User: -10, Idle: -10}, cpuRow{Idle: -10},
			)},
			want: []float64{sinceBoot},
		},
		{
			name: "an unchanged stat after an interval keeps the interval's value",
			steps: [][]cpuRow{
				advance(small8gCPUs, cpuRow{User: 750, Idle: 750}, cpuRow{Idle: 1500}),
				advance(small8gCPUs, cpuRow{User: 750, Idle: 750}, cpuRow{Idle: 1500}),
			},
			want: []float64{750.0 / 3000.0, 750.0 / 3000.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyFixtureTree(t, "small-8g")
			r, err := newReader(dir, "/", fakeDisk(testDisk))
			if err != nil {
				t.Fatal(err)
			}
			first, err := r.Read(readAt)
			if err != nil {
				t.Fatal(err)
			}
			if first.CPU != sinceBoot {
				t.Fatalf("first Read: CPU = %v, want %v", first.CPU, sinceBoot)
			}
			var got []float64
			for i, rows := range tt.steps {
				writeTreeFile(t, filepath.Join(dir, "stat"), statFile(rows))
				s, err := r.Read(readAt.Add(time.Duration(i+1) * 15 * time.Second))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, s.CPU)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CPU of later Reads mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBusyFractionIsNeverNaNOrOutOfRange(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur cpuTicks
		last      float64
		want      float64
	}{
		{"the first read measures since boot", cpuTicks{}, cpuTicks{busy: 25, idle: 75}, 0, 0.25},
		{"nothing elapsed keeps the last value", cpuTicks{10, 30}, cpuTicks{10, 30}, 0.4, 0.4},
		{"nothing ever counted keeps 0", cpuTicks{}, cpuTicks{}, 0, 0},
		{"busy going backwards keeps the last value", cpuTicks{10, 30}, cpuTicks{9, 40}, 0.4, 0.4},
		{"total going backwards keeps the last value", cpuTicks{10, 30}, cpuTicks{11, 20}, 0.4, 0.4},
		{"idle going backwards clamps at 1", cpuTicks{10, 30}, cpuTicks{20, 29}, 0.4, 1},
		{"a plain interval is busy/total", cpuTicks{10, 30}, cpuTicks{13, 39}, 0.4, 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := busyFraction(tt.prev, tt.cur, tt.last); got != tt.want {
				t.Errorf("busyFraction(%v, %v, %v) = %v, want %v", tt.prev, tt.cur, tt.last, got, tt.want)
			}
		})
	}
}

// ticksOf sums a /proc/stat cpu line as procfs parses it into busy and idle
// ticks, as the Reader did before it parsed /proc/stat itself: the reference
// parseStat must agree with (procstat_test.go). guest and guest_nice are left
// out: the kernel already counts them in user and nice. procfs divides the
// counters by USER_HZ; multiplying back gives the kernel's integers.
func ticksOf(s procfs.CPUStat) cpuTicks {
	t := func(seconds float64) uint64 {
		if !(seconds > 0) {
			return 0
		}
		return uint64(math.Round(seconds * linux.UserHZ))
	}
	return cpuTicks{
		busy: t(s.User) + t(s.Nice) + t(s.System) + t(s.IRQ) + t(s.SoftIRQ) + t(s.Steal),
		idle: t(s.Idle) + t(s.Iowait),
	}
}

func TestTicksOfCountsGuestTimeOnce(t *testing.T) {
	// procfs gives seconds (ticks / 100).
	s := procfs.CPUStat{
		User: 12.34, Nice: 0.56, System: 7.89, Idle: 100.01, Iowait: 0.99,
		IRQ: 0.1, SoftIRQ: 0.2, Steal: 0.3, Guest: 5.55, GuestNice: 0.44,
	}
	want := cpuTicks{busy: 1234 + 56 + 789 + 10 + 20 + 30, idle: 10001 + 99}
	if got := ticksOf(s); got != want {
		t.Errorf("ticksOf() = %+v, want %+v", got, want)
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

func TestNewReaderRefusesABrokenHostWithOneLineNamingTheFile(t *testing.T) {
	tests := []struct {
		name     string
		procPath func(t *testing.T) string
		statfs   func(string) (diskSpace, error)
		wantErr  string // the whole message, or its start where it ends in "..."
		wantIs   error  // optional: what the error must wrap
	}{
		{
			name:     "meminfo without MemAvailable",
			procPath: func(*testing.T) string { return fixtureTree("broken-no-memavailable") },
			wantErr:  "reading fixtures/broken-no-memavailable/meminfo: no MemAvailable (kernel older than 3.14?)",
		},
		{
			name:     "no stat file",
			procPath: func(*testing.T) string { return fixtureTree("broken-no-stat") },
			wantErr:  "reading fixtures/broken-no-stat/stat: no such file or directory",
			wantIs:   fs.ErrNotExist,
		},
		{
			name:     "a procfs path that does not exist",
			procPath: func(*testing.T) string { return fixtureTree("no-such-tree") },
			wantErr:  "reading fixtures/no-such-tree: no such file or directory",
			wantIs:   fs.ErrNotExist,
		},
		{
			name:     "a procfs path that is a file",
			procPath: func(*testing.T) string { return fixtureTree("README.md") },
			wantErr:  `reading fixtures/README.md: mount point "fixtures/README.md" is not a directory`,
		},
		{
			name:     "a disk path that does not exist",
			procPath: func(*testing.T) string { return fixtureTree("small-8g") },
			statfs:   statfsDisk,
			wantErr:  "statfs fixtures/no-such-disk: no such file or directory",
			wantIs:   fs.ErrNotExist,
		},
		{
			name:     "a disk path on a filesystem of size 0",
			procPath: func(*testing.T) string { return fixtureTree("small-8g") },
			statfs:   fakeDisk(diskSpace{}),
			wantErr:  "statfs fixtures/no-such-disk: filesystem reports a size of 0",
		},
		{
			name:     "a stat without the aggregate cpu line",
			procPath: treeWith("stat", "cpu0 1 2 3 4 5 6 7 8 0 0\nbtime 1795531000\n"),
			wantErr:  "reading TREE/stat: no cpu line",
		},
		{
			name:     "a stat without cpuN lines",
			procPath: treeWith("stat", "cpu  1 2 3 4 5 6 7 8 0 0\nbtime 1795531000\n"),
			wantErr:  "reading TREE/stat: no cpuN lines",
		},
		{
			name:     "a stat with a garbled cpu line",
			procPath: treeWith("stat", "cpu  one two\ncpu0 1 2 3 4 5 6 7 8 0 0\n"),
			wantErr:  `reading TREE/stat: error parsing file: couldn't parse "cpu  one two" (cpu): ...`,
			wantIs:   procfs.ErrFileParse,
		},
		{
			name:     "a meminfo without MemTotal",
			procPath: treeWith("meminfo", "MemFree:  1000 kB\nMemAvailable:  2000 kB\n"),
			wantErr:  "reading TREE/meminfo: no MemTotal",
		},
		{
			name:     "a meminfo with MemTotal 0",
			procPath: treeWith("meminfo", "MemTotal:  0 kB\nMemAvailable:  0 kB\n"),
			wantErr:  "reading TREE/meminfo: MemTotal is 0",
		},
		{
			name:     "a meminfo in an unknown unit",
			procPath: treeWith("meminfo", "MemTotal:  7966412 MB\n"),
			wantErr:  `reading TREE/meminfo: error parsing file: ...`,
			wantIs:   procfs.ErrFileParse,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			procPath := tt.procPath(t)
			statfs := tt.statfs
			if statfs == nil {
				statfs = fakeDisk(testDisk)
			}
			r, err := newReader(procPath, fixtureTree("no-such-disk"), statfs)
			if err == nil {
				t.Fatalf("newReader() = %v, want an error", r)
			}
			checkReadError(t, err, strings.ReplaceAll(tt.wantErr, "TREE", procPath))
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
		})
	}
}

// checkReadError checks that err is one line reading want, or starting with want
// up to its "..." where the rest comes from procfs and may change with it.
func checkReadError(t *testing.T, err error, want string) {
	t.Helper()
	got := err.Error()
	if strings.Contains(got, "\n") {
		t.Errorf("error %q is more than one line", got)
	}
	if prefix, ok := strings.CutSuffix(want, "..."); ok {
		if !strings.HasPrefix(got, prefix) {
			t.Errorf("error = %q\nwant      %q", got, want)
		}
		return
	}
	if got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}
}

// treeWith is a copy of the small-8g tree with one file replaced.
func treeWith(name, content string) func(*testing.T) string {
	return func(t *testing.T) string {
		dir := copyFixtureTree(t, "small-8g")
		writeTreeFile(t, filepath.Join(dir, name), content)
		return dir
	}
}

func TestReadReportsAFileThatBrokeSinceStart(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(t *testing.T, dir string)
		wantErr string // as in the test above
	}{
		{
			name:    "meminfo gone",
			breakIt: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "meminfo")) },
			wantErr: "reading TREE/meminfo: no such file or directory",
		},
		{
			name:    "stat gone",
			breakIt: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "stat")) },
			wantErr: "reading TREE/stat: no such file or directory",
		},
		{
			name: "a garbled pressure file",
			breakIt: func(t *testing.T, dir string) {
				writeTreeFile(t, filepath.Join(dir, "pressure", "io"), "some avg10=x\n")
			},
			wantErr: "reading TREE/pressure/io: ...",
		},
		{
			name: "a pressure file without a some line",
			breakIt: func(t *testing.T, dir string) {
				writeTreeFile(t, filepath.Join(dir, "pressure", "memory"), "")
			},
			wantErr: `reading TREE/pressure/memory: no "some" line`,
		},
		{
			name: "a pressure path that is a directory",
			breakIt: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, "pressure", "cpu"))
				os.Mkdir(filepath.Join(dir, "pressure", "cpu"), 0o755)
			},
			wantErr: "reading TREE/pressure/cpu: is a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyFixtureTree(t, "small-8g")
			r, err := newReader(dir, "/srv", fakeDisk(testDisk))
			if err != nil {
				t.Fatal(err)
			}
			tt.breakIt(t, dir)
			_, err = r.Read(readAt)
			if err == nil {
				t.Fatal("Read() succeeded, want an error")
			}
			checkReadError(t, err, strings.ReplaceAll(tt.wantErr, "TREE", dir))
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
			r, err := newReader(fixtureTree("small-8g"), "/srv", fakeDisk(testDisk))
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.Read(readAt)
			if err != nil {
				t.Fatal(err)
			}
			r.statfs = tt.statfs
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
			r.statfs = fakeDisk(testDisk)
			if back, err := r.Read(readAt.Add(2 * time.Second)); err != nil || back.DiskErr != nil || back.DiskSize != testDisk.size {
				t.Errorf("back on its filesystem: Read() = %+v, %v; want the disk measured again", back, err)
			}
		})
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
	r, err := newReader(dir, "/", fakeDisk(testDisk))
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Read(readAt)
	if err != nil {
		t.Fatal(err)
	}
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
