// Package wintest holds what the Windows tests, which run under Wine
// (tools/wine), share: a temp dir Wine can clean up, and must. On Linux the
// package is empty.
package wintest

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
