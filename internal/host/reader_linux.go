package host

import (
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// statfsDisk measures the filesystem holding path with fstatfs(2), and
// its device with fstat(2), both on one O_PATH descriptor of path, so that
// the two describe the same filesystem.
func statfsDisk(path string) (diskSpace, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return diskSpace{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return diskSpace{}, err
	}
	var sfs unix.Statfs_t
	for {
		err := unix.Fstatfs(fd, &sfs)
		if err == nil {
			disk := diskSpaceOf(&sfs)
			disk.dev = st.Dev
			return disk, nil
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
