package main

// What the command does its own way on Windows (platform_linux.go has
// Linux's).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/winholder"
)

// platformFlags: Windows has none of its own.
type platformFlags struct{}

// platformVars are the defaults and help texts that differ by operating
// system: the system drive, and state under ProgramData, where
// windows_exporter and other services keep theirs.
func platformVars() kong.Vars {
	programData := os.Getenv("ProgramData")
	if programData == "" {
		programData = `C:\ProgramData`
	}
	drive := os.Getenv("SystemDrive")
	if drive == "" {
		drive = "C:"
	}
	return kong.Vars{
		"disk_path":      drive + `\`,
		"disk_path_help": "A path on the volume whose utilization ((size - free) / size, as GetDiskFreeSpaceEx counts it) is measured and held.",
		"state_dir":      filepath.Join(programData, "cro-exporter"),
		"state_dir_mode": "with an ACL of its owner alone",
	}
}

// ownCgroups: Windows has no cgroups, so the holders are planned without
// such limits.
func ownCgroups(*slog.Logger) *cgroup.Group { return nil }

// askedToStop is ctx, ended also when --recover signals the stop event of
// the state dir (winholder.StopEvent): Windows has no SIGTERM. The event
// is held, and waited on, for the life of the process. It is named by the
// state dir as --recover finds it (absolute, symlinks resolved); a dry
// run's may not exist, and it holds nothing to stop anyway.
func askedToStop(ctx context.Context, stateDir string) (context.Context, error) {
	owner, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", stateDir, err)
	}
	if resolved, err := filepath.EvalSymlinks(owner); err == nil {
		owner = resolved
	}
	ev, err := winholder.StopEvent(owner)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		windows.WaitForSingleObject(ev, windows.INFINITE)
		cancel()
	}()
	return ctx, nil
}

// isTerminal tells whether w is a console, which gets colored log lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var mode uint32
	return windows.GetConsoleMode(windows.Handle(f.Fd()), &mode) == nil
}

// newReader opens the volume of the disk path, naming the flag at fault.
func newReader(cli *CLI) (*host.Reader, error) {
	r, err := host.NewReader(cli.DiskPath)
	if _, ok := errors.AsType[*host.DiskError](err); ok {
		return nil, usageError{fmt.Errorf("--disk.path=%s: %w", cli.DiskPath, err)}
	}
	return r, err
}
