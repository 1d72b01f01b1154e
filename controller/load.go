package controller

import (
	"time"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// maxStep is the most memory or disk holders grow in one tick, so that a
// misjudged step costs little: a figure of its own, whatever the sizes of
// a memory chunk or a fill file.
const maxStep int64 = 1 << 30

// Holders is the holder manager as the loop sees it: holder.Manager, or a
// simulation's Model. Apply must not wait for a holder's cooperation: the
// give-way watcher calls it too.
type Holders interface {
	Apply(holder.Load) error
	Held() (holder.Held, error)
	// CPUTime is Held's CPUTime alone, cheap enough for the watcher.
	CPUTime() (time.Duration, error)
}

// shares is the share of each resource the holders take, from their usage.
// A dry run holds nothing.
func (l *Loop) shares(used holder.Held, s host.Sample, clock *cpuClock) host.Each[float64] {
	if l.cfg.Holders == nil {
		return host.Each[float64]{}
	}
	return sharesOf(holder.Load{CPU: clock.share(used.CPUTime, s.Time, s.CPUs), Memory: used.Bytes.At(host.Memory), Disk: used.Bytes.At(host.Disk)}, s)
}

// sharesOf is load's share of each resource on the sampled host.
func sharesOf(load holder.Load, s host.Sample) host.Each[float64] {
	var shares host.Each[float64]
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
	case host.Disk:
		return host.Ratio(load.Disk, s.DiskUsable())
	}
	panic("controller: no share of resource " + string(r))
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
	default:
		panic("controller: no share of resource " + string(r))
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
	case host.CPU:
		return 1 // the burner takes its duty at once
	}
	panic("controller: no step of resource " + string(r))
}

// roundUp is n rounded up to whole units.
func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// wouldHold is what a dry run shows as held: the load it would apply, in
// the holders it would take (memory in chunks, disk in 1 GiB files).
func wouldHold(l holder.Load, chunk int64) holder.Held {
	pieces := func(b, size int64) int { return int((b + size - 1) / size) }
	var u holder.Held
	*u.Bytes.Of(host.Memory), *u.Holders.Of(host.Memory) = l.Memory, pieces(l.Memory, chunk)
	*u.Bytes.Of(host.Disk), *u.Holders.Of(host.Disk) = l.Disk, pieces(l.Disk, holder.MaxFillFile)
	if l.CPU > 0 {
		*u.Holders.Of(host.CPU) = 1
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
