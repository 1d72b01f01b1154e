package holder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/google/go-cmp/cmp"
)

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
	skipShort(t, "runs real holder processes")
	a := testConfig(t)
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
