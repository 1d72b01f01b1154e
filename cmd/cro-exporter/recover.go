package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// errIncomplete is --recover's failure: its report names what is left.
var errIncomplete = errors.New("recovery incomplete: see the report")

// recoverHost is --recover: it stops the daemon and every holder, removes
// every fill file, keeps the averages, and reports, with the host's usage
// after.
func recoverHost(cli *CLI, w io.Writer, logger *slog.Logger) error {
	// Whatever is in a state dir that is not ours cannot tell what is ours.
	if err := controller.CheckStateDir(cli.StateDir, false); err != nil {
		return usageError{fmt.Errorf("--state.dir=%s: %w", cli.StateDir, err)}
	}
	rep, err := holder.Recover(holderConfig(cli, logger))
	if err != nil {
		return err
	}
	rep.WriteTo(w)
	if reader, err := newReader(cli); err == nil {
		if s, err := reader.Read(time.Now()); err == nil {
			fmt.Fprintf(w, "Host usage now: CPU %s (since boot), memory %s, disk %s.\n",
				pct(s.Usage(host.CPU)), pct(s.Usage(host.Memory)), pct(s.Usage(host.Disk)))
		}
	}
	if rep.Failed() {
		return errIncomplete
	}
	return nil
}
