package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// averagesFile is the name of the averages' state file in the state dir.
const averagesFile = "averages.json"

// fileVersion is the version of the state file's format.
const fileVersion = 1

// averagesJSON is the state file's format.
type averagesJSON struct {
	Version   int                                `json:"version"`
	Resources map[collector.Resource]averageJSON `json:"resources"`
}

// averageJSON is one resource's average in the state file.
type averageJSON struct {
	Value  float64   `json:"value"`
	Weight float64   `json:"weight"`
	Last   time.Time `json:"last,omitzero"`
}

// CheckStateDir makes sure dir can hold the state, and that what it holds is
// ours. An existing dir must be a directory, not a symlink, owned by our
// effective uid, with no permission for group or others; it is never
// changed, and the error says what is wrong and how to fix it. With write,
// a missing dir is created with mode 0700 and a file must be creatable in
// it; without (a dry run, which writes nothing), a missing dir is fine. The
// CLI calls it before opening any listener, so that a bad --state.dir fails
// at once rather than at the first save.
func CheckStateDir(dir string, write bool) error {
	if _, err := os.Lstat(filepath.Clean(dir)); errors.Is(err, fs.ErrNotExist) {
		if !write {
			return nil
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("state dir %s is not usable: %w", dir, err)
		}
	}
	if err := statefile.CheckDir(dir); err != nil {
		return fmt.Errorf("state dir %w", err)
	}
	if !write {
		return nil
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("state dir %s is not usable: %w", dir, err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("state dir %s is not usable: %w", dir, err)
	}
	return nil
}

// save writes the averages to averagesFile in dir so that neither a crash nor
// a power cut leaves it half written: into a temporary file in the same dir,
// synced, renamed over the old file, and the dir synced to keep the rename.
func (a *Averages) save(dir string) error {
	file := averagesJSON{Version: fileVersion, Resources: make(map[collector.Resource]averageJSON, len(a.avg))}
	for r, avg := range a.avg {
		file.Resources[r] = averageJSON{Value: avg.value, Weight: avg.weight, Last: avg.last.UTC()}
	}
	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return fmt.Errorf("saving averages: %w", err)
	}
	if err := statefile.Write(filepath.Join(dir, averagesFile), append(data, '\n')); err != nil {
		return fmt.Errorf("saving averages: %w", err)
	}
	return nil
}

// Load restores the averages from averagesFile in dir. A missing file is a
// fresh start. A file that cannot be read, is not a regular file of ours
// (statefile.Open) or is not valid is logged as a warning, renamed to
// averagesFile.corrupt-<unix time of now> (never deleted, so it can be
// looked at), and the averages start fresh. Load returns an error only if
// such a file cannot be moved aside: the next save would overwrite it.
func (a *Averages) Load(dir string, now time.Time, logger *slog.Logger) error {
	path := filepath.Join(dir, averagesFile)
	aside, err := statefile.Load(path, now, a.restore)
	if err == nil {
		return nil
	}
	a.avg = freshAverages()
	if aside == "" {
		return fmt.Errorf("loading averages: %w", err)
	}
	logger.Warn("Averages state file is not usable; moved it aside and starting afresh",
		"file", path, "err", err, "moved_to", aside)
	return nil
}

// Read restores the averages from averagesFile in dir like Load, but
// changes nothing on disk, for a dry run beside a daemon that owns the
// file: one it cannot use is logged as a warning and left where it is, and
// the averages start fresh: nothing about the file stops a dry run.
func (a *Averages) Read(dir string, logger *slog.Logger) {
	path := filepath.Join(dir, averagesFile)
	if err := statefile.ParseFile(path, a.restore); err != nil {
		a.avg = freshAverages()
		logger.Warn("Averages state file is not usable; starting afresh and leaving it as it is",
			"file", path, "err", err)
	}
}

// restore replaces the averages with those of a state file's content, or
// leaves them as they are and says why the content is not valid.
func (a *Averages) restore(data []byte) error {
	avgs, err := parseAverages(data)
	if err != nil {
		return err
	}
	a.avg = avgs
	return nil
}

// parseAverages parses and checks a state file, returning an average for
// every resource; a resource the file lacks starts fresh.
func parseAverages(data []byte) (map[collector.Resource]average, error) {
	var file averagesJSON
	if err := statefile.Decode(data, fileVersion, &file); err != nil {
		return nil, err
	}
	avgs := make(map[collector.Resource]average, len(collector.Resources))
	for _, r := range collector.Resources {
		f := file.Resources[r]
		switch {
		case !isRatio(f.Value):
			return nil, fmt.Errorf("%s: value %v is not a ratio between 0 and 1", r, f.Value)
		case !isRatio(f.Weight):
			return nil, fmt.Errorf("%s: weight %v is not between 0 and 1", r, f.Weight)
		case f.Last.IsZero() && f.Weight != 0:
			return nil, fmt.Errorf("%s: weight %v without a last sample time", r, f.Weight)
		}
		avgs[r] = average{value: f.Value, weight: f.Weight, last: f.Last}
	}
	for r := range file.Resources {
		if _, ok := avgs[r]; !ok {
			return nil, fmt.Errorf("unknown resource %s", statefile.Quote(string(r)))
		}
	}
	return avgs, nil
}
