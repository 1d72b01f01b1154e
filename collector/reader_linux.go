package collector

import (
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// statfsDisk measures the filesystem holding path with statfs(2).
func statfsDisk(path string) (diskSpace, error) {
	var st unix.Statfs_t
	for {
		err := unix.Statfs(path, &st)
		if err == nil {
			return diskSpaceOf(&st), nil
		}
		if err != unix.EINTR {
			return diskSpace{}, err
		}
	}
}

// diskSpaceOf counts a statfs result as df, psutil and gopsutil do: used is
// f_blocks - f_bfree and avail is f_bavail, both in units of f_frsize (of
// f_bsize where f_frsize is 0). The blocks reserved for root are free but
// not available, so they count as neither.
func diskSpaceOf(st *unix.Statfs_t) diskSpace {
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return diskSpace{
		size:  st.Blocks * unit,
		used:  (st.Blocks - min(st.Bfree, st.Blocks)) * unit,
		avail: st.Bavail * unit,
	}
}

// checkPressureFile refuses a pressure file that is there but is not a
// regular file: procfs, which reads them, would wait on a FIFO for good. An
// absent or unreadable one is readPressure's to judge.
func checkPressureFile(path string) error {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nil
	}
	return regfile.Check(path, &st, maxProcFile)
}
