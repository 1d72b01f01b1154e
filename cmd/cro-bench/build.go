//go:build linux

package main

import (
	"os/exec"
	"syscall"
)

// build is a cro-exporter build and how the benches run it.
type build struct {
	argv []string       // the command that runs it, before its arguments
	stop syscall.Signal // what stops its daemon cleanly
	row  string         // after a figure's name, the build it is of; "" for Linux's
}

// linuxBuild is the Linux binary, stopped as systemd stops it.
func linuxBuild(binary string) build {
	return build{argv: []string{binary}, stop: syscall.SIGTERM}
}

// wineBuild is the Windows build under Wine, in the prefix of
// tools/wine/exec.sh (WINDOWS.md). Wine runs it and its holders as Linux
// processes, so they burn and hold this machine's CPU and memory, and
// /proc judges them as it judges Linux's. Wine hands the build SIGINT as a
// Ctrl-C, a clean stop; SIGTERM kills it.
func wineBuild(exe string) build {
	return build{argv: []string{"tools/wine/exec.sh", exe}, stop: syscall.SIGINT, row: ", windows (wine)"}
}

// command runs the build with args.
func (b build) command(args ...string) *exec.Cmd {
	return exec.Command(b.argv[0], append(b.argv[1:], args...)...)
}
