package collector

import "golang.org/x/sys/unix"

// statfsDisk measures the filesystem holding path as df does: size is
// f_blocks and avail is f_bavail (what an unprivileged user may still write),
// both in units of f_frsize, or of f_bsize where f_frsize is 0.
func statfsDisk(path string) (size, avail uint64, err error) {
	var st unix.Statfs_t
	for {
		err = unix.Statfs(path, &st)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, 0, err
	}
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return st.Blocks * unit, st.Bavail * unit, nil
}
