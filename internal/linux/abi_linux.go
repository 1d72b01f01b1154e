package linux

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// UserHZ is the unit of the CPU times in /proc/stat and /proc/<pid>/stat:
// USER_HZ, which Linux fixes at 100 on every architecture it exports to user
// space, whatever the kernel's own tick rate.
const UserHZ = 100

// DeviceName is a device number (st_dev) as major:minor, as
// /proc/self/mountinfo and stat(1) show it.
func DeviceName(dev uint64) string {
	return strconv.FormatUint(uint64(unix.Major(dev)), 10) + ":" + strconv.FormatUint(uint64(unix.Minor(dev)), 10)
}
