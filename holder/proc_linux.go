package holder

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// procfsRoot is where holders are looked up.
const procfsRoot = "/proc"

// selfExe is the binary we run, even when an upgrade has replaced its file.
func selfExe() (string, error) { return "/proc/self/exe", nil }

// procStat is what cro-exporter needs from /proc/<pid>/stat.
type procStat struct {
	Comm      string // field 2, without its parentheses
	State     byte   // field 3: R, S, D, Z, ...
	PPid      int    // field 4
	UTime     uint64 // field 14, in 1/USER_HZ seconds
	STime     uint64 // field 15, in 1/USER_HZ seconds
	StartTime uint64 // field 22, in 1/USER_HZ seconds since boot
}

// parseProcStat parses the text of /proc/<pid>/stat. The command name may
// hold any byte, spaces and parentheses included, so the fields after it are
// found after the last ')' of the line.
func parseProcStat(s string) (procStat, error) {
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("no command name in parentheses in %q", abbreviate(s))
	}
	st := procStat{Comm: s[open+1 : end]}
	// rest[0] is field 3; field n is rest[n-3].
	rest := strings.Fields(s[end+1:])
	if len(rest) < 22-2 {
		return procStat{}, fmt.Errorf("%d fields after the command name, want at least %d", len(rest), 22-2)
	}
	if len(rest[0]) != 1 {
		return procStat{}, fmt.Errorf("state %q is not one letter", rest[0])
	}
	st.State = rest[0][0]
	var err error
	if st.PPid, err = strconv.Atoi(rest[4-3]); err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", err)
	}
	for _, f := range []struct {
		n   int
		dst *uint64
	}{{14, &st.UTime}, {15, &st.STime}, {22, &st.StartTime}} {
		if *f.dst, err = strconv.ParseUint(rest[f.n-3], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("field %d: %w", f.n, err)
		}
	}
	return st, nil
}

// exited tells whether a process in this state has ended: a zombie waiting
// to be reaped, or one being reaped. It holds no memory and runs nothing.
func (st procStat) exited() bool { return st.State == 'Z' || st.State == 'X' }

// parseVmRSS returns the VmRSS line of /proc/<pid>/status in bytes. A
// process without that line (a zombie, a kernel thread) has nothing resident.
func parseVmRSS(s string) (int64, error) {
	for line := range strings.Lines(s) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q is not \"<number> kB\"", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("VmRSS line %q is not \"<number> kB\"", strings.TrimSpace(line))
		}
		return kb << 10, nil
	}
	return 0, nil
}

// parseCmdline splits /proc/<pid>/cmdline, arguments ended by NUL bytes, into
// its arguments. A process may rewrite its arguments and leave no final NUL;
// the text after the last NUL is then an argument too.
func parseCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// readProcStat reads /proc/<pid>/stat under the procfs root proc. A missing
// process is errNoProcess; a zombie is returned as such (State 'Z'), so that
// the start time of a child not yet reaped can still be read.
func readProcStat(proc string, pid int) (procStat, error) {
	path := filepath.Join(proc, strconv.Itoa(pid), "stat")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return procStat{}, fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	if err != nil {
		return procStat{}, fmt.Errorf("reading %s: %w", path, err)
	}
	st, err := parseProcStat(string(data))
	if err != nil {
		return procStat{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	return st, nil
}

// readCmdline reads the arguments of pid from /proc/<pid>/cmdline under proc.
func readCmdline(proc string, pid int) ([]string, error) {
	path := filepath.Join(proc, strconv.Itoa(pid), "cmdline")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return parseCmdline(data), nil
}

// readRSS reads the resident memory of pid, in bytes, from the VmRSS line of
// /proc/<pid>/status under proc.
func readRSS(proc string, pid int) (int64, error) {
	path := filepath.Join(proc, strconv.Itoa(pid), "status")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("pid %d: %w", pid, errNoProcess)
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	rss, err := parseVmRSS(string(data))
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return rss, nil
}

// readEnviron returns the value of the environment variable key in the
// initial environment of pid, from /proc/<pid>/environ under proc, and
// whether it was there. Only the owner of a process (or root) may read it.
func readEnviron(proc string, pid int, key string) (string, bool, error) {
	path := filepath.Join(proc, strconv.Itoa(pid), "environ")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	for _, kv := range parseCmdline(data) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true, nil
		}
	}
	return "", false, nil
}

// listPids returns the pids under the procfs root proc.
func listPids(proc string) ([]int, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", proc, err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// holderKindOf returns the kind of holder a command line starts, or "" when
// it is not a holder: cro-exporter's holders run as
// "<path ending in cro-exporter> holder memory|cpu ...".
func holderKindOf(argv []string) Kind {
	if len(argv) < 3 || !isCroExporter(argv[0]) || argv[1] != "holder" {
		return ""
	}
	switch k := Kind(argv[2]); k {
	case kindMemory, kindCPU:
		return k
	}
	return ""
}

// isDaemon tells whether pid, whose command line is argv, is a cro-exporter
// daemon: not a holder, and its argv[0] or its executable (<proc>/<pid>/exe)
// names a cro-exporter binary.
func isDaemon(proc string, pid int, argv []string) bool {
	if len(argv) == 0 || holderKindOf(argv) != "" {
		return false
	}
	if isCroExporter(argv[0]) {
		return true
	}
	exe, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "exe"))
	return err == nil && isCroExporter(exe)
}
