// Package notyet stops the Windows build of the packages not ported to
// Windows yet, with one message, as internal/platform stops the build for
// an operating system cro-exporter has no code for. The port (WINDOWS.md)
// has reached internal/host, internal/regfile and internal/statefile;
// every other package with code of one operating system imports this one
// as well as internal/platform, and a package ported drops the import.
package notyet
