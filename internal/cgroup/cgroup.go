// Package cgroup reads the limits of the cgroups a process runs in, v1 and
// v2 alike: the memory limit, the CPU quota and the pids limit. Holders are
// the daemon's children in the same cgroups, so whatever these limits leave
// is all they may take: ballast past the memory limit is OOM-killed, a
// burner past the quota is throttled, and a holder past the pids limit
// leaves the daemon's own Go runtime unable to make a thread.
//
// Every limit of a hierarchy applies, from the process's own cgroup up to
// the root of the mount, so the tightest one along that path is the one
// that counts.
package cgroup

import (
	"bufio"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Limits are the tightest limits of the cgroups a process is in.
type Limits struct {
	Memory Memory
	// CPUs is what the tightest CPU quota allows, in CPUs (quota/period);
	// 0 means no quota.
	CPUs float64
	Pids Pids
}

// Memory is the memory limit of the cgroup with the least room under its
// limit, and that cgroup's usage.
type Memory struct {
	// Limit is in bytes; 0 means no limit.
	Limit int64
	// Usage is the bytes charged to the cgroup less its inactive file
	// cache, which the kernel reclaims before it kills anything.
	Usage int64
}

// Room is the bytes left under the limit, MaxInt64 without one.
func (m Memory) Room() int64 {
	if m.Limit == 0 {
		return math.MaxInt64
	}
	return max(0, m.Limit-m.Usage)
}

// Pids is the pids limit of the cgroup with the fewest pids left, and its
// count. Threads count: every thread of every process in it is one.
type Pids struct {
	// Max is 0 without a limit.
	Max, Current int64
}

// Free is the tasks that may still start, MaxInt64 without a limit.
func (p Pids) Free() int64 {
	if p.Max == 0 {
		return math.MaxInt64
	}
	return max(0, p.Max-p.Current)
}

// Group is where a process's cgroups are: for each controller, its own
// cgroup's directory and those above it up to the root of the mount.
type Group struct {
	fsys              fs.FS
	memory, cpu, pids hierarchy
}

// hierarchy is the directories of one controller's cgroups, the process's
// own first, relative to the root of fsys; none when the controller is not
// mounted.
type hierarchy struct {
	dirs []string
	v2   bool
}

// unlimited is where a limit means none: v1 writes "no limit" as the
// largest page-aligned int64.
const unlimited = 1 << 62

// Find finds the cgroups of the process whose /proc/self fsys holds, from
// proc/self/cgroup and proc/self/mountinfo: fsys is the root of the
// filesystem (os.DirFS("/") in Self).
func Find(fsys fs.FS) (*Group, error) {
	cg, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("finding our cgroups: %w", err)
	}
	mi, err := fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("finding our cgroups: %w", err)
	}
	members, err := parseCgroupFile(string(cg))
	if err != nil {
		return nil, fmt.Errorf("/proc/self/cgroup: %w", err)
	}
	mounts := parseMountinfo(string(mi))
	return &Group{
		fsys:   fsys,
		memory: locate(members, mounts, "memory"),
		cpu:    locate(members, mounts, "cpu"),
		pids:   locate(members, mounts, "pids"),
	}, nil
}

// parseCgroupFile maps each v1 controller to the process's cgroup in its
// hierarchy, and "" to its v2 cgroup, from /proc/<pid>/cgroup: lines of
// "hierarchy-ID:controller,...:path", the v2 one "0::path".
func parseCgroupFile(s string) (map[string]string, error) {
	members := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			return nil, fmt.Errorf("line %q: not hierarchy:controllers:path", line)
		}
		if parts[1] == "" {
			members[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			members[c] = parts[2]
		}
	}
	return members, sc.Err()
}

// mount is one cgroup mount of mountinfo.
type mount struct {
	root, point string // the cgroup mounted, and where
	v2          bool
	controllers []string // v1: its super options, the controllers among them
}

// parseMountinfo lists the cgroup and cgroup2 mounts of mountinfo (see
// proc(5)): "id parent dev root point options [optional...] - type source
// super-options". Lines of other filesystems, or malformed, are skipped.
func parseMountinfo(s string) []mount {
	var mounts []mount
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		m := mount{root: unescape(f[3]), point: unescape(f[4]), v2: g[0] == "cgroup2"}
		if !m.v2 && len(g) >= 3 {
			m.controllers = strings.Split(g[2], ",")
		}
		mounts = append(mounts, m)
	}
	return mounts
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash (\040, \011, \012, \134).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// locate is the hierarchy of controller: its v1 mount when there is one
// (a hybrid host mounts both), else the v2 mount. A cgroup outside the
// mount's root (mounted from another namespace) is not reachable: none.
func locate(members map[string]string, mounts []mount, controller string) hierarchy {
	for _, v2 := range []bool{false, true} {
		key := controller
		if v2 {
			key = ""
		}
		cg, ok := members[key]
		if !ok {
			continue
		}
		for _, m := range mounts {
			if m.v2 != v2 || (!v2 && !slices.Contains(m.controllers, controller)) {
				continue
			}
			rel, ok := within(m.root, cg)
			if !ok {
				continue
			}
			return hierarchy{dirs: upTo(strings.TrimPrefix(m.point, "/"), rel), v2: v2}
		}
	}
	return hierarchy{}
}

// within is cg's path relative to root, when it is under root.
func within(root, cg string) (string, bool) {
	if root == "/" {
		return strings.TrimPrefix(cg, "/"), true
	}
	if cg == root {
		return "", true
	}
	if rel, ok := strings.CutPrefix(cg, root+"/"); ok {
		return rel, true
	}
	return "", false
}

// upTo is point/rel and each directory above it up to point, the deepest
// first.
func upTo(point, rel string) []string {
	dirs := []string{path.Join(point, rel)}
	for rel = strings.Trim(rel, "/"); rel != "" && rel != "."; {
		rel = path.Dir(rel)
		if rel == "." {
			rel = ""
		}
		dirs = append(dirs, path.Join(point, rel))
	}
	return dirs
}
