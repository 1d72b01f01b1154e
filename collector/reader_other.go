//go:build !linux

package collector

import "errors"

// statfsDisk is Linux-only; elsewhere NewReader refuses to start.
func statfsDisk(string) (size, avail uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
