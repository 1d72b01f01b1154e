package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// procfsReference is what procfs, the independent reference, reads of a
// tree: the aggregate cpu ticks and the number of cpuN lines of its stat, and
// MemTotal and MemAvailable of its meminfo (nil where absent).
type procfsReference struct {
	ticks           cpuTicks
	cpus            int
	total, avail    *uint64
	statErr, memErr error
}

func readWithProcfs(t *testing.T, dir string) procfsReference {
	t.Helper()
	pfs, err := procfs.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ref procfsReference
	if st, err := pfs.Stat(); err != nil {
		ref.statErr = err
	} else {
		ref.ticks, ref.cpus = ticksOf(st.CPUTotal), len(st.CPU)
	}
	if m, err := pfs.Meminfo(); err != nil {
		ref.memErr = err
	} else {
		ref.total, ref.avail = m.MemTotalBytes, m.MemAvailableBytes
	}
	return ref
}

// checkAgreesWithProcfs parses dir's stat and meminfo by hand, as the Reader
// does, and checks the figures against procfs's.
func checkAgreesWithProcfs(t *testing.T, dir string) {
	t.Helper()
	ref := readWithProcfs(t, dir)

	data, err := os.ReadFile(filepath.Join(dir, "stat"))
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.Is(ref.statErr, fs.ErrNotExist):
		// Both see no stat (broken-no-stat).
	case err != nil || ref.statErr != nil:
		t.Errorf("stat: read error %v, procfs error %v", err, ref.statErr)
	default:
		ticks, cpus, err := parseStat(data)
		if err != nil {
			t.Errorf("parseStat: %v", err)
		}
		if ticks != ref.ticks || cpus != ref.cpus {
			t.Errorf("parseStat = %+v and %d cpuN lines, procfs %+v and %d", ticks, cpus, ref.ticks, ref.cpus)
		}
		if ticks.total() == 0 || cpus == 0 {
			t.Errorf("parseStat = %+v and %d cpuN lines: nothing read", ticks, cpus)
		}
	}

	data, err = os.ReadFile(filepath.Join(dir, "meminfo"))
	if err != nil || ref.memErr != nil {
		t.Fatalf("meminfo: read error %v, procfs error %v", err, ref.memErr)
	}
	total, avail, haveTotal, haveAvail, err := parseMeminfo(data)
	if err != nil {
		t.Errorf("parseMeminfo: %v", err)
	}
	show := func(v uint64, have bool) string {
		if !have {
			return "none"
		}
		return fmt.Sprint(v)
	}
	showRef := func(p *uint64) string {
		if p == nil {
			return "none"
		}
		return fmt.Sprint(*p)
	}
	if got, want := show(total, haveTotal), showRef(ref.total); got != want {
		t.Errorf("MemTotal = %s bytes, procfs %s", got, want)
	}
	if got, want := show(avail, haveAvail), showRef(ref.avail); got != want {
		t.Errorf("MemAvailable = %s bytes, procfs %s", got, want)
	}
}

func TestParsersAgreeWithProcfsOnEveryFixtureTree(t *testing.T) {
	entries, err := os.ReadDir("fixtures")
	if err != nil {
		t.Fatal(err)
	}
	trees := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		trees++
		t.Run(e.Name(), func(t *testing.T) { checkAgreesWithProcfs(t, fixtureTree(e.Name())) })
	}
	if trees < 6 {
		t.Errorf("%d fixture trees, want the 6 of fixtures/README.md", trees)
	}
}

// This machine's /proc moves between two reads: both parsers read one copy.
func TestParsersAgreeWithProcfsOnThisMachine(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"stat", "meminfo"} {
		data, err := os.ReadFile(filepath.Join("/proc", name))
		if err != nil {
			t.Skip("no /proc:", err)
		}
		writeTreeFile(t, filepath.Join(dir, name), string(data))
	}
	checkAgreesWithProcfs(t, dir)
}

