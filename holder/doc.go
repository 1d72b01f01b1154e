// Package holder runs the processes and files that add load: memory ballast,
// a CPU burner, disk fill files; and the manager that starts, resizes, stops,
// adopts and recovers them.
//
// What an operating system does its own way sits in its own files
// (_linux.go, _windows.go), each behind a small interface or function the
// rest of the package calls:
//   - processes: starting holders tied to the daemon's life, and telling
//     of them (process_*.go; Windows' calls are in internal/winholder);
//   - ballast: memory held outside the Go heap (memory_*.go);
//   - diskFill: the fill files and their directory (fill*_*.go; the
//     flow and the dir's rules are fill.go, fillcheck.go, filldir.go);
//   - the state dir's lock, and finding what a crashed run left
//     (lock_*.go, leftovers_*.go, recover_*.go);
//   - the burner's threads, which give way to real work (cpu_*.go; the
//     burner itself is burner.go).
package holder

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
