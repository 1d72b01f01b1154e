package main

// What the command does its own way on Linux: another operating system
// brings a file of its own with these functions.

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

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
