package controller

import (
	"math"

	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// bound is what sets a limit.
type bound int

const (
	byCeiling bound = iota
	byReserve
	byCgroup
)

// limit is the highest total usage holders may bring r to, and what sets
// it: the ceiling, or less where a reserve of MemAvailable or free space
// says so. The daemon's cgroup bounds the holders' own load instead
// (cgroupRoom, decision.within).
func (l *Loop) limit(r host.Resource, s host.Sample) (float64, bound) {
	limit, by := l.cfg.Ceiling, byCeiling
	reserve := 1.0
	switch r {
	case host.Memory:
		reserve = 1 - host.Ratio(l.cfg.MemoryReserve, s.MemoryTotal)
	case host.Disk:
		reserve = 1 - host.Ratio(l.cfg.DiskReserve, s.DiskUsable())
	}
	if reserve < limit {
		limit, by = reserve, byReserve
	}
	return limit, by
}

// name names the bound of r's limit in a log line.
func (b bound) name(r host.Resource) string {
	switch {
	case b == byCeiling:
		return "the ceiling"
	case b == byReserve:
		return "the reserve"
	case r == host.CPU:
		return "the cgroup's CPU quota"
	}
	return "the cgroup's memory limit"
}

// Headroom planned within the daemon's cgroup: ballast leaves a tenth of
// the memory limit (at least memoryHeadroom) to the daemon and to what the
// cgroup's other processes may add, and the burner a tenth of the quota to
// the daemon's own CPU. Each memory holder is charged holderOverhead
// besides its ballast: its Go runtime and page tables, with a margin, so
// that ballast sized to the limit is not OOM-killed for them.
const (
	memoryHeadroom int64 = 32 << 20
	holderOverhead int64 = 4 << 20
	cgroupHeadroom       = 0.1
)

// cgroupRoom is the share of each resource that the daemon's cgroup
// leaves its holders, +Inf where it sets no limit. Memory: the limit,
// less what is charged to the cgroup besides the ballast and the overhead
// of the holders running, less headroom, less the overhead of the holders
// of chunk bytes that hold the rest; holders are children in the cgroup, so
// ballast past this is OOM-killed. CPU: the quota, less headroom, as a
// share of the machine; a burner past it is throttled.
func cgroupRoom(limits cgroup.Limits, ballast int64, holders int, chunk int64, s host.Sample) host.Each[float64] {
	var room host.Each[float64]
	for i := range room {
		room[i] = math.Inf(1)
	}
	if m := limits.Memory; m.Limit > 0 && s.MemoryTotal > 0 {
		others := max(0, m.Usage-ballast-int64(holders)*holderOverhead)
		headroom := max(memoryHeadroom, int64(float64(m.Limit)*cgroupHeadroom))
		free := max(0, m.Limit-others-headroom)
		n := (free + chunk + holderOverhead - 1) / (chunk + holderOverhead)
		*room.Of(host.Memory) = host.Ratio(max(0, free-n*holderOverhead), s.MemoryTotal)
	}
	if limits.CPUs > 0 && s.CPUs > 0 && limits.CPUs < float64(s.CPUs) {
		*room.Of(host.CPU) = limits.CPUs * (1 - cgroupHeadroom) / float64(s.CPUs)
	}
	return room
}

// warnUnreachable says once, when it starts and when it ends, that the
// most holders may bring r to keeps its target out of reach, by how much
// and what sets it: the ceiling or a reserve even with no real usage at
// all, the daemon's cgroup with real usage at its few-minute level. A target kept out of reach is in reach again
// only a margin above the edge, so that real usage moving about it does not
// say so every tick.
func (l *Loop) warnUnreachable(r host.Resource, c *control, target, limit float64, by bound) {
	edge := target + margin
	if c.unreachable {
		edge += margin
	}
	unreachable := limit < edge
	c.shortfall = 0
	if unreachable {
		// A reserve larger than the disk puts the limit under 0.
		c.shortfall = clamp(target-limit, 0, target)
	}
	if unreachable == c.unreachable {
		return
	}
	c.unreachable = unreachable
	if unreachable {
		l.cfg.Logger.Warn("target cannot be met", "resource", r, "target", round(target), "limit", round(limit), "short_by", round(c.shortfall), "by", by.name(r))
	} else {
		l.cfg.Logger.Info("target can be met again", "resource", r, "target", round(target))
	}
}
