package main

// What the command does its own way on Linux: another operating system
// brings a file of its own with these functions.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/alecthomas/kong"
	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// platformFlags are the flags of Linux alone.
type platformFlags struct {
	PathProcfs string `name:"path.procfs" default:"/proc" placeholder:"DIR" help:"procfs mountpoint; point it at the host's /proc from a container."`
}

// platformVars are the defaults and help texts that differ by operating
// system.
func platformVars() kong.Vars {
	return kong.Vars{
		"disk_path":      "/",
		"disk_path_help": "A path on the filesystem whose utilization (df's used / (used + avail)) is measured and held.",
		"state_dir":      "/var/lib/cro-exporter",
		"state_dir_mode": "0700",
	}
}

// ownCgroups is the daemon's cgroups, whose limits bound the holders; nil,
// with a warning, when they cannot be found.
func ownCgroups(logger *slog.Logger) *cgroup.Group {
	g, err := cgroup.Self()
	if err != nil {
		logger.Warn("holders are planned without the limits of the daemon's cgroups", "err", err)
	}
	return g
}

// askedToStop is ctx: --recover asks a Linux daemon to stop with SIGTERM,
// which main's signal context catches.
func askedToStop(ctx context.Context, _ string) (context.Context, error) { return ctx, nil }

// isTerminal tells whether w is a terminal, which gets colored log lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// newReader opens the host's procfs and disk path, naming the flag at fault.
func newReader(cli *CLI) (*host.Reader, error) {
	r, err := host.NewReader(cli.PathProcfs, cli.DiskPath)
	if _, ok := errors.AsType[*host.DiskError](err); ok {
		return nil, usageError{fmt.Errorf("--disk.path=%s: %w", cli.DiskPath, err)}
	} else if err != nil {
		return nil, usageError{fmt.Errorf("--path.procfs=%s: %w", cli.PathProcfs, err)}
	}
	return r, nil
}
