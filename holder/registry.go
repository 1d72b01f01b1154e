package holder

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// registryFile is the name of the holder registry in the state dir: every
// live holder's pid, process start time, kind and size, so that a later run
// and --recover find the holders of a run that crashed and never signal a
// process that merely reused one of their pids.
const registryFile = "holders.json"

// registryVersion is the version of the registry's format.
const registryVersion = 1

// registryJSON is the registry's format.
type registryJSON struct {
	Version int           `json:"version"`
	Holders []holderEntry `json:"holders"`
}

// holderEntry is one holder in the registry.
type holderEntry struct {
	Pid int `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat: clock ticks since boot.
	// With the pid, it names one process for as long as the host is up.
	StartTime uint64 `json:"start_time"`
	Kind      Kind   `json:"kind"`
	// Size is the bytes a memory holder holds.
	Size int64 `json:"size,omitempty"`
	// Duty is the share of the machine a CPU holder burns.
	Duty float64 `json:"duty,omitempty"`
}

// entryOf is the registry entry of a running holder.
func entryOf(p *holderProcess) holderEntry {
	e := holderEntry{Pid: p.Pid, StartTime: p.StartTime, Kind: p.Kind}
	if p.Kind == kindMemory {
		e.Size = p.Size
	} else {
		e.Duty = p.Duty
	}
	return e
}

// saveRegistry replaces the registry in dir with entries, atomically.
func saveRegistry(dir string, entries []holderEntry) error {
	if entries == nil {
		entries = []holderEntry{}
	}
	data, err := json.MarshalIndent(registryJSON{Version: registryVersion, Holders: entries}, "", "  ")
	if err != nil {
		return fmt.Errorf("saving holder registry: %w", err)
	}
	if err := statefile.Write(filepath.Join(dir, registryFile), append(data, '\n')); err != nil {
		return fmt.Errorf("saving holder registry: %w", err)
	}
	return nil
}

// readRegistry reads the registry in dir. A missing registry is empty. One
// that cannot be read, is not a regular file of ours (statefile.Open) or
// cannot be parsed is renamed to holders.json.corrupt-<unix time of now>
// (never deleted, so it can be looked at) and taken as empty: its new name
// is returned, with why it was not usable. The error alone is for a
// registry that cannot be moved aside.
func readRegistry(dir string, now time.Time) (entries []holderEntry, aside string, err error) {
	aside, err = statefile.Load(filepath.Join(dir, registryFile), now, func(data []byte) (err error) {
		entries, err = parseRegistry(data)
		return err
	})
	switch {
	case aside != "":
		return nil, aside, err
	case err != nil:
		return nil, "", fmt.Errorf("holder registry %w", err)
	}
	return entries, "", nil
}

// loadRegistry is readRegistry for Open: a registry moved aside is logged
// as a warning, and the scan of /proc for leftover holders is the safety
// net.
func loadRegistry(dir string, now time.Time, logger *slog.Logger) ([]holderEntry, error) {
	entries, aside, err := readRegistry(dir, now)
	if aside != "" {
		logger.Warn("Holder registry is not usable; moved it aside and looking for leftover holders in /proc instead",
			"file", filepath.Join(dir, registryFile), "err", err, "moved_to", aside)
		return nil, nil
	}
	return entries, err
}

// parseRegistry parses and checks the registry.
func parseRegistry(data []byte) ([]holderEntry, error) {
	var file registryJSON
	if err := statefile.Decode(data, registryVersion, &file); err != nil {
		return nil, err
	}
	for i, e := range file.Holders {
		switch {
		case e.Pid <= 1:
			return nil, fmt.Errorf("holder %d: pid %d", i, e.Pid)
		case e.StartTime == 0:
			return nil, fmt.Errorf("holder %d (pid %d): no start time", i, e.Pid)
		case e.Kind != kindMemory && e.Kind != kindCPU:
			return nil, fmt.Errorf("holder %d (pid %d): unknown kind %s", i, e.Pid, statefile.Quote(string(e.Kind)))
		case e.Size < 0:
			return nil, fmt.Errorf("holder %d (pid %d): size %d", i, e.Pid, e.Size)
		case math.IsNaN(e.Duty) || e.Duty < 0 || e.Duty > 1:
			return nil, fmt.Errorf("holder %d (pid %d): duty %v", i, e.Pid, e.Duty)
		}
	}
	return file.Holders, nil
}
