//go:build !linux && !windows

package platform

// This line is the build's one error on another GOOS: the compiler prints
// the string. Windows gets through, for the packages ported to it so far;
// the others stop at internal/platform/notyet.
var _ int = "cro-exporter builds for Linux only: set GOOS=linux"
