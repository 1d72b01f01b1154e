// Package platform stops the build for an operating system cro-exporter
// has no code for, with one message. Each package with code written for
// one operating system (its _linux.go and _windows.go files) imports it,
// so that such a build stops here, before the compiler reaches the pieces
// that are missing and reports each of them deep in a package.
package platform
