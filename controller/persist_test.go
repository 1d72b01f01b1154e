package controller

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/statefile/statefiletest"
)

// loadedAt is the time Load is told it runs at, naming moved-aside files.
var loadedAt = time.Unix(1767225600, 0)

// traceAverages feeds every resource samples, step apart, from from to until.
func traceAverages(t *testing.T, a *Averages, rng *rand.Rand, from, until time.Time) time.Time {
	t.Helper()
	var last time.Time
	for _, r := range host.Resources {
		last = feed(t, a, r, from, until, time.Minute, load(rng))
	}
	return last
}

func TestSaveThenLoadRestoresTheAverages(t *testing.T) {
	dir := t.TempDir()
	saved := NewAverages(window, maxSpan)
	traceAverages(t, saved, rand.New(rand.NewPCG(1, 2)), start, start.Add(3*day))
	// A resource never sampled has a zero time, which the file leaves out.
	saved.avg[host.Disk] = average{}
	if err := saved.save(dir); err != nil {
		t.Fatal(err)
	}

	loaded := NewAverages(window, maxSpan)
	if err := loaded.Load(dir, loadedAt, discard()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(saved, loaded, allowAverages); diff != "" {
		t.Errorf("loaded averages (-saved +loaded):\n%s", diff)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{averagesFile}, names); diff != "" {
		t.Errorf("state dir after a save (-want +got):\n%s", diff)
	}
}

func TestSaveAndLoadHalfwayThroughATraceChangesNothing(t *testing.T) {
	dir := t.TempDir()
	halfway := start.Add(5 * day)
	end := start.Add(10 * day)

	uninterrupted := NewAverages(window, maxSpan)
	rng := rand.New(rand.NewPCG(5, 6))
	traceAverages(t, uninterrupted, rng, start, halfway)
	traceAverages(t, uninterrupted, rng, halfway, end)

	before := NewAverages(window, maxSpan)
	rng = rand.New(rand.NewPCG(5, 6))
	traceAverages(t, before, rng, start, halfway)
	if err := before.save(dir); err != nil {
		t.Fatal(err)
	}
	restarted := NewAverages(window, maxSpan)
	if err := restarted.Load(dir, loadedAt, discard()); err != nil {
		t.Fatal(err)
	}
	traceAverages(t, restarted, rng, halfway, end)

	// Exactly: JSON keeps every bit of a float64 and every nanosecond.
	if diff := cmp.Diff(uninterrupted, restarted, allowAverages); diff != "" {
		t.Errorf("averages (-uninterrupted +restarted):\n%s", diff)
	}
}

func TestLoadOfNoFileIsAFreshStartWithoutWarning(t *testing.T) {
	var log bytes.Buffer
	a := NewAverages(window, maxSpan)
	if err := a.Load(t.TempDir(), loadedAt, textLogger(&log)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(NewAverages(window, maxSpan), a, allowAverages); diff != "" {
		t.Errorf("averages (-fresh +loaded):\n%s", diff)
	}
	if log.Len() > 0 {
		t.Errorf("logged %q", log.String())
	}
}

func TestLoadOfAnUnusableFileMovesItAsideWithAWarning(t *testing.T) {
	const last = `"last": "2025-01-01T00:00:00Z"`
	valid := func(r string) string { return `"` + r + `": {"value": 0.3, "weight": 0.5, ` + last + `}` }
	for _, tc := range []struct {
		name    string
		content string
		problem string
	}{
		{"an empty file is unusable", ``, "unexpected end of JSON input"},
		{"a truncated file is unusable", `{"version": 1, "resources": {` + valid("cpu"), "unexpected end of JSON input"},
		{"a file of something else is unusable", `not json at all`, "invalid character"},
		{"data after the object makes a file unusable", `{"version": 1} {}`, "after top-level value"},
		{"a misspelt field makes a file unusable", `{"version": 1, "resources": {"cpu": {"valeu": 0.3}}}`, `unknown field "valeu"`},
		{"a file without a version is unusable", `{"resources": {` + valid("cpu") + `}}`, "version 0, want 1"},
		{"a file of a later version is unusable", `{"version": 2, "resources": {}, "window": "30d"}`, "version 2, want 1"},
		{"a value above 1 makes a file unusable", `{"version": 1, "resources": {"memory": {"value": 1.5, "weight": 0.5, ` + last + `}}}`, "memory: value 1.5 is not a ratio"},
		{"a negative weight makes a file unusable", `{"version": 1, "resources": {"disk": {"value": 0.5, "weight": -0.1, ` + last + `}}}`, "disk: weight -0.1 is not between 0 and 1"},
		{"a number too large for a float makes a file unusable", `{"version": 1, "resources": {"cpu": {"value": 1e999}}}`, "cannot unmarshal number 1e999"},
		{"an unknown resource makes a file unusable", `{"version": 1, "resources": {` + valid("cpu") + `, ` + valid("gpu") + `}}`, `unknown resource "gpu"`},
		{"a weight without a time makes a file unusable", `{"version": 1, "resources": {"cpu": {"value": 0.3, "weight": 0.5}}}`, "cpu: weight 0.5 without a last sample time"},
		{"a window that is not a duration makes a file unusable", `{"version": 1, "resources": {"cpu": {"value": 0.3, "weight": 0.5, ` + last + `, "window": "a month"}}}`, `cpu: window "a month" is not a duration`},
		{"a window of 0 makes a file unusable", `{"version": 1, "resources": {"cpu": {"value": 0.3, "weight": 0.5, ` + last + `, "window": "0s"}}}`, `cpu: window "0s" is not a duration`},
		{"a bad time makes a file unusable", `{"version": 1, "resources": {"cpu": {"value": 0.3, "weight": 0.5, "last": "yesterday"}}}`, `cannot parse "yesterday"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, averagesFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			a := NewAverages(window, maxSpan)
			log := loadLogged(t, a, dir)

			if diff := cmp.Diff(NewAverages(window, maxSpan), a, allowAverages); diff != "" {
				t.Errorf("averages (-fresh +loaded):\n%s", diff)
			}
			var warning struct{ Level, File, Err string }
			if err := json.Unmarshal(log.Bytes(), &warning); err != nil {
				t.Fatalf("log %q: %v", log.String(), err)
			}
			if warning.Level != "WARN" || warning.File != path || !strings.Contains(warning.Err, tc.problem) {
				t.Errorf("logged %+v, want a warning naming %s and %q", warning, path, tc.problem)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s is still there (%v)", path, err)
			}
			moved, err := os.ReadFile(path + ".corrupt-1767225600")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.content, string(moved)); diff != "" {
				t.Errorf("moved-aside file (-original +moved):\n%s", diff)
			}
		})
	}
}

func TestLoadNeverOverwritesAnEarlierCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, averagesFile)
	for i, content := range []string{"first", "second", "third"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := NewAverages(window, maxSpan).Load(dir, loadedAt, discard()); err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
	}
	for name, want := range map[string]string{
		averagesFile + ".corrupt-1767225600":   "first",
		averagesFile + ".corrupt-1767225600.1": "second",
		averagesFile + ".corrupt-1767225600.2": "third",
	} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v), want %q", name, got, err, want)
		}
	}
}

func TestLoadOfAnUnreadableFileMovesItAside(t *testing.T) {
	dir := t.TempDir()
	// A directory in the file's place cannot be read as one, even by root.
	if err := os.Mkdir(filepath.Join(dir, averagesFile), 0o700); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := NewAverages(window, maxSpan).Load(dir, loadedAt, textLogger(&log)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "is a directory") {
		t.Errorf("log %q does not name the problem", log.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, averagesFile+".corrupt-1767225600")); err != nil || !fi.IsDir() {
		t.Errorf("the directory was not moved aside: %v", err)
	}
}

func TestCheckStateDir(t *testing.T) {
	tmp := t.TempDir()
	// t.TempDir() makes 0777 less the umask; a state dir must be 0700.
	if err := os.Chmod(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		dir     string
		wantErr string
	}{
		{"an existing dir is usable", tmp, ""},
		{"a missing dir is created", filepath.Join(tmp, "a", "b"), ""},
		{"a regular file is not a dir", file, "state dir " + file + " is not a directory (it is a regular file)"},
		{"a dir under a regular file cannot be created", filepath.Join(file, "sub"), "state dir " + filepath.Join(file, "sub") + " is not usable: lstat " + filepath.Join(file, "sub") + ": not a directory"},
		{"a missing dir under a missing one is created", filepath.Join(tmp, "c", "d"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotErr string
			if err := CheckStateDir(tc.dir, true); err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Fatalf("error (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" {
				return
			}
			if probes, _ := filepath.Glob(filepath.Join(tc.dir, ".probe-*")); len(probes) > 0 {
				t.Errorf("left %v behind", probes)
			}
		})
	}
	fi, err := os.Stat(filepath.Join(tmp, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("created dir has mode %v, want 0700", got)
	}
}

func TestSaveToAnUnwritableDirFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "sub")
	err := NewAverages(window, maxSpan).save(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("save(%s) = %v, want an error naming it", dir, err)
	}
}

func TestDiskStateMeasuredTheOldWayStartsAfreshAndTheRestIsKept(t *testing.T) {
	dir := privateDir(t)
	o := Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute}
	saved := NewAverages(window, maxSpan)
	saved.SetObjective(host.Disk, o)
	for _, r := range host.Resources {
		for i := range 200 {
			saved.update(r, minute.Add(time.Duration(i)*15*time.Second), 0.5)
		}
	}
	if err := saved.save(dir); err != nil {
		t.Fatal(err)
	}
	// The file as versions before disk_usage wrote it: the same, without
	// the field.
	path := filepath.Join(dir, averagesFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if file["disk_usage"] != diskUsage {
		t.Fatalf("saved disk_usage %v, want %q", file["disk_usage"], diskUsage)
	}
	for _, old := range []any{nil, "(size-avail)/size"} {
		if old == nil {
			delete(file, "disk_usage")
		} else {
			file["disk_usage"] = old
		}
		data, _ = json.Marshal(file)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded := NewAverages(window, maxSpan)
		loaded.SetObjective(host.Disk, o)
		log := loadLogged(t, loaded, dir)
		for _, r := range []host.Resource{host.CPU, host.Memory} {
			if got, want := loaded.Value(r), saved.Value(r); got != want || loaded.History(r) == 0 {
				t.Errorf("saved as %v: %s average %v (history %v), want %v kept", old, r, got, loaded.History(r), want)
			}
		}
		if loaded.History(host.Disk) != 0 || loaded.Value(host.Disk) != 0 {
			t.Errorf("saved as %v: disk average %v with %v of history, want a fresh one", old, loaded.Value(host.Disk), loaded.History(host.Disk))
		}
		if p := loaded.periods[host.Disk]; p.closed != 0 || slices.Max(p.means) != 0 {
			t.Errorf("saved as %v: disk periods restored (closed %d), want fresh ones", old, p.closed)
		}
		if n := strings.Count(log.String(), "start afresh"); n != 1 || !strings.Contains(log.String(), "used / (used + avail)") {
			t.Errorf("saved as %v: want one log line that the disk starts afresh, got %q", old, log.String())
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("saved as %v: the state file is gone: %v", old, err)
		}
	}
}

func TestARestartWithAnotherWindowKeepsTheHistoryItHad(t *testing.T) {
	dir := privateDir(t)
	short := NewAverages(time.Minute, 30*time.Second)
	for i := range 5 {
		for _, r := range host.Resources {
			short.update(r, minute.Add(time.Duration(i)*3*time.Second), 0.5)
		}
	}
	had := short.History(host.CPU)
	if had < 12*time.Second-time.Millisecond || had > 12*time.Second {
		t.Fatalf("history after 12 s of samples: %v", had)
	}
	if err := short.save(dir); err != nil {
		t.Fatal(err)
	}
	long := NewAverages(30*24*time.Hour, 30*time.Second)
	if err := long.Load(dir, loadedAt, discard()); err != nil {
		t.Fatal(err)
	}
	for _, r := range host.Resources {
		if got := long.History(r); got < had-time.Millisecond || got > had+time.Millisecond || long.Value(r) != 0.5 {
			t.Errorf("%s after a restart with a 30d window: history %v, value %v; want the %v it had, 0.5", r, got, long.Value(r), had)
		}
	}
	// A week over a 30-day window is more than a 1-hour window holds.
	week := NewAverages(30*24*time.Hour, 2*time.Minute)
	for i := range 7 * 24 * 60 {
		week.update(host.CPU, minute.Add(time.Duration(i)*time.Minute), 0.5)
	}
	if err := week.save(dir); err != nil {
		t.Fatal(err)
	}
	hour := NewAverages(time.Hour, 2*time.Minute)
	if err := hour.Load(dir, loadedAt, discard()); err != nil {
		t.Fatal(err)
	}
	if got := hour.History(host.CPU); got != time.Hour {
		t.Errorf("a week's history over a 1h window: %v, want the whole window", got)
	}
}

func TestSaveThenLoadRestoresTheAuditPeriods(t *testing.T) {
	dir := privateDir(t)
	o := Objective{Quantile: 0.95, Window: time.Hour, Period: time.Minute}
	saved := NewAverages(window, maxSpan)
	saved.SetObjective(host.CPU, o)
	for i := range 200 {
		saved.update(host.CPU, minute.Add(time.Duration(i)*15*time.Second), float64(i%7)/10)
	}
	saved.periods[host.CPU].setBurst(saved.periods[host.CPU].closed, true)
	loaded := saveAndLoad(t, dir, saved, o)
	allow := cmp.AllowUnexported(Averages{}, average{}, periods{}, schedule{}, audited{})
	if diff := cmp.Diff(saved, loaded, allow); diff != "" {
		t.Errorf("loaded (-saved +loaded):\n%s", diff)
	}

	// Saved for another period, they start afresh, and say so.
	other := NewAverages(window, maxSpan)
	other.SetObjective(host.CPU, Objective{Quantile: 0.95, Window: time.Hour, Period: 30 * time.Second})
	log := loadLogged(t, other, dir)
	if p := other.periods[host.CPU]; p.closed != 0 || slices.Max(p.means) != 0 {
		t.Errorf("periods saved for 1m restored as 30s ones: closed %d", p.closed)
	}
	if !strings.Contains(log.String(), "start afresh") || other.Value(host.CPU) != saved.Value(host.CPU) {
		t.Errorf("want the averages restored and the periods started afresh with a log line; log %q", log.String())
	}

	// Run ahead of their last sample by more than a window (the clock
	// stepped back far), they start afresh too.
	saved.periods[host.CPU].closed += 200
	if err := saved.save(dir); err != nil {
		t.Fatal(err)
	}
	ahead := NewAverages(window, maxSpan)
	ahead.SetObjective(host.CPU, o)
	log = loadLogged(t, ahead, dir)
	if p := ahead.periods[host.CPU]; p.closed != 0 || !strings.Contains(log.String(), "start afresh") {
		t.Errorf("periods a window ahead of their last sample restored: closed %d; log %q", p.closed, log.String())
	}
}

// saveAndLoad saves averages into dir and loads them into new averages
// with CPU objective o.
func saveAndLoad(t *testing.T, dir string, saved *Averages, o Objective) *Averages {
	t.Helper()
	if err := saved.save(dir); err != nil {
		t.Fatal(err)
	}
	loaded := NewAverages(window, maxSpan)
	loaded.SetObjective(host.CPU, o)
	if err := loaded.Load(dir, loadedAt, discard()); err != nil {
		t.Fatal(err)
	}
	return loaded
}

func TestLoadOfUnusableAuditPeriodsMovesTheFileAside(t *testing.T) {
	o := Objective{Quantile: 0.95, Window: 2 * time.Minute, Period: time.Minute}
	good := func() periodsJSON {
		k := minute.Unix() / 60
		return periodsJSON{Period: "1m0s", Closed: k - 1, Open: k, Sum: 3, Until: minute, Means: make([]byte, 4), Bursts: make([]byte, 8)}
	}
	for _, tc := range []struct {
		name    string
		change  func(*periodsJSON)
		problem string
	}{
		{"a period that is not a duration", func(f *periodsJSON) { f.Period = "soon" }, `period \"soon\" is not a duration`},
		{"a negative period number", func(f *periodsJSON) { f.Closed = -1 }, "negative"},
		{"a sum above the period", func(f *periodsJSON) { f.Sum = 61 }, "sum 61 is not within"},
		{"a sum without a time", func(f *periodsJSON) { f.Until = time.Time{} }, "without a time"},
		{"bursts of the wrong length", func(f *periodsJSON) { f.Bursts = f.Bursts[:4] }, "4 bytes of bursts for 2 periods"},
		{"a sub-period in progress that is not the last sample's", func(f *periodsJSON) {
			f.Subperiod, f.SubOpen = "30s", minute.Add(time.Minute).UnixNano()/int64(30*time.Second)
		}, "sub_open"},
		{"a sub-period sum above the sub-period", func(f *periodsJSON) {
			f.Subperiod, f.SubOpen, f.SubSum = "30s", minute.UnixNano()/int64(30*time.Second), 31
		}, "sub_sum 31 is not within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(&f)
			file := averagesJSON{Version: fileVersion, Resources: map[host.Resource]averageJSON{}, Periods: map[host.Resource]periodsJSON{host.CPU: f}}
			data, err := json.Marshal(file)
			if err != nil {
				t.Fatal(err)
			}
			dir := privateDir(t)
			if err := os.WriteFile(filepath.Join(dir, averagesFile), data, 0o600); err != nil {
				t.Fatal(err)
			}
			a := NewAverages(window, maxSpan)
			a.SetObjective(host.CPU, o)
			log := loadLogged(t, a, dir)
			if !strings.Contains(log.String(), tc.problem) {
				t.Errorf("log %q does not name %q", log.String(), tc.problem)
			}
			if _, err := os.Stat(filepath.Join(dir, averagesFile+".corrupt-1767225600")); err != nil {
				t.Errorf("not moved aside: %v", err)
			}
		})
	}
}

// savedAverages is the content of a valid averages file and the averages
// it holds.
func savedAverages(t *testing.T) ([]byte, *Averages) {
	t.Helper()
	dir := t.TempDir()
	a := NewAverages(window, maxSpan)
	traceAverages(t, a, rand.New(rand.NewPCG(3, 4)), start, start.Add(day))
	must(t, a.save(dir))
	data, err := os.ReadFile(filepath.Join(dir, averagesFile))
	must(t, err)
	return data, a
}

// fileType is the type of the file at path, not following a symlink.
func fileType(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	return st.Mode & unix.S_IFMT
}

func TestLoadMovesAsideAStateFileThatIsNotOurs(t *testing.T) {
	valid, _ := savedAverages(t)
	for _, p := range statefiletest.Plants() {
		t.Run(p.Name, func(t *testing.T) {
			dir := privateDir(t)
			path := filepath.Join(dir, averagesFile)
			outside := p.Make(t, path, valid)
			var log bytes.Buffer
			a := NewAverages(window, maxSpan)
			var err error
			statefiletest.Within(t, 5*time.Second, func() {
				err = a.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil)))
			})
			must(t, err)
			if diff := cmp.Diff(NewAverages(window, maxSpan), a, allowAverages); diff != "" {
				t.Errorf("averages (-fresh +loaded):\n%s", diff)
			}
			var warning struct {
				Level, File, Err string
				MovedTo          string `json:"moved_to"`
			}
			json.Unmarshal(log.Bytes(), &warning)
			aside := path + ".corrupt-1767225600"
			if warning.Level != "WARN" || warning.File != path || !strings.Contains(warning.Err, p.Want) || warning.MovedTo != aside {
				t.Errorf("logged %s; want a warning that %s %s, moved to %s", log.String(), path, p.Want, aside)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("%s is still there (%v)", path, err)
			}
			if got := fileType(t, aside); got != p.Type {
				t.Errorf("moved aside a file of type %#o, want %#o", got, p.Type)
			}
			if outside != "" {
				if got, _ := os.ReadFile(outside); !bytes.Equal(got, valid) {
					t.Errorf("the file outside became %q", got)
				}
			}
		})
	}
}