func TestReadPartsAllocatesNextToNothing(t *testing.T) {
	for _, procPath := range []string{fixtureTree("large-16g"), "/proc"} {
		t.Run(procPath, func(t *testing.T) {
			r, err := NewReader(procPath, t.TempDir())
			if err != nil {
				t.Skip(err)
			}
			s, err := r.ReadParts(readAt, AllParts)
			if err != nil {
				t.Fatal(err)
			}
			if s.CPUs == 0 || s.MemoryTotal == 0 || s.DiskSize == 0 || s.Pressure != nil {
				t.Fatalf("ReadParts() = %+v, want a whole sample without pressure", s)
			}
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := r.ReadParts(readAt, AllParts); err != nil {
					t.Fatal(err)
				}
			})
			// statfs copies the path: nothing else.
			if allocs > 1 {
				t.Errorf("ReadParts allocates %v times, want at most the path statfs copies", allocs)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		name, stat string
		ticks      cpuTicks
		cpus       int
	}{
		{"ten counters: guest and guest_nice left out", "cpu  1 2 3 4 5 6 7 8 100 200\ncpu0 1 2 3 4 5 6 7 8 100 200\n",
			cpuTicks{busy: 1 + 2 + 3 + 6 + 7 + 8, idle: 4 + 5}, 1},
		{"an older kernel's four counters, the rest 0", "cpu 10 20 30 40\ncpu0 5 10 15 20\ncpu1 5 10 15 20\n",
			cpuTicks{busy: 60, idle: 40}, 2},
		{"counters past the tenth ignored", "cpu  1 2 3 4 5 6 7 8 9 10 1000 2000\ncpu0 1 2 3 4 5 6 7 8 9 10 1000\n",
			cpuTicks{busy: 27, idle: 9}, 1},
		{"the cpu lines anywhere, tabs, no final newline", "intr 1 2 3\ncpu0\t1 1 1 1\nbtime 5\ncpu \t7 0 0 3",
			cpuTicks{busy: 7, idle: 3}, 1},
		{"a line with a name alone is skipped", "cpu\ncpu  1 0 0 1\ncpu0\ncpu1 1 0 0 1\n",
			cpuTicks{busy: 1, idle: 1}, 1},
		{"no cpu line gives zero ticks", "cpu0 1 2 3 4\n", cpuTicks{}, 1},
		{"an empty file", "", cpuTicks{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ticks, cpus, err := parseStat([]byte(tt.stat))
			if err != nil || ticks != tt.ticks || cpus != tt.cpus {
				t.Errorf("parseStat() = %+v, %d, %v; want %+v, %d", ticks, cpus, err, tt.ticks, tt.cpus)
			}
		})
	}
	// The error's start is all the cases say of it.
	for _, tt := range []struct{ name, stat, wantErr string }{
		{"a counter that is not a number", "cpu  1 2 x 4\ncpu0 1 2 3 4\n",
			`error parsing file: couldn't parse "cpu  1 2 x 4" (cpu): strconv.ParseUint: parsing "x": invalid syntax`},
		{"a negative counter", "cpu  1 2 3 4\ncpu0 1 -2 3 4\n",
			`error parsing file: couldn't parse "cpu0 1 -2 3 4" (cpu): strconv.ParseUint: parsing "-2": invalid syntax`},
		{"a counter past 64 bits", "cpu  18446744073709551616 0 0 1\ncpu0 1 0 0 1\n",
			`error parsing file: couldn't parse "cpu  18446744073709551616 0 0 1" (cpu): strconv.ParseUint: parsing "18446744073709551616": value out of range`},
		{"a cpu line that is not cpuN", "cpu  1 0 0 1\ncpux 1 0 0 1\n",
			`error parsing file: couldn't parse "cpux 1 0 0 1" (cpu/cpuid): `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := parseStat([]byte(tt.stat)); err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || !errors.Is(err, procfs.ErrFileParse) {
				t.Fatalf("parseStat() error = %v, want %q... wrapping procfs.ErrFileParse", err, tt.wantErr)
			}
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name                 string
		meminfo              string
		wantTotal, wantAvail uint64
		haveTotal, haveAvail bool
		wantErr              string
	}{
		{
			name:      "kB become bytes",
			meminfo:   "MemTotal:       16139420 kB\nMemFree:          912044 kB\nMemAvailable:    9021448 kB\n",
			wantTotal: 16139420 * kiB, wantAvail: 9021448 * kiB, haveTotal: true, haveAvail: true,
		},
		{
			name:      "a value without a unit is bytes",
			meminfo:   "MemAvailable: 2048\nMemTotal: 4096\n",
			wantTotal: 4096, wantAvail: 2048, haveTotal: true, haveAvail: true,
		},
		{
			name:      "no MemAvailable",
			meminfo:   "MemTotal: 8 kB\nMemFree: 4 kB",
			wantTotal: 8 * kiB, haveTotal: true,
		},
		{
			name:      "other lines are not parsed",
			meminfo:   "MemFree: lots\nHugepagesize: 2 MB\nMemTotal: 8 kB\nMemAvailable: 4 kB\n",
			wantTotal: 8 * kiB, wantAvail: 4 * kiB, haveTotal: true, haveAvail: true,
		},
		{name: "an empty file", meminfo: ""},
		{
			name:    "another unit",
			meminfo: "MemTotal: 8 MB\n",
			wantErr: `error parsing file: Unsupported unit in optional 3rd field "MB"`,
		},
		{
			name:    "a value that is not a number",
			meminfo: "MemTotal: 8 kB\nMemAvailable: x kB\n",
			wantErr: `error parsing file: couldn't parse "MemAvailable: x kB": strconv.ParseUint: parsing "x": invalid syntax`,
		},
		{
			name:    "no value",
			meminfo: "MemTotal:\n",
			wantErr: `error parsing file: Malformed line "MemTotal:"`,
		},
		{
			name:    "a field too many",
			meminfo: "MemTotal: 8 kB x\n",
			wantErr: `error parsing file: Malformed line "MemTotal: 8 kB x"`,
		},
		{
			name:    "kB past 64 bits of bytes",
			meminfo: "MemTotal: 18014398509481984 kB\n",
			wantErr: `error parsing file: couldn't parse "MemTotal: 18014398509481984 kB": value out of range`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, avail, haveTotal, haveAvail, err := parseMeminfo([]byte(tt.meminfo))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, procfs.ErrFileParse) {
					t.Fatalf("parseMeminfo() error = %v, want %q wrapping procfs.ErrFileParse", err, tt.wantErr)
				}
				return
			}
			if err != nil || total != tt.wantTotal || avail != tt.wantAvail || haveTotal != tt.haveTotal || haveAvail != tt.haveAvail {
				t.Errorf("parseMeminfo() = %d, %d, %v, %v, %v; want %d, %d, %v, %v",
					total, avail, haveTotal, haveAvail, err, tt.wantTotal, tt.wantAvail, tt.haveTotal, tt.haveAvail)
			}
		})
	}
}

