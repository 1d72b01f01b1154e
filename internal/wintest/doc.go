// Package wintest holds what the Windows tests, which run under Wine
// (tools/wine), share: a temp dir Wine can clean up, Must, and a dir
// others may write to. On Linux the package is empty.
package wintest

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
