//go:build !linux && !windows

package platform

// This line is the build's one error on another GOOS: the compiler prints
// the string.
var _ int = "cro-exporter builds for Linux and Windows only: set GOOS=linux or GOOS=windows"
