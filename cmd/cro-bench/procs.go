//go:build linux

package main

// What the benches read of the machine and of its processes, from /proc.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/linux"
	"github.com/prometheus/procfs"
)

// cpuStat is the machine's CPU time, from the cpu line of /proc/stat, in
// seconds.
type cpuStat struct{ total, idle float64 }

// readCPUStat reads the machine's CPU times: total is user through steal
// (guest time is already in user), idle is idle plus iowait.
func readCPUStat() (cpuStat, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return cpuStat{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return cpuStat{}, err
	}
	c := st.CPUTotal
	idle := c.Idle + c.Iowait
	return cpuStat{total: idle + c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal, idle: idle}, nil
}

// busySince is the machine's busy fraction between an earlier read and s.
func (s cpuStat) busySince(earlier cpuStat) float64 {
	total := s.total - earlier.total
	if total == 0 {
		return 0
	}
	return 1 - float64(s.idle-earlier.idle)/float64(total)
}

// machineBusyOver measures the machine's busy fraction over d.
func machineBusyOver(d time.Duration) (float64, error) {
	a, err := readCPUStat()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b, err := readCPUStat()
	return b.busySince(a), err
}

// cpuNow reads the machine's CPU counters and process pid's CPU time, in
// seconds, one after the other.
func cpuNow(pid int) (machine cpuStat, process float64, err error) {
	if machine, err = readCPUStat(); err != nil {
		return machine, 0, err
	}
	process, err = processCPU(pid)
	return machine, process, err
}

// processCPU is a process's user plus system time, in seconds, from
// /proc/<pid>/stat.
func processCPU(pid int) (float64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.CPUTime(), nil
}

// holderCPU is the CPU time, in seconds, of each holder process of the given
// kind that the daemon pid started. A child is listed under the thread that
// forked it, and the daemon starts holders from a thread of their own, so
// every thread's children are read.
func holderCPU(daemon int, kind string) map[int]float64 {
	spent := map[int]float64{}
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", daemon))
	var children []byte
	for _, l := range lists {
		c, _ := os.ReadFile(l)
		children = append(append(children, c...), ' ')
	}
	for _, f := range strings.Fields(string(children)) {
		pid, _ := strconv.Atoi(f)
		p, err := procfs.NewProc(pid)
		if err != nil {
			continue
		}
		if argv, _ := p.CmdLine(); len(argv) < 3 || argv[1] != "holder" || argv[2] != kind {
			continue
		}
		if t, err := processCPU(pid); err == nil {
			spent[pid] = t
		}
	}
	return spent
}

// meminfo is MemTotal and MemAvailable, in bytes.
func meminfo() (total, avail int64, err error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, 0, err
	}
	m, err := fs.Meminfo()
	if err != nil {
		return 0, 0, err
	}
	if m.MemTotalBytes == nil || m.MemAvailableBytes == nil {
		return 0, 0, fmt.Errorf("/proc/meminfo lacks MemTotal or MemAvailable")
	}
	return int64(*m.MemTotalBytes), int64(*m.MemAvailableBytes), nil
}

// holdersBurnt is the CPU time, in seconds, that the holders of the daemon
// pid have burnt: the children it has reaped (cutime and cstime of its
// /proc/<pid>/stat; a CPU holder asked for duty 0 is stopped) and the CPU
// holders running now. A holder reaped between the two reads is missed,
// at most one period's burn; the run's edges are between bursts.
func holdersBurnt(pid int) float64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return math.NaN()
	}
	st, err := p.Stat()
	if err != nil {
		return math.NaN()
	}
	burnt := float64(st.CUTime+st.CSTime) / linux.UserHZ
	for _, t := range holderCPU(pid, "cpu") {
		burnt += t
	}
	return burnt
}

// memory is a process's resident memory in MiB, and how much of it is
// anonymous (heap, stacks, runtime) and how much is files (the binary's
// text and data, libraries).
type memory struct{ rss, anon, file float64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (anonymous %.1f, files %.1f)", m.rss, m.anon, m.file)
}

// memoryOf reads /proc/<pid>/smaps_rollup; zero when the process is gone.
func memoryOf(pid int) memory {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return memory{}
	}
	r, err := p.ProcSMapsRollup()
	if err != nil {
		return memory{}
	}
	return memory{rss: float64(r.Rss) / (1 << 20), anon: float64(r.Anonymous) / (1 << 20), file: float64(r.Rss-r.Anonymous) / (1 << 20)}
}

// rss is a process's resident memory in MiB, from /proc/<pid>/status; 0
// when it is gone.
func rss(pid int) float64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	status, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return float64(status.VmRSS) / (1 << 20)
}

// cpuTime is the CPU time of every thread of process pid, to the
// nanosecond: the first field of each /proc/<pid>/task/<tid>/schedstat.
// A thread that has ended takes its time with it; the Go runtime keeps
// its threads.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, errors.Join(fmt.Errorf("no threads of pid %d", pid), err)
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}
