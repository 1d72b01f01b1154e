// Package winholder holds the Windows halves of the holder package's
// seams (holder/doc.go): a job object that kills holder processes when the
// daemon dies, the CPU time, start time and working set of a process, and
// memory ballast. They live here, not in holder, because holder does not
// build for Windows yet (WINDOWS.md): here they build and are tested under
// Wine on their own, and holder's _windows.go files call them once the
// rest of holder is ported. On Linux the package is empty.
package winholder

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
