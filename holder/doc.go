// Package holder runs the processes and files that add load: memory ballast,
// a CPU burner, disk fill files; and the manager that starts, resizes, stops,
// adopts and recovers them.
//
// Like all of cro-exporter, it builds and runs on Linux only.
package holder
