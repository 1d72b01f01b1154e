// Package winholder holds the Windows calls behind holder's Windows files
// and the daemon's life on Windows: a job object that kills holder
// processes when the daemon dies, the CPU time, start time and working set
// of a process, memory ballast, another process opened to end it, the
// service's pid and stop, and the stop event --recover signals. Its tests
// start child processes of their own, under Wine (tools/wine). On Linux
// the package is empty.
package winholder

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
