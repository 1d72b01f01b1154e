package host

import (
	"math"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadMeasuresARealDiskAsStatfsDoes(t *testing.T) {
	dir := t.TempDir()
	r, err := NewReader(fixtureTree("small-8g"), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Read(readAt)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	if s.DiskSize == 0 || s.DiskSize != st.Blocks*unit {
		t.Errorf("DiskSize = %d, want %d (statfs blocks %d of %d bytes)", s.DiskSize, st.Blocks*unit, st.Blocks, unit)
	}
	// Others may write to the same filesystem between the two calls.
	want := st.Bavail * unit
	if diff := max(s.DiskAvailable, want) - min(s.DiskAvailable, want); diff > s.DiskSize/100 {
		t.Errorf("DiskAvailable = %d, want about %d", s.DiskAvailable, want)
	}
}

func TestReadLeavesNoFileOpen(t *testing.T) {
	r, err := NewReader(fixtureTree("small-8g"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	openFiles := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd:", err)
		}
		return len(fds)
	}
	before := openFiles()
	for range 200 {
		if _, err := r.Read(readAt); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFiles(); after > before {
		t.Errorf("%d files open after 200 Reads, %d before", after, before)
	}
}

func TestDiskUsageIsUsedOverUsedAndAvailableAsDfCountsIt(t *testing.T) {
	// statfs as an ext4 of 1,000 blocks of 4 KiB reports it, with the
	// reserved share mkfs.ext4 -m gives; df's Use% is used / (used +
	// avail), reserved blocks counted as neither.
	tests := []struct {
		name                          string
		st                            unix.Statfs_t
		wantSize, wantUsed, wantAvail uint64
		want                          float64
	}{
		{"no blocks reserved, 300 of 1000 used", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 700, Bavail: 700}, 1000 * 4096, 300 * 4096, 700 * 4096, 0.30},
		{"5% reserved, 300 of 1000 used", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 700, Bavail: 650}, 1000 * 4096, 300 * 4096, 650 * 4096, 300.0 / 950},
		{"20% reserved, 100 of 1000 used", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 900, Bavail: 700}, 1000 * 4096, 100 * 4096, 700 * 4096, 100.0 / 800},
		{"20% reserved, all available taken", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 200, Bavail: 0}, 1000 * 4096, 800 * 4096, 0, 1},
		{"no f_frsize: f_bsize is the unit", unix.Statfs_t{Bsize: 1024, Blocks: 1000, Bfree: 900, Bavail: 850}, 1000 * 1024, 100 * 1024, 850 * 1024, 100.0 / 950},
		{"an empty filesystem", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 1000, Bavail: 950}, 1000 * 4096, 0, 950 * 4096, 0},
		{"nothing used or available is 0, not NaN", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 1000, Bavail: 0}, 1000 * 4096, 0, 0, 0},
		{"f_bfree above f_blocks (should not happen) counts as nothing used", unix.Statfs_t{Frsize: 4096, Bsize: 4096, Blocks: 1000, Bfree: 1200, Bavail: 900}, 1000 * 4096, 0, 900 * 4096, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := newReader(fixtureTree("small-8g"), "/data", func(string) (diskSpace, error) { return diskSpaceOf(&tt.st), nil })
			if err != nil {
				t.Fatal(err)
			}
			s, err := r.Read(readAt)
			if err != nil {
				t.Fatal(err)
			}
			if s.DiskSize != tt.wantSize || s.DiskUsed != tt.wantUsed || s.DiskAvailable != tt.wantAvail {
				t.Errorf("disk size/used/avail = %d/%d/%d, want %d/%d/%d", s.DiskSize, s.DiskUsed, s.DiskAvailable, tt.wantSize, tt.wantUsed, tt.wantAvail)
			}
			if got := s.Usage(Disk); math.Abs(got-tt.want) > 1e-12 || math.IsNaN(got) {
				t.Errorf("Usage(Disk) = %v, want %v", got, tt.want)
			}
		})
	}
}