// longValues are averages files holding a long string from the file in
// each place an error could quote it.
func longValues() map[string]string {
	resources := func(cpu string) string {
		return `{"version": 1, "resources": {"cpu": ` + cpu + `}}`
	}
	long := strings.Repeat("A", 900_000)
	return map[string]string{
		"a 10 MB string":  resources(`{"value": 0.3, "weight": 0.5, "last": "` + strings.Repeat("A", 10<<20) + `"}`),
		"a long time":     resources(`{"value": 0.3, "weight": 0.5, "last": "` + long + `"}`),
		"a long field":    resources(`{"value": 0.3, "` + long + `": 1}`),
		"a long resource": `{"version": 1, "resources": {"` + long + `": {"value": 0.3}}}`,
		"a long number":   resources(`{"value": 1` + strings.Repeat("0", 900_000) + `}`),
	}
}

func TestLoadWarnsOfALongStringInShort(t *testing.T) {
	for name, content := range longValues() {
		t.Run(name, func(t *testing.T) {
			dir := privateDir(t)
			path := filepath.Join(dir, averagesFile)
			must(t, os.WriteFile(path, []byte(content), 0o600))
			log := loadLogged(t, NewAverages(window, maxSpan), dir)
			if log.Len() >= 1024 || !strings.Contains(log.String(), `"level":"WARN"`) {
				t.Errorf("logged %d bytes, want one warning under 1 KiB: %.2000s", log.Len(), log.String())
			}
			if moved, err := os.ReadFile(path + ".corrupt-1767225600"); err != nil || string(moved) != content {
				t.Errorf("moved aside %d bytes (%v), want the %d of the file", len(moved), err, len(content))
			}
		})
	}
}

