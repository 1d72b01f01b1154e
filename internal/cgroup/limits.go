package cgroup

// Reading the limit files of the hierarchies Find located.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Read reads the limits now. A limit file that is missing (a controller
// not enabled there, the root cgroup) is no limit; one that cannot be read
// or parsed is an error naming it.
func (g *Group) Read() (Limits, error) {
	var l Limits
	var errs []error
	var err error
	l.Memory, err = g.readMemory()
	errs = append(errs, err)
	l.CPUs, err = g.readCPU()
	errs = append(errs, err)
	l.Pids, err = g.Pids()
	errs = append(errs, err)
	return l, errors.Join(errs...)
}

// readMemory is the memory limit of the cgroup with the least room.
func (g *Group) readMemory() (Memory, error) {
	limitFile, usageFile, inactive := "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
	if g.memory.v2 {
		limitFile, usageFile, inactive = "memory.max", "memory.current", "inactive_file"
	}
	var best Memory
	for _, dir := range g.memory.dirs {
		s, ok, err := g.read(dir, limitFile)
		if err != nil || !ok {
			if err != nil {
				return Memory{}, err
			}
			continue
		}
		limit, err := parseLimit(s)
		if err != nil {
			return Memory{}, fmt.Errorf("%s: %w", path.Join(dir, limitFile), err)
		}
		if limit == 0 {
			continue
		}
		m := Memory{Limit: limit}
		if m.Usage, err = g.readInt(dir, usageFile); err != nil {
			return Memory{}, err
		}
		if stat, ok, err := g.read(dir, "memory.stat"); err != nil {
			return Memory{}, err
		} else if ok {
			m.Usage = max(0, m.Usage-statValue(stat, inactive))
		}
		if best.Limit == 0 || m.Room() < best.Room() {
			best = m
		}
	}
	return best, nil
}

// readCPU is the CPUs the tightest quota allows, 0 without one.
func (g *Group) readCPU() (float64, error) {
	var cpus float64
	for _, dir := range g.cpu.dirs {
		var c float64
		if g.cpu.v2 {
			s, ok, err := g.read(dir, "cpu.max")
			if err != nil {
				return 0, err
			}
			if !ok {
				continue
			}
			if c, err = parseCPUMax(s); err != nil {
				return 0, fmt.Errorf("%s: %w", path.Join(dir, "cpu.max"), err)
			}
		} else {
			quota, ok, err := g.read(dir, "cpu.cfs_quota_us")
			if err != nil {
				return 0, err
			}
			if !ok {
				continue
			}
			period, _, err := g.read(dir, "cpu.cfs_period_us")
			if err != nil {
				return 0, err
			}
			if c, err = parseCFS(quota, period); err != nil {
				return 0, fmt.Errorf("%s: %w", dir, err)
			}
		}
		if c > 0 && (cpus == 0 || c < cpus) {
			cpus = c
		}
	}
	return cpus, nil
}

// Pids is the pids limit of the cgroup with the fewest pids left: the
// file names are the same in v1 and v2.
func (g *Group) Pids() (Pids, error) {
	var best Pids
	for _, dir := range g.pids.dirs {
		s, ok, err := g.read(dir, "pids.max")
		if err != nil {
			return Pids{}, err
		}
		if !ok {
			continue
		}
		limit, err := parseLimit(s)
		if err != nil {
			return Pids{}, fmt.Errorf("%s: %w", path.Join(dir, "pids.max"), err)
		}
		if limit == 0 {
			continue
		}
		p := Pids{Max: limit}
		if p.Current, err = g.readInt(dir, "pids.current"); err != nil {
			return Pids{}, err
		}
		if best.Max == 0 || p.Free() < best.Free() {
			best = p
		}
	}
	return best, nil
}

// read reads dir/name; ok is false when it does not exist.
func (g *Group) read(dir, name string) (s string, ok bool, err error) {
	b, err := fs.ReadFile(g.fsys, path.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading /%s: %w", path.Join(dir, name), err)
	}
	return string(b), true, nil
}

// readInt reads a file of one integer, which must exist.
func (g *Group) readInt(dir, name string) (int64, error) {
	s, ok, err := g.read(dir, name)
	if err == nil && !ok {
		err = fmt.Errorf("/%s: missing", path.Join(dir, name))
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/%s: %w", path.Join(dir, name), err)
	}
	return n, nil
}

// parseLimit parses a limit file (memory.limit_in_bytes, memory.max,
// pids.max): "max", or v1's huge "no limit", is 0.
func parseLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("limit %q: not a number or max", s)
	}
	if n >= unlimited {
		return 0, nil
	}
	return n, nil
}

// parseCPUMax parses v2's cpu.max, "quota period" or "max period", into
// CPUs; 0 is no quota.
func parseCPUMax(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("%q: not quota and period", strings.TrimSpace(s))
	}
	if f[0] == "max" {
		return 0, nil
	}
	return parseCFS(f[0], f[1])
}

// parseCFS parses v1's cpu.cfs_quota_us and cpu.cfs_period_us into CPUs;
// a quota of -1 is none (0).
func parseCFS(quota, period string) (float64, error) {
	q, err := strconv.ParseInt(strings.TrimSpace(quota), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("quota %q: not a number", strings.TrimSpace(quota))
	}
	if q < 0 {
		return 0, nil
	}
	p, err := strconv.ParseInt(strings.TrimSpace(period), 10, 64)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("period %q: not a positive number", strings.TrimSpace(period))
	}
	return float64(q) / float64(p), nil
}

// statValue is key's value in a memory.stat ("key value" lines), 0 when
// missing.
func statValue(stat, key string) int64 {
	sc := bufio.NewScanner(strings.NewReader(stat))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
