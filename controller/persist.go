package controller

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/statefile"
)

// averagesFile is the name of the averages' state file in the state dir.
const averagesFile = "averages.json"

// fileVersion is the version of the state file's format.
const fileVersion = 1

// diskUsage names how disk usage is measured, as the state file records it:
// df's used / (used + available). Files without it measured (size -
// available) / size, which counts the blocks reserved for root as used.
const diskUsage = "used/(used+avail)"

// averagesJSON is the state file's format.
type averagesJSON struct {
	Version   int                           `json:"version"`
	Resources map[host.Resource]averageJSON `json:"resources"`
	// DiskUsage is how the disk's average and periods were measured.
	DiskUsage string `json:"disk_usage,omitempty"`
	// Periods are the audit periods of percentile objectives.
	Periods map[host.Resource]periodsJSON `json:"periods,omitempty"`
}

// averageJSON is one resource's average in the state file. Window is the
// window its weight was kept over; files before it have none.
type averageJSON struct {
	Value  float64   `json:"value"`
	Weight float64   `json:"weight"`
	Last   time.Time `json:"last,omitzero"`
	Window string    `json:"window,omitempty"`
}

// periodsJSON is one resource's audit periods in the state file. Means is
// the ring, two bytes per period, and Bursts its bits, in 64-bit words,
// little-endian; JSON has both in base64.
type periodsJSON struct {
	Period string    `json:"period"`
	Closed int64     `json:"closed"`
	Open   int64     `json:"open"`
	Sum    float64   `json:"sum"`
	Until  time.Time `json:"until,omitzero"`
	Means  []byte    `json:"means"`
	Bursts []byte    `json:"bursts"`
	// Subperiod is the sub-period whose means' max is a period's value,
	// absent where a period's value is its mean, with the one in progress
	// (SubOpen), its usage-seconds (SubSum) and the open period's highest
	// sub-period mean so far (Best). A version without them refuses a
	// file that has them (the decoder takes no unknown field): it would
	// read maxes as means.
	Subperiod string  `json:"subperiod,omitempty"`
	SubOpen   int64   `json:"sub_open,omitempty"`
	SubSum    float64 `json:"sub_sum,omitempty"`
	Best      uint16  `json:"best,omitempty"`
}

// CheckStateDir makes sure dir can hold the state, and that what it holds is
// ours. An existing dir must be a directory, not a symlink, owned by our
// effective uid, with no permission for group or others; it is never
// changed, and the error says what is wrong and how to fix it. With write,
// a missing dir is created with mode 0700 and a file must be writable in
// it (probe); without (a dry run, which writes nothing), a missing dir is fine. The
// CLI calls it before opening any listener, so that a bad --state.dir fails
// at once rather than at the first save.
func CheckStateDir(dir string, write bool) error {
	if _, err := os.Lstat(filepath.Clean(dir)); errors.Is(err, fs.ErrNotExist) {
		if !write {
			return nil
		}
		if err := statefile.MkdirAll(dir); err != nil {
			return fmt.Errorf("state dir %s is not usable: %w", dir, err)
		}
	}
	if err := statefile.CheckDir(dir); err != nil {
		return fmt.Errorf("state dir %w", err)
	}
	if !write {
		return nil
	}
	if err := probe(dir); err != nil {
		return fmt.Errorf("state dir %s is not usable: %w", dir, err)
	}
	return nil
}

// probe writes a file of a few bytes in dir, syncs it and removes it. A
// file must be written, not only created: a full filesystem still takes an
// empty file, and the start would fail later, at the lock's pid.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	_, err = f.WriteString("cro-exporter\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
}

