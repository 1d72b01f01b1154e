package controller

import (
	"math"
	"testing"

	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

func TestDiskFillIsSizedAsDfCountsUsage(t *testing.T) {
	// 100 GiB with 20 reserved for root, 10 used and 70 available: df
	// says 10 / (10 + 70) = 12.5%.
	s := host.Sample{DiskSize: 100 * gib, DiskUsed: 10 * gib, DiskAvailable: 70 * gib}
	if got := s.Usage(host.Disk); got != 0.125 {
		t.Fatalf("usage %v, want df's 0.125", got)
	}
	// Held at 0.40, df counts 0.40: 0.40 × 80 - 10 = 22 GiB of fill.
	load := withRatio(holder.Load{}, host.Disk, 0.40-s.Usage(host.Disk), s)
	if load.Disk != 22*gib {
		t.Errorf("fill for 0.40: %d GiB, want 22", load.Disk/gib)
	}
	held := s
	held.DiskUsed += uint64(load.Disk)
	held.DiskAvailable -= uint64(load.Disk)
	if got := held.Usage(host.Disk); math.Abs(got-0.40) > 1e-12 {
		t.Errorf("df's usage with the fill: %v, want 0.40", got)
	}
	if got := ratioOf(host.Disk, load, s); math.Abs(got-0.275) > 1e-12 {
		t.Errorf("the fill's share %v, want 22/80", got)
	}
	// A reserve of 8 GiB available leaves usage at most 1 - 8/80.
	l := NewLoop(Config{Ceiling: 0.95, DiskReserve: 8 * gib})
	if limit, by := l.limit(host.Disk, s); math.Abs(limit-0.9) > 1e-12 || by != byReserve {
		t.Errorf("limit %v (by %s), want 0.9 by the reserve", limit, by.name(host.Disk))
	}
}
