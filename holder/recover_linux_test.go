package holder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

// reportText is the report as a person reads it.
func reportText(t *testing.T, rep Report) string {
	t.Helper()
	var b strings.Builder
	if _, err := rep.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// daemonName is an argv[0] that makes a holder parent pass for the daemon.
func daemonName(t *testing.T) string { return filepath.Join(t.TempDir(), "cro-exporter") }

// stateFiles writes the averages and two temporary files a crash left into
// the state dir, and returns the averages' content.
func stateFiles(t *testing.T, dir string) string {
	t.Helper()
	const averages = `{"version": 1, "resources": {}}` + "\n"
	for name, content := range map[string]string{
		"averages.json":       averages,
		"averages.json.tmp":   "half",
		registryFile + ".tmp": "half",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return averages
}

func TestRecoverStopsTheDaemonItsHoldersAndFillAndKeepsTheAverages(t *testing.T) {
	skipShort(t, "runs real holder processes")
	for _, onTerm := range []string{"exit", "close"} {
		t.Run("a daemon that on SIGTERM does "+onTerm, func(t *testing.T) {
			cfg := testConfig(t)
			spec := parentSpec(cfg)
			spec.OnTerm = onTerm
			p := startParent(t, daemonName(t), spec)
			averages := stateFiles(t, cfg.StateDir)

			rep, err := Recover(cfg)
			if err != nil {
				t.Fatal(err)
			}
			text := reportText(t, rep)
			t.Logf("report:\n%s", text)
			if rep.Failed() {
				t.Errorf("Recover failed: %v", rep.Failures)
			}
			pid := p.cmd.Process.Pid
			if rep.Daemon != pid || !strings.Contains(text, fmt.Sprintf("Stopped the cro-exporter daemon (pid %d).", pid)) {
				t.Errorf("the report does not name the daemon pid %d", pid)
			}
			select {
			case err := <-p.exited:
				p.exited <- err
			case <-time.After(5 * time.Second):
				t.Errorf("the daemon still runs after Recover")
			}
			if left := waitGone(p.holders, 0); len(left) > 0 {
				t.Errorf("holders still run after Recover: %v", left)
			}
			if names := fillNames(t, cfg.FillDir); len(names) > 0 {
				t.Errorf("fill files after Recover: %v", names)
			}
			// Whether the daemon or Recover removed them, the report says so.
			if rep.FillFiles == 0 || rep.FillBytes < 2*mib || !strings.Contains(text, "fill file") {
				t.Errorf("the report does not count the fill files: %+v", rep)
			}
			if len(rep.Holders) != len(p.holders) {
				t.Errorf("the report lists %d holders stopped, want the daemon's %d: %+v", len(rep.Holders), len(p.holders), rep.Holders)
			}
			if got, err := os.ReadFile(filepath.Join(cfg.StateDir, "averages.json")); err != nil || string(got) != averages {
				t.Errorf("averages after Recover: %q, %v; want them kept", got, err)
			}
			wantTemp := []string{filepath.Join(cfg.StateDir, "averages.json.tmp")}
			if onTerm == "exit" {
				// A daemon that closes saves its registry through that name.
				wantTemp = append(wantTemp, filepath.Join(cfg.StateDir, registryFile+".tmp"))
			}
			if diff := cmp.Diff(wantTemp, rep.TempFiles); diff != "" {
				t.Errorf("temporary files removed (-want +got):\n%s", diff)
			}
			for _, tmp := range wantTemp {
				if _, err := os.Lstat(tmp); err == nil {
					t.Errorf("%s is still there", tmp)
				}
			}
			if entries := registryOf(t, cfg.StateDir); len(entries) != 0 {
				t.Errorf("registry after Recover: %+v", entries)
			}

			again, err := Recover(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if text := reportText(t, again); !again.Nothing() || again.Failed() || !strings.HasPrefix(text, "Nothing to recover") {
				t.Errorf("a second Recover: %+v\n%s", again, text)
			}
			// And a daemon can start again.
			openTest(t, cfg)
		})
	}
}

// startDeafDaemon starts a holder parent for cfg named as a daemon that
// ignores SIGTERM, which --recover then kills after daemonTermTimeout, cut
// to half a second until the test ends.
func startDeafDaemon(t *testing.T, cfg Config) *testParent {
	t.Helper()
	saved := daemonTermTimeout
	t.Cleanup(func() { daemonTermTimeout = saved })
	daemonTermTimeout = 500 * time.Millisecond
	spec := parentSpec(cfg)
	spec.OnTerm = "ignore"
	return startParent(t, daemonName(t), spec)
}

func TestRecoverKillsADaemonThatIgnoresSIGTERM(t *testing.T) {
	cfg := liveConfig(t)
	p := startDeafDaemon(t, cfg)
	rep, err := Recover(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || rep.Daemon != p.cmd.Process.Pid {
		t.Errorf("Recover = %+v, want the daemon stopped", rep)
	}
	if left := waitGone(p.holders, time.Second); len(left) > 0 {
		t.Errorf("holders still run after Recover: %v", left)
	}
	if names := fillNames(t, cfg.FillDir); len(names) > 0 {
		t.Errorf("fill files after Recover: %v", names)
	}
}

func TestRecoverKillsRegisteredMarkedAndOrphanedHolders(t *testing.T) {
	cfg := liveConfig(t)
	l := startLeftovers(t, cfg)
	registered, marked, orphan, otherOwner := l.registered, l.marked, l.orphan, l.otherOwner
	rep, err := Recover(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if left := waitGone([]procID{registered, marked, orphan}, 0); len(left) > 0 {
		t.Errorf("Recover left holders running: %v", left)
	}
	if !otherOwner.alive() {
		t.Errorf("Recover killed a holder of another state dir whose parent lives")
	}
	want := []StoppedHolder{{registered.pid, kindMemory}, {marked.pid, kindMemory}, {orphan.pid, kindMemory}}
	got := map[StoppedHolder]bool{}
	for _, h := range rep.Holders {
		got[h] = true
	}
	for _, h := range want {
		if !got[h] {
			t.Errorf("the report lacks %+v: %+v", h, rep.Holders)
		}
	}
	text := reportText(t, rep)
	if !strings.Contains(text, fmt.Sprintf("memory (pid %d)", registered.pid)) ||
		!strings.Contains(text, fmt.Sprintf("memory holder (pid %d) belongs to the running process pid %d", otherOwner.pid, os.Getpid())) {
		t.Errorf("report:\n%s", text)
	}
	if rep.Failed() {
		t.Errorf("Recover failed: %v", rep.Failures)
	}
}

func TestRecoverLeavesALockHolderThatIsNotACroExporterAlone(t *testing.T) {
	cfg := testConfig(t)
	spec := parentSpec(cfg)
	spec.Load = Load{}
	// Its argv[0] and executable are holder.test: not a cro-exporter.
	p := startParent(t, "holder.test", spec)
	rep, err := Recover(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || rep.Daemon != 0 {
		t.Errorf("Recover = %+v, want a failure and no daemon stopped", rep)
	}
	text := reportText(t, rep)
	if !strings.Contains(text, fmt.Sprintf("pid %d", p.cmd.Process.Pid)) || !strings.Contains(text, "is not a cro-exporter") {
		t.Errorf("the report does not say why pid %d was left alone:\n%s", p.cmd.Process.Pid, text)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-p.exited:
		t.Errorf("Recover stopped a process that is not a cro-exporter: %v", err)
		p.exited <- err
	default:
	}
}

func TestRecoverWithNothingToDoSaysSoAndCreatesNothing(t *testing.T) {
	root := t.TempDir()
	cfg := Config{StateDir: filepath.Join(root, "state"), FillDir: filepath.Join(root, "fill")}
	for range 2 {
		rep, err := Recover(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Nothing() || rep.Failed() {
			t.Errorf("Recover = %+v, want nothing done", rep)
		}
		if text := reportText(t, rep); !strings.HasPrefix(text, "Nothing to recover") {
			t.Errorf("report:\n%s", text)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("Recover created %v", entries)
	}
}

func TestRecoverNamesWhatItCouldNotRemove(t *testing.T) {
	cfg := testConfig(t)
	// A fill dir that is a symlink is refused, never followed.
	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "fill-000001"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, cfg.FillDir); err != nil {
		t.Fatal(err)
	}
	rep, err := Recover(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() || !strings.Contains(reportText(t, rep), cfg.FillDir) {
		t.Errorf("Recover = %+v, want a failure naming %s", rep, cfg.FillDir)
	}
	if _, err := os.Stat(filepath.Join(target, "fill-000001")); err != nil {
		t.Errorf("Recover followed the symlink: %v", err)
	}
}

func TestReportText(t *testing.T) {
	rep := Report{
		Daemon:    1234,
		Holders:   []StoppedHolder{{1240, kindMemory}, {1241, kindCPU}},
		FillDir:   "/srv/.cro-fill",
		FillFiles: 3,
		FillBytes: 3<<30 + 512<<20,
		TempFiles: []string{"/var/lib/cro-exporter/holders.json.tmp"},
		Notes:     []string{"pid 99 in the holder registry is another process now (started at tick 5, not 4); left alone"},
		Failures:  []string{"fill files in /srv/.cro-fill: unlinkat fill-000004: permission denied"},
	}
	want := `Stopped the cro-exporter daemon (pid 1234).
Stopped 2 holder processes: memory (pid 1240), cpu (pid 1241).
Removed 3 fill files from /srv/.cro-fill, freeing 3.5 GiB (3758096384 bytes).
Removed 1 temporary file: /var/lib/cro-exporter/holders.json.tmp.
Note: pid 99 in the holder registry is another process now (started at tick 5, not 4); left alone.
Could not remove: fill files in /srv/.cro-fill: unlinkat fill-000004: permission denied.
`
	if diff := cmp.Diff(want, reportText(t, rep)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if !rep.Failed() || rep.Nothing() {
		t.Errorf("Failed() = %v, Nothing() = %v", rep.Failed(), rep.Nothing())
	}
}

// waitRegistered waits until the registry in dir lists n holders (the
// manager saves it in the background) and returns them.
func waitRegistered(t *testing.T, dir string, n int) []holderEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var entries []holderEntry
		if data, err := os.ReadFile(filepath.Join(dir, registryFile)); err == nil {
			entries, _ = parseRegistry(data)
		}
		if len(entries) == n {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry lists %+v, want %d holders", entries, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A registry is only a file: an entry in it that names the live holder of
// another cro-exporter (marked with another state dir) gets that holder no
// signal, from --recover or from a daemon's start.
func TestARegistryEntryNamingAnotherDaemonsHolderIsNeverKilled(t *testing.T) {
	a := liveConfig(t)
	a.FillDir = ""
	m := openTest(t, a)
	mustFill(t, m.Apply(Load{Memory: 8 * mib}))
	entries := waitRegistered(t, a.StateDir, 1)
	holder := procID{entries[0].Pid, entries[0].StartTime}
	ownerA, err := ownerOf(a.StateDir)
	mustFill(t, err)

	b := testConfig(t)
	mustFill(t, saveRegistry(b.StateDir, entries))
	rep, err := Recover(b)
	mustFill(t, err)
	time.Sleep(100 * time.Millisecond)
	if !holder.alive() {
		t.Fatalf("Recover of another state dir killed the holder (pid %d) its registry named", holder.pid)
	}
	if len(rep.Holders) != 0 || rep.Failed() {
		t.Errorf("Recover reported %+v", rep)
	}
	note := fmt.Sprintf("pid %d in the holder registry is a memory holder of the cro-exporter with state dir %q; left alone", holder.pid, ownerA)
	if !strings.Contains(reportText(t, rep), note) {
		t.Errorf("the report does not say %q:\n%s", note, reportText(t, rep))
	}

	mustFill(t, saveRegistry(b.StateDir, entries))
	mb := openTest(t, b)
	mustFill(t, mb.Close())
	time.Sleep(100 * time.Millisecond)
	if !holder.alive() {
		t.Errorf("a daemon's start on another state dir killed the holder (pid %d) its registry named", holder.pid)
	}
	if u, err := m.Held(); err != nil || u.Holders.At(host.Memory) != 1 {
		t.Errorf("the owner's Usage = %+v, %v; want its holder", u, err)
	}
}

// --recover of one state dir never touches the fill dir of another
// cro-exporter, even one it is given: it says whose it is.
func TestRecoverLeavesTheFillDirOfAnotherStateDirAlone(t *testing.T) {
	a := testConfig(t)
	m := openTest(t, a)
	mustFill(t, m.Apply(Load{Disk: 3 * mib}))
	want := waitFillBytes(t, a.FillDir, 3*mib)
	ownerA, err := ownerOf(a.StateDir)
	mustFill(t, err)

	b := testConfig(t)
	b.FillDir = a.FillDir
	rep, err := Recover(b)
	mustFill(t, err)
	if rep.FillFiles != 0 || rep.Failed() {
		t.Errorf("Recover = %+v, want the fill dir left alone", rep)
	}
	note := fmt.Sprintf("fill dir %s belongs to the cro-exporter with state dir %q; left it alone", a.FillDir, ownerA)
	if !strings.Contains(reportText(t, rep), note) {
		t.Errorf("the report does not say %q:\n%s", note, reportText(t, rep))
	}
	if diff := cmp.Diff(want, fillSizes(t, a.FillDir)); diff != "" {
		t.Errorf("the other's fill files (-before +after):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(a.FillDir, fillMarker)); err != nil {
		t.Errorf("the other's marker: %v", err)
	}
	if u, err := m.Held(); err != nil || u.Holders.At(host.Disk) != len(want) {
		t.Errorf("the other's Usage = %+v, %v; want its %d files", u, err, len(want))
	}
}

// A fill dir with no marker is not ours: --recover says so and leaves it,
// and what is in it, alone.
func TestRecoverLeavesAFillDirWithoutAMarkerAlone(t *testing.T) {
	cfg := testConfig(t)
	mustFill(t, os.Mkdir(cfg.FillDir, 0o700))
	writeTestFile(t, filepath.Join(cfg.FillDir, "fill-000001"), mib, false)
	rep, err := Recover(cfg)
	mustFill(t, err)
	note := fmt.Sprintf("fill dir %s has no .cro-exporter marker, so cro-exporter did not make it; left it alone", cfg.FillDir)
	if rep.FillFiles != 0 || rep.Failed() || !strings.Contains(reportText(t, rep), note) {
		t.Errorf("Recover = %+v, want the fill dir left alone with a note %q", rep, note)
	}
	if diff := cmp.Diff(map[string]int64{"fill-000001": mib}, fillSizes(t, cfg.FillDir)); diff != "" {
		t.Errorf("fill files (-before +after):\n%s", diff)
	}
}

// Two --recover runs at once on one state dir go one after the other: the
// first stops the daemon and claims what it held, the second finds nothing
// and claims nothing; neither takes the other for the daemon.
func TestTwoConcurrentRecoversClaimEachThingOnce(t *testing.T) {
	skipShort(t, "runs real holder processes")
	// A daemon that ignores SIGTERM keeps the first run busy long enough
	// for the second to start meanwhile.
	cfg := testConfig(t)
	p := startDeafDaemon(t, cfg)
	fillBefore := len(fillNames(t, cfg.FillDir))

	var reps [2]Report
	var wg sync.WaitGroup
	for i := range reps {
		wg.Go(func() {
			if i == 1 {
				time.Sleep(100 * time.Millisecond)
			}
			rep, err := Recover(cfg)
			if err != nil {
				t.Error(err)
			}
			reps[i] = rep
		})
	}
	wg.Wait()

	daemons, nothing, fillFiles := 0, 0, 0
	claimed := map[int]int{}
	for i, rep := range reps {
		t.Logf("report %d:\n%s", i, reportText(t, rep))
		if rep.Failed() {
			t.Errorf("report %d failed: %v", i, rep.Failures)
		}
		if rep.Daemon == p.cmd.Process.Pid {
			daemons++
		}
		if rep.Nothing() {
			nothing++
		}
		for _, h := range rep.Holders {
			claimed[h.Pid]++
		}
		fillFiles += rep.FillFiles
	}
	if daemons != 1 || nothing != 1 {
		t.Errorf("%d reports stopped the daemon and %d found nothing, want one each", daemons, nothing)
	}
	for _, h := range p.holders {
		if claimed[h.pid] != 1 {
			t.Errorf("holder pid %d claimed by %d reports, want 1", h.pid, claimed[h.pid])
		}
	}
	if fillFiles != fillBefore {
		t.Errorf("the reports claim %d fill files, the daemon held %d", fillFiles, fillBefore)
	}
	if left := waitGone(p.holders, time.Second); len(left) > 0 {
		t.Errorf("holders still run: %v", left)
	}
	if names := fillNames(t, cfg.FillDir); len(names) > 0 {
		t.Errorf("fill files left: %v", names)
	}
}