// save writes the averages to averagesFile in dir so that neither a crash nor
// a power cut leaves it half written: into a temporary file in the same dir,
// synced, renamed over the old file, and the dir synced to keep the rename.
func (a *Averages) save(dir string) error {
	file := averagesJSON{Version: fileVersion, Resources: make(map[host.Resource]averageJSON, len(a.avg)), DiskUsage: diskUsage}
	for r, avg := range a.avg {
		file.Resources[r] = averageJSON{Value: avg.value, Weight: avg.weight, Last: avg.last.UTC(), Window: a.objectives[r].Window.String()}
	}
	for r, p := range a.periods {
		if file.Periods == nil {
			file.Periods = make(map[host.Resource]periodsJSON, len(a.periods))
		}
		means := make([]byte, 0, 2*len(p.means))
		for _, m := range p.means {
			means = binary.LittleEndian.AppendUint16(means, m)
		}
		bursts := make([]byte, 0, 8*len(p.bursts))
		for _, b := range p.bursts {
			bursts = binary.LittleEndian.AppendUint64(bursts, b)
		}
		f := periodsJSON{Period: p.length.String(), Closed: p.closed, Open: p.open, Sum: p.sum, Until: p.until.UTC(), Means: means, Bursts: bursts}
		if p.sub > 0 {
			f.Subperiod, f.SubOpen, f.SubSum, f.Best = p.sub.String(), p.subOpen, p.subSum, p.best
		}
		file.Periods[r] = f
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
	aside, err := statefile.Load(path, now, a.restorer(logger))
	if err == nil {
		return nil
	}
	a.fresh()
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
	if err := statefile.ParseFile(path, a.restorer(logger)); err != nil {
		a.fresh()
		logger.Warn("Averages state file is not usable; starting afresh and leaving it as it is",
			"file", path, "err", err)
	}
}

// fresh starts every average and every resource's audit periods afresh.
func (a *Averages) fresh() {
	a.avg = freshAverages()
	for r, p := range a.periods {
		a.periods[r] = newSubPeriods(p.length, p.sub, a.objectives[r].Window)
	}
}

// restorer returns what replaces the averages and the audit periods with
// those of a state file's content, or leaves them as they are and says why
// the content is not valid. Audit periods saved for another period,
// sub-period or window, or ahead of their last sample, start afresh, and
// are logged: they would count other periods. So do the disk's average and
// periods measured another way than diskUsage: they would hold the disk at
// another figure.
func (a *Averages) restorer(logger *slog.Logger) func(data []byte) error {
	return func(data []byte) error {
		var file averagesJSON
		if err := statefile.Decode(data, fileVersion, &file); err != nil {
			return err
		}
		avgs, err := parseAverages(file)
		if err != nil {
			return err
		}
		for r, avg := range avgs {
			if saved := file.Resources[r].Window; saved != "" {
				w, err := time.ParseDuration(saved)
				if err != nil || w <= 0 {
					return fmt.Errorf("%s: window %s is not a duration", r, statefile.Quote(saved))
				}
				avg.weight = sameHistory(avg.weight, w, a.objectives[r].Window)
				avgs[r] = avg
			}
		}
		restored := make(map[host.Resource]*periods, len(a.periods))
		for r, p := range a.periods {
			f, ok := file.Periods[r]
			if !ok {
				restored[r] = p
				continue
			}
			saved, err := parsePeriods(f, p.length, p.sub, len(p.means))
			if err != nil {
				return fmt.Errorf("%s periods: %w", r, err)
			}
			if saved == nil {
				logger.Info("audit periods saved for another period, sub-period or window, or ahead of the clock; they start afresh",
					"resource", r, "saved_period", statefile.Quote(f.Period), "saved_subperiod", statefile.Quote(f.Subperiod))
				saved = p
			}
			restored[r] = saved
		}
		if file.DiskUsage != diskUsage {
			logger.Info("the disk's average and periods were saved measured another way than df's used / (used + avail); they start afresh",
				"saved_as", statefile.Quote(file.DiskUsage))
			avgs[host.Disk] = average{}
			if p, ok := a.periods[host.Disk]; ok {
				restored[host.Disk] = newSubPeriods(p.length, p.sub, a.objectives[host.Disk].Window)
			}
		}
		a.avg, a.periods = avgs, restored
		return nil
	}
}

// sameHistory is the weight that, over window to, stands for the history
// that weight stands for over window from: a weight is a share of the
// decay kernel, 1 - exp(-history/tau), and tau is half the window. Kept
// as it is, a weight saved over a minute would count as a day's history
// over a 30-day window.
func sameHistory(weight float64, from, to time.Duration) float64 {
	if from == to {
		return weight
	}
	return -math.Expm1(math.Log1p(-weight) * from.Seconds() / to.Seconds())
}

// parseAverages checks a state file's averages, returning one for every
// resource; a resource the file lacks starts fresh.
func parseAverages(file averagesJSON) (map[host.Resource]average, error) {
	avgs := make(map[host.Resource]average, len(host.Resources))
	for _, r := range host.Resources {
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
	for r := range file.Periods {
		if _, ok := avgs[r]; !ok {
			return nil, fmt.Errorf("periods of unknown resource %s", statefile.Quote(string(r)))
		}
	}
	return avgs, nil
}

// parsePeriods checks one resource's saved audit periods: nil, nil when
// they were saved for another period length, sub-period or count, or run
// ahead of their last sample.
func parsePeriods(f periodsJSON, length, sub time.Duration, n int) (*periods, error) {
	saved, err := time.ParseDuration(f.Period)
	savedSub, subErr := time.Duration(0), error(nil)
	if f.Subperiod != "" {
		savedSub, subErr = time.ParseDuration(f.Subperiod)
	}
	switch {
	case err != nil || saved <= 0:
		return nil, fmt.Errorf("period %s is not a duration", statefile.Quote(f.Period))
	case subErr != nil || savedSub < 0 || f.Subperiod != "" && savedSub == 0:
		return nil, fmt.Errorf("subperiod %s is not a duration", statefile.Quote(f.Subperiod))
	case savedSub == 0 && (f.SubOpen != 0 || f.SubSum != 0 || f.Best != 0):
		return nil, fmt.Errorf("sub-period figures without a subperiod")
	case savedSub > 0 && !(f.SubSum >= 0 && f.SubSum <= savedSub.Seconds()):
		return nil, fmt.Errorf("sub_sum %v is not within 0 and %v usage-seconds", f.SubSum, savedSub.Seconds())
	case savedSub > 0 && !f.Until.IsZero() && f.SubOpen != f.Until.UnixNano()/int64(savedSub):
		// The sub-period in progress is always the last sample's.
		return nil, fmt.Errorf("sub_open %d is not the sub-period of until", f.SubOpen)
	case saved != length || savedSub != sub || len(f.Means) != 2*n:
		return nil, nil
	case len(f.Bursts) != 8*((n+63)/64):
		return nil, fmt.Errorf("%d bytes of bursts for %d periods", len(f.Bursts), n)
	case f.Closed < 0 || f.Open < 0:
		return nil, fmt.Errorf("period numbers %d and %d are negative", f.Closed, f.Open)
	case !(f.Sum >= 0 && f.Sum <= length.Seconds()):
		return nil, fmt.Errorf("sum %v is not within 0 and %v usage-seconds", f.Sum, length.Seconds())
	case f.Until.IsZero() && (f.Sum != 0 || f.Closed != 0 || f.Open != 0):
		return nil, fmt.Errorf("sum %v and period numbers %d and %d without a time they run until", f.Sum, f.Closed, f.Open)
	}
	// Periods closed far ahead of the last sample (a clock stepped back
	// by more than a window) would hold the window's periods back from
	// closing: they start afresh.
	if at := f.Until.UnixNano() / int64(length); !f.Until.IsZero() && (f.Open > at+1 || f.Closed > at+int64(n)) {
		return nil, nil
	}
	p := newSubPeriods(length, sub, time.Duration(n)*length)
	p.closed, p.open, p.sum, p.until = f.Closed, f.Open, f.Sum, f.Until
	p.subOpen, p.subSum, p.best = f.SubOpen, f.SubSum, f.Best
	for i := range p.means {
		p.means[i] = binary.LittleEndian.Uint16(f.Means[2*i:])
	}
	for i := range p.bursts {
		p.bursts[i] = binary.LittleEndian.Uint64(f.Bursts[8*i:])
	}
	// Periods closed at or ahead of the last sample's (saved after the
	// clock stepped back, by a version that kept them) would hold the
	// window's periods back from closing: they are forgotten.
	if at := p.number(p.until); !p.until.IsZero() && p.closed >= at {
		p.forget(at)
	}
	return p, nil
}