func TestSaveNeverWritesThroughAHardLinkedTemporary(t *testing.T) {
	// Root may link a file of its own even with fs.protected_hardlinks=1.
	dir := privateDir(t)
	outside := filepath.Join(t.TempDir(), "outside")
	must(t, os.WriteFile(outside, []byte("root's own file"), 0o600))
	must(t, os.Link(outside, filepath.Join(dir, averagesFile+".tmp")))
	_, a := savedAverages(t)
	must(t, a.save(dir))
	if got, _ := os.ReadFile(outside); string(got) != "root's own file" {
		t.Errorf("the file outside became %q", got)
	}
	loaded := NewAverages(window, maxSpan)
	must(t, loaded.Load(dir, loadedAt, discard()))
	if diff := cmp.Diff(a, loaded, allowAverages); diff != "" {
		t.Errorf("loaded averages (-saved +loaded):\n%s", diff)
	}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestReadRestoresTheAveragesAndChangesNothing(t *testing.T) {
	valid, saved := savedAverages(t)
	dir := privateDir(t)
	path := filepath.Join(dir, averagesFile)
	must(t, os.WriteFile(path, valid, 0o600))
	var log bytes.Buffer
	a := NewAverages(window, maxSpan)
	a.Read(dir, textLogger(&log))
	if diff := cmp.Diff(saved, a, allowAverages); diff != "" {
		t.Errorf("read averages (-saved +read):\n%s", diff)
	}
	if log.Len() > 0 {
		t.Errorf("logged %s", log.String())
	}

	missing := filepath.Join(t.TempDir(), "missing")
	a.Read(missing, textLogger(&log))
	if diff := cmp.Diff(saved, a, allowAverages); diff != "" {
		t.Errorf("a missing file changed the averages (-before +after):\n%s", diff)
	}
	if _, err := os.Lstat(missing); !os.IsNotExist(err) || log.Len() > 0 {
		t.Errorf("a missing state dir: %v, logged %q", err, log.String())
	}
}

func TestReadLeavesAnUnusableFileAsItIs(t *testing.T) {
	valid, _ := savedAverages(t)
	plants := statefiletest.Plants()
	for name, content := range longValues() {
		plants = append(plants, statefiletest.Plant{Name: name, Make: func(t *testing.T, path string, _ []byte) string {
			must(t, os.WriteFile(path, []byte(content), 0o600))
			return ""
		}, Type: unix.S_IFREG})
	}
	plants = append(plants, statefiletest.Plant{Name: "a corrupt file", Make: func(t *testing.T, path string, _ []byte) string {
		must(t, os.WriteFile(path, []byte(`{"version": 1,`), 0o600))
		return ""
	}, Want: "unexpected end of JSON input", Type: unix.S_IFREG})
	for _, p := range plants {
		t.Run(p.Name, func(t *testing.T) {
			dir := privateDir(t)
			path := filepath.Join(dir, averagesFile)
			p.Make(t, path, valid)
			var before unix.Stat_t
			must(t, unix.Lstat(path, &before))
			var log bytes.Buffer
			a := NewAverages(window, maxSpan)
			statefiletest.Within(t, 5*time.Second, func() { a.Read(dir, slog.New(slog.NewJSONHandler(&log, nil))) })
			if diff := cmp.Diff(NewAverages(window, maxSpan), a, allowAverages); diff != "" {
				t.Errorf("averages (-fresh +read):\n%s", diff)
			}
			var warning struct{ Level, File, Err string }
			json.Unmarshal(log.Bytes(), &warning)
			if log.Len() >= 1024 || warning.Level != "WARN" || warning.File != path || !strings.Contains(warning.Err, p.Want) {
				t.Errorf("logged %.2000s; want one warning under 1 KiB that %s %s", log.String(), path, p.Want)
			}
			var after unix.Stat_t
			must(t, unix.Lstat(path, &after))
			if after.Ino != before.Ino || after.Size != before.Size || after.Mtim != before.Mtim {
				t.Errorf("%s changed", path)
			}
			if diff := cmp.Diff([]string{averagesFile}, dirNames(t, dir)); diff != "" {
				t.Errorf("state dir (-want +got):\n%s", diff)
			}
		})
	}
}

// statOf is what path names, or the symlink itself when it dangles.
func statOf(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		must(t, unix.Lstat(path, &st))
	}
	return st
}

