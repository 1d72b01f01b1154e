package host

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// brokenHosts are procfs trees and disks NewReader refuses, and how.
var brokenHosts = []struct {
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

func TestNewReaderRefusesABrokenHostWithOneLineNamingTheFile(t *testing.T) {
	for _, tt := range brokenHosts {
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