func TestReadOfAStatLargerThanItsBufferReadsItWhole(t *testing.T) {
	// 300 CPUs and an intr line of 20,000 numbers: some 100 KB, past the
	// first buffer many times over, with cpuN lines before and after.
	rows := make([]cpuRow, 300)
	for i := range rows {
		rows[i] = cpuRow{User: int64(i + 1), Idle: 1000}
	}
	var b strings.Builder
	b.WriteString("intr 1")
	for range 20000 {
		b.WriteString(" 12345")
	}
	b.WriteString("\n")
	dir := copyFixtureTree(t, "small-8g")
	stat := statFile(rows)
	head, tail, _ := strings.Cut(stat, "cpu150 ")
	writeTreeFile(t, filepath.Join(dir, "stat"), head+b.String()+"cpu150 "+tail)
	if fi, _ := os.Stat(filepath.Join(dir, "stat")); fi.Size() < 100_000 {
		t.Fatalf("stat is %d bytes, want over 100 KB", fi.Size())
	}
	r, err := newReader(dir, "/", fakeDisk(testDisk))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second into the grown buffer
		s, err := r.Read(readAt)
		if err != nil {
			t.Fatal(err)
		}
		if s.CPUs != 300 || s.MemoryTotal != 7966412*kiB {
			t.Errorf("Read #%d: %d CPUs, MemTotal %d; want 300 and %d", i+1, s.CPUs, s.MemoryTotal, uint64(7966412*kiB))
		}
	}
	checkAgreesWithProcfs(t, dir)
}

// A procfs file that is not a regular file, or is larger than
// maxProcFile, is refused promptly, whether it is so when the Reader is made
// or becomes so later: a FIFO is never waited on, /dev/zero never read.
func TestProcFileRefusesWhatIsNotASmallRegularFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(path string) error
		want string
	}{
		{"a FIFO", func(path string) error { return unix.Mkfifo(path, 0o600) }, "is a FIFO, not a regular file"},
		{"a symlink to /dev/zero", func(path string) error { return os.Symlink("/dev/zero", path) }, "is a device, not a regular file"},
		{"a file over 16 MiB", func(path string) error {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				return err
			}
			return os.Truncate(path, maxProcFile+1) // sparse: no disk taken
		}, "is larger than 16777216 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "stat")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			if _, err := newProcFile(path); err == nil || err.Error() != path+" "+tc.want {
				t.Errorf("newProcFile = %v, want %q", err, path+" "+tc.want)
			}

			// A file that became so after newProcFile checked it.
			later := filepath.Join(dir, "later")
			if err := os.WriteFile(later, []byte("cpu 1 2 3 4\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			pf, err := newProcFile(later)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path, later); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := pf.read(nil)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || err.Error() != later+" "+tc.want {
					t.Errorf("read = %v, want %q", err, later+" "+tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("read still blocks after 5 s")
			}
		})
	}
}
