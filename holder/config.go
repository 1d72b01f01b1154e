package holder

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/cgroup"
)

// Config is what a Manager, and Recover, work with.
type Config struct {
	StateDir string // registry and lock
	FillDir  string // disk fill files; "" means no disk fill
	DiskPath string // the fill dir must be on this one's filesystem; "" means unchecked
	Chunk    int64  // largest memory holder, <= MaxChunk; 0 means MaxChunk
	// Pids reads the pids limit of the daemon's cgroup before each holder
	// starts (see roomFor); nil means no limit.
	Pids func() (cgroup.Pids, error)
	// Started is when the daemon started: a --recover that let the state
	// dir's lock go since then ran while it was starting, and Open
	// refuses (zero: Open never refuses so).
	Started time.Time
	Logger  *slog.Logger

	// binary is the executable started as holders, "" (always, outside
	// this package's tests) meaning selfExe's: the tests start the
	// binary they build, or a fake holder that misbehaves.
	binary string
}

// resolved is a Config with its defaults filled in.
type resolved struct {
	Config
	argv0 string // the holders' argv[0]
	owner string // StateDir, absolute with symlinks resolved: ownerEnv's value
}

// resolve checks cfg and fills in its defaults: Open and Recover both
// work with what it returns.
func resolve(cfg Config) (resolved, error) {
	r := resolved{Config: cfg}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.StateDir == "" {
		return r, errors.New("holder config: no state dir")
	}
	switch {
	case r.Chunk == 0:
		r.Chunk = MaxChunk
	case r.Chunk < int64(os.Getpagesize()) || r.Chunk > MaxChunk:
		return r, fmt.Errorf("memory chunk %d: not between a page (%d) and %d bytes", r.Chunk, os.Getpagesize(), int64(MaxChunk))
	}
	if r.binary == "" {
		// Started as selfExe's, the binary we run; argv[0] names it so
		// that --recover and a later run know the holders as
		// cro-exporter's.
		bin, err := selfExe()
		if err != nil {
			return r, fmt.Errorf("holder binary: %w", err)
		}
		r.binary = bin
		r.argv0 = "cro-exporter"
		if exe, err := os.Executable(); err == nil && isCroExporter(exe) {
			r.argv0 = exe
		}
	} else {
		abs, err := filepath.Abs(r.binary)
		if err != nil {
			return r, fmt.Errorf("holder binary %s: %w", r.binary, err)
		}
		if !isCroExporter(abs) {
			return r, fmt.Errorf("holder binary %s: its name must end in cro-exporter, which is how holders are recognized", r.binary)
		}
		r.binary, r.argv0 = abs, abs
	}
	return r, nil
}

// ownerOf is dir made absolute with its symlinks resolved, so that two
// spellings of one state dir mark holders alike.
func ownerOf(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// isCroExporter tells whether argv0 (or an executable's path) names a
// cro-exporter binary: its base name ends in "cro-exporter".
func isCroExporter(argv0 string) bool {
	// Linux marks a replaced binary " (deleted)"; Windows names it .exe.
	base := filepath.Base(strings.TrimSuffix(argv0, " (deleted)"))
	return strings.HasSuffix(strings.TrimSuffix(base, ".exe"), "cro-exporter")
}

// resolvePath is path made absolute with its symlinks resolved, as ownerOf
// makes it, also when path, or its end, does not exist yet: the part that
// exists is resolved and the rest appended.
func resolvePath(path string) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		resolved, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
