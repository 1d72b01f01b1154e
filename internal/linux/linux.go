// Package linux holds what the kernel's user-space ABI fixes and more than
// one of our packages needs.
package linux

// UserHZ is the unit of the CPU times in /proc/stat and /proc/<pid>/stat:
// USER_HZ, which Linux fixes at 100 on every architecture it exports to user
// space, whatever the kernel's own tick rate.
const UserHZ = 100
