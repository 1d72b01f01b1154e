package holder

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// statLine is a /proc/<pid>/stat line with comm as its command name, the
// given utime, stime and start time, and ppid 1.
func statLine(pid int, comm string, utime, stime, start uint64) string {
	f := []string{strconv.Itoa(pid), "(" + comm + ")", "S", "1"}
	for n := 5; n <= 52; n++ {
		switch n {
		case 14:
			f = append(f, strconv.FormatUint(utime, 10))
		case 15:
			f = append(f, strconv.FormatUint(stime, 10))
		case 22:
			f = append(f, strconv.FormatUint(start, 10))
		default:
			f = append(f, strconv.Itoa(n*1000))
		}
	}
	return strings.Join(f, " ") + "\n"
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want procStat
	}{
		{"reads a plain line", statLine(42, "cro-exporter", 7, 3, 123456),
			procStat{Comm: "cro-exporter", State: 'S', PPid: 1, UTime: 7, STime: 3, StartTime: 123456}},
		{"keeps spaces and parentheses in the command name", statLine(42, "a) S 1 (b c) )", 1, 2, 99),
			procStat{Comm: "a) S 1 (b c) )", State: 'S', PPid: 1, UTime: 1, STime: 2, StartTime: 99}},
		{"reads a real line of a kernel that has more fields", "1234 (sleep) S 1220 1234 1220 34816 1234 4194304 113 0 0 0 5 6 0 0 20 0 1 0 4511234 8540160 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			procStat{Comm: "sleep", State: 'S', PPid: 1220, UTime: 5, STime: 6, StartTime: 4511234}},
		{"reads a zombie", strings.Replace(statLine(42, "z", 0, 0, 5), ") S ", ") Z ", 1),
			procStat{Comm: "z", State: 'Z', PPid: 1, StartTime: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseProcStat (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcStatRejectsBrokenLines(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"an empty file", ""},
		{"a line without a command name", "42 cro S 1 2 3"},
		{"a line cut short", "42 (cro) S 1 2 3 4 5 6 7 8 9 10"},
		{"a start time that is not a number", strings.Replace(statLine(42, "x", 1, 2, 3), " 3 23000", " x 23000", 1)},
		{"a state of two letters", strings.Replace(statLine(42, "x", 1, 2, 3), ") S ", ") SS ", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, err := parseProcStat(tc.in); err == nil {
				t.Errorf("parseProcStat(%q) = %+v, want an error", tc.in, st)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tcro-exporter\nState:\tS (sleeping)\nVmPeak:\t  100 kB\nVmRSS:\t   33796 kB\nRssAnon:\t  30000 kB\n"
	if got, err := parseVmRSS(status); err != nil || got != 33796*1024 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 33796*1024)
	}
	if got, err := parseVmRSS("Name:\tzombie\nState:\tZ (zombie)\n"); err != nil || got != 0 {
		t.Errorf("parseVmRSS of a zombie = %d, %v; want 0", got, err)
	}
	for _, bad := range []string{"VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n", "VmRSS:\n"} {
		if got, err := parseVmRSS(bad); err == nil {
			t.Errorf("parseVmRSS(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"splits at NUL bytes", "/usr/bin/cro-exporter\x00holder\x00memory\x00--size=1024\x00", []string{"/usr/bin/cro-exporter", "holder", "memory", "--size=1024"}},
		{"keeps an empty argument", "a\x00\x00b\x00", []string{"a", "", "b"}},
		{"keeps the last argument of a rewritten command line", "name with spaces", []string{"name with spaces"}},
		{"gives nothing for a kernel thread", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, parseCmdline([]byte(tc.in))); diff != "" {
				t.Errorf("parseCmdline (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHolderKindOf(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want Kind
	}{
		{[]string{"/usr/local/bin/cro-exporter", "holder", "memory", "--size=1"}, kindMemory},
		{[]string{"cro-exporter", "holder", "cpu", "--duty=0.3"}, kindCPU},
		{[]string{"/tmp/x/cro-exporter (deleted)", "holder", "cpu"}, kindCPU},
		{[]string{"/usr/local/bin/cro-exporter", "--state.dir=/x"}, ""},
		{[]string{"/usr/local/bin/cro-exporter", "holder", "disk"}, ""},
		{[]string{"/bin/sleep", "holder", "memory"}, ""},
		{[]string{"/usr/bin/cro-exporter-wrapper", "holder", "memory"}, ""},
		{[]string{"sleep", "60"}, ""},
		{nil, ""},
	} {
		if got := holderKindOf(tc.argv); got != tc.want {
			t.Errorf("holderKindOf(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}

func TestReadProcFilesOfAFixtureTree(t *testing.T) {
	proc := t.TempDir()
	writeTree(t, proc, map[string]string{
		"4242/stat":    statLine(4242, "cro exporter", 150, 50, 777),
		"4242/status":  "Name:\tcro-exporter\nVmRSS:\t2048 kB\n",
		"4242/cmdline": "/usr/bin/cro-exporter\x00holder\x00cpu\x00--duty=0.5\x00",
		"4242/environ": "HOME=/root\x00" + ownerEnv + "=/var/lib/cro\x00",
	})
	st, err := readProcStat(proc, 4242)
	if err != nil || st.StartTime != 777 || st.UTime+st.STime != 200 {
		t.Errorf("readProcStat = %+v, %v", st, err)
	}
	if rss, err := readRSS(proc, 4242); err != nil || rss != 2<<20 {
		t.Errorf("readRSS = %d, %v; want %d", rss, err, 2<<20)
	}
	if argv, err := readCmdline(proc, 4242); err != nil || holderKindOf(argv) != kindCPU {
		t.Errorf("readCmdline = %q, %v", argv, err)
	}
	if v, ok, err := readEnviron(proc, 4242, ownerEnv); err != nil || !ok || v != "/var/lib/cro" {
		t.Errorf("readEnviron = %q, %v, %v", v, ok, err)
	}
	if pids, err := listPids(proc); err != nil || !cmp.Equal(pids, []int{4242}) {
		t.Errorf("listPids = %v, %v", pids, err)
	}
	if _, err := readProcStat(proc, 4343); !errors.Is(err, errNoProcess) {
		t.Errorf("readProcStat of a missing pid: %v, want errNoProcess", err)
	}
	if _, err := readRSS(proc, 4343); !errors.Is(err, errNoProcess) {
		t.Errorf("readRSS of a missing pid: %v, want errNoProcess", err)
	}
}

func TestReadProcStatOfThisProcess(t *testing.T) {
	st, err := readProcStat("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPid != os.Getppid() || st.StartTime == 0 || st.exited() {
		t.Errorf("readProcStat(self) = %+v, want ppid %d and a start time", st, os.Getppid())
	}
	kernel := kernelProc(t, os.Getpid())
	want, err := kernel.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != want.Comm || st.PPid != want.PPID || st.StartTime != want.Starttime ||
		st.UTime > uint64(want.UTime) || st.STime > uint64(want.STime) {
		t.Errorf("readProcStat(self) = %+v; procfs read %+v just after", st, want)
	}
}

// TestProcReadersAgreeWithProcfs reads this process's status, cmdline and
// environ with the hand parsers and with procfs.
func TestProcReadersAgreeWithProcfs(t *testing.T) {
	kernel := kernelProc(t, os.Getpid())
	rss, err := readRSS("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	status, err := kernel.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	if diff := rss - int64(status.VmRSS); rss <= 0 || diff > 4<<20 || diff < -4<<20 {
		t.Errorf("readRSS(self) = %d, procfs VmRSS %d just after", rss, status.VmRSS)
	}
	argv, err := readCmdline("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if want, err := kernel.CmdLine(); err != nil || !cmp.Equal(argv, want) {
		t.Errorf("readCmdline(self) = %q, procfs %q (%v)", argv, want, err)
	}
	env, err := kernel.Environ()
	if err != nil || len(env) == 0 {
		t.Fatalf("procfs environ: %q, %v", env, err)
	}
	key, value, _ := strings.Cut(env[len(env)-1], "=")
	if got, ok, err := readEnviron("/proc", os.Getpid(), key); err != nil || !ok || got != value {
		t.Errorf("readEnviron(self, %q) = %q, %v, %v; procfs %q", key, got, ok, err, value)
	}
}