// The rules themselves are statefile.CheckDir's, tested there; these cases
// check that CheckStateDir applies them before it creates or probes
// anything, with and without write.
func TestCheckStateDirRefusesADirThatIsNotOurs(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T) string
		want string // after the dir's name
	}{
		{"mode 1777", statefiletest.ModeDir(os.ModeSticky | 0o777), "has mode 1777; cro-exporter needs 0700 (chmod 700 "},
		{"a dangling symlink", func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "state")
			must(t, os.Symlink(filepath.Join(t.TempDir(), "missing"), link))
			return link
		}, "is a symlink"},
		{"a regular file", statefiletest.RegularFile, "not a directory"},
	} {
		for _, write := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: "", false: " (read only)"}[write], func(t *testing.T) {
				dir := tc.make(t)
				before := statOf(t, dir)
				err := CheckStateDir(dir, write)
				if err == nil || !strings.HasPrefix(err.Error(), "state dir "+dir+" ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("CheckStateDir = %v; want an error naming %s and %q", err, dir, tc.want)
				}
				after := statOf(t, dir)
				if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
					t.Errorf("CheckStateDir changed the dir's mode or owner")
				}
				if after.Mode&unix.S_IFMT == unix.S_IFDIR && len(dirNames(t, dir)) > 0 {
					t.Errorf("CheckStateDir wrote %v", dirNames(t, dir))
				}
			})
		}
	}
}

func TestCheckStateDirReadOnlyCreatesNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "a", "state")
	if err := CheckStateDir(missing, false); err != nil {
		t.Errorf("a missing dir: %v", err)
	}
	if _, err := os.Lstat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("created %s (%v)", filepath.Dir(missing), err)
	}
	dir := privateDir(t)
	if err := CheckStateDir(dir, false); err != nil {
		t.Errorf("a dir of ours: %v", err)
	}
	if names := dirNames(t, dir); len(names) > 0 {
		t.Errorf("wrote %v", names)
	}
}
