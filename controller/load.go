package controller

import (
	"slices"
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// maxStep is the most memory or disk holders grow in one tick, so that a
// misjudged step costs little: a figure of its own, whatever the sizes of
// a memory chunk or a fill file.
const maxStep int64 = 1 << 30

// holderFigures is what the holders of one resource show: how many there
// are, their failures and refused starts, and the bytes they hold.
type holderFigures struct {
	count                     int
	failures, refusals, bytes uint64
}

// figuresOf is the figures of r's holders in u.
func figuresOf(u holder.Usage, r host.Resource) holderFigures {
	switch r {
	case host.CPU:
		return holderFigures{count: u.CPUHolders, failures: u.CPUFailures, refusals: u.CPURefusals}
	case host.Memory:
		return holderFigures{count: u.MemoryHolders, failures: u.MemoryFailures, refusals: u.MemoryRefusals, bytes: uint64(u.Memory)}
	}
	return holderFigures{count: u.DiskFiles, failures: u.DiskFailures, bytes: uint64(u.Disk)}
}

// Holders is the holder manager as the loop sees it: holder.Manager, or a
// simulation's Model. Apply must not wait for a holder's cooperation: the
// give-way watcher calls it too.
type Holders interface {
	Apply(holder.Load) error
	Usage() (holder.Usage, error)
	// CPUTime is Usage's CPUTime alone, cheap enough for the watcher.
	CPUTime() (time.Duration, error)
}

// byResource is one T for each resource, in the order of
// host.Resources.
type byResource[T any] [len(host.Resources)]T

// of is r's T.
func (b *byResource[T]) of(r host.Resource) *T {
	return &b[slices.Index(host.Resources[:], r)]
}

// shares is the share of each resource the holders take, from their usage.
// A dry run holds nothing.
func (l *Loop) shares(used holder.Usage, s host.Sample, clock *cpuClock) byResource[float64] {
	if l.cfg.Holders == nil {
		return byResource[float64]{}
	}
	return sharesOf(holder.Load{CPU: clock.share(used.CPUTime, s.Time, s.CPUs), Memory: used.Memory, Disk: used.Disk}, s)
}

// sharesOf is load's share of each resource on the sampled host.
func sharesOf(load holder.Load, s host.Sample) byResource[float64] {
	var shares byResource[float64]
	for i, r := range host.Resources {
		shares[i] = ratioOf(r, load, s)
	}
	return shares
}

// ratioOf is load's share of r on the sampled host.
func ratioOf(r host.Resource, load holder.Load, s host.Sample) float64 {
	switch r {
	case host.CPU:
		return load.CPU
	case host.Memory:
		return host.Ratio(load.Memory, s.MemoryTotal)
	}
	return host.Ratio(load.Disk, s.DiskUsable())
}

// withRatio is load with r's share set to x.
func withRatio(load holder.Load, r host.Resource, x float64, s host.Sample) holder.Load {
	switch r {
	case host.CPU:
		load.CPU = x
	case host.Memory:
		load.Memory = int64(x * float64(s.MemoryTotal))
	case host.Disk:
		load.Disk = int64(x * float64(s.DiskUsable()))
	}
	return load
}

// stepOf is the most r's holders may grow in one tick, as a share.
func stepOf(r host.Resource, s host.Sample) float64 {
	switch r {
	case host.Memory:
		return host.Ratio(maxStep, s.MemoryTotal)
	case host.Disk:
		return host.Ratio(maxStep, s.DiskUsable())
	}
	return 1
}

// roundUp is n rounded up to whole units.
func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// wouldHold is what a dry run shows as held: the load it would apply, in
// the holders it would take (memory in chunks, disk in 1 GiB files).
func wouldHold(l holder.Load, chunk int64) holder.Usage {
	pieces := func(b, size int64) int { return int((b + size - 1) / size) }
	u := holder.Usage{Memory: l.Memory, Disk: l.Disk, MemoryHolders: pieces(l.Memory, chunk), DiskFiles: pieces(l.Disk, holder.MaxFillFile)}
	if l.CPU > 0 {
		u.CPUHolders = 1
	}
	return u
}

// cpuClock turns the holders' cumulative CPU time into a share of the
// machine since the previous reading.
type cpuClock struct {
	time time.Duration
	at   time.Time
}

func (c *cpuClock) share(cpuTime time.Duration, now time.Time, cpus int) float64 {
	prev := *c
	*c = cpuClock{cpuTime, now}
	elapsed := now.Sub(prev.at)
	if prev.at.IsZero() || elapsed <= 0 || cpuTime < prev.time || cpus == 0 {
		return 0
	}
	return min(1, (cpuTime-prev.time).Seconds()/(elapsed.Seconds()*float64(cpus)))
}
