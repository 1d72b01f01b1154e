// Package holder runs the processes and files that add load: memory ballast,
// a CPU burner, disk fill files; and the manager that starts, resizes, stops,
// adopts and recovers them.
//
// What an operating system does its own way sits in its own files
// (_linux.go), each behind a small interface or function the rest of the
// package calls:
//   - processes: starting holders tied to the daemon's life, and telling
//     of them (process_linux.go);
//   - ballast: memory held outside the Go heap (memory_linux.go);
//   - diskFill: the fill files and their directory (fill*_linux.go,
//     fill*_windows.go);
//   - the state dir's lock, and finding what a crashed run left
//     (lock_linux.go, leftovers_linux.go, recover*_linux.go);
//   - the burner's threads, which give way to real work (cpu_linux.go,
//     cpu_windows.go; the burner itself is burner.go).
//
// The package does not build for Windows yet; the Windows halves of
// processes and ballast are in internal/winholder meanwhile (WINDOWS.md).
package holder

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
