package cgroup

import "os"

// Self finds the cgroups of the running process, through /proc/self and
// the cgroup mounts it sees.
func Self() (*Group, error) { return Find(os.DirFS("/")) }
