package holder

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	skipShort(t, "runs real holder processes")
	cfg := testConfig(t)
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
	skipShort(t, "runs real holder processes")
	cfg := testConfig(t)
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
