// Package linux holds what the kernel's user-space ABI fixes and more than
// one of our packages needs.
package linux

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
