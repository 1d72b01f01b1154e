package collector

import (
	"os"
	"syscall"
	"testing"
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
