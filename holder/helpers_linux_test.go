package holder

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/linux"
	"github.com/prometheus/procfs"
)

// kernelProc is pid as procfs reads it from /proc: the tests' independent
// check of the hand parsers here and of what the holders' accounting reports.
func kernelProc(t *testing.T, pid int) procfs.Proc {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kernelCPUTime is pid's user plus system time, as procfs reads it.
func kernelCPUTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	st, err := kernelProc(t, pid).Stat()
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(st.UTime+st.STime) * time.Second / linux.UserHZ
}

// kernelStat is the machine's /proc/stat as procfs reads it.
func kernelStat(t *testing.T) procfs.Stat {
	t.Helper()
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// writeTree writes a fixture tree, such as a /proc or a /sys, under dir:
// each file, named by its path below dir, holding its text.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testParse runs parse, named fname in failures, on each case's input.
func testParse[T comparable](t *testing.T, fname string, parse func([]byte) (T, error), cases []parseCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse([]byte(tc.input))
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("%s(%q) = %v, %v; want %v, error %v", fname, tc.input, got, err, tc.want, tc.err)
			}
		})
	}
}
