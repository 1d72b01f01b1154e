package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitFile = "../../examples/cro-exporter.service"

// unitService is the [Service] section of the systemd unit: each key's
// values, in order.
func unitService(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section := ""
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]" && line != "" && !strings.HasPrefix(line, "#"):
			k, v, _ := strings.Cut(line, "=")
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// TestTheUnitRecoversWhateverEndedTheDaemon: the unit's ExecStopPost= runs
// the binary of ExecStart= with --recover, in the same environment
// (EnvironmentFile= applies to both), and systemd-analyze accepts it;
// run as systemd runs it after kill -9 of the daemon, it leaves no holder
// and no fill file.
func TestTheUnitRecoversWhateverEndedTheDaemon(t *testing.T) {
	unit := unitService(t)
	start, stopPost := unit["ExecStart"], unit["ExecStopPost"]
	if len(start) != 1 || len(stopPost) != 1 || len(unit["EnvironmentFile"]) == 0 {
		t.Fatalf("ExecStart=%q ExecStopPost=%q EnvironmentFile=%q: want one of each, and the settings file", start, stopPost, unit["EnvironmentFile"])
	}
	argv := strings.Fields(strings.TrimPrefix(stopPost[0], "-"))
	if len(argv) == 0 || argv[0] != strings.Fields(start[0])[0] || !slices.Equal(argv[1:], []string{"--recover"}) {
		t.Fatalf("ExecStopPost=%s: want the binary of ExecStart=%s with --recover", stopPost[0], start[0])
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		unit := filepath.Join(t.TempDir(), "cro-exporter.service")
		text, err := os.ReadFile(unitFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(text), argv[0], binaryPath(t))), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}

	h := newHost(t)
	e := h.start("--target.memory="+memoryTarget(t, 256*mib), "--target.cpu=0", "--target.disk=0.5")
	h.waitHeld(e, 0)
	if err := e.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	e.exited <- <-e.exited // reaped; kept for the cleanup
	if len(fillFiles(t, h.fillDir())) == 0 {
		t.Fatal("no fill file left by kill -9: nothing to recover")
	}
	// As systemd runs it: the settings in the environment, no flags.
	cmd := exec.Command(binaryPath(t), argv[1:]...)
	cmd.Env = append(os.Environ(), "CRO_STATE_DIR="+h.state, "CRO_DISK_PATH="+h.disk)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ExecStopPost= after kill -9: %v\n%s", err, out)
	}
	t.Logf("ExecStopPost= said:\n%s", out)
	if left := h.holders(); len(left) > 0 {
		t.Errorf("holders left after ExecStopPost=: %v", left)
	}
	if files := fillFiles(t, h.fillDir()); len(files) > 0 {
		t.Errorf("fill files left after ExecStopPost=: %v", sortedNames(files))
	}
}
