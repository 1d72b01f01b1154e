package platform

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A build for an operating system we have no code for stops at this
// package, with its one message, and nowhere deeper: every package with
// code of one operating system imports this one. Windows builds whole.
func TestAnotherGOOSStopsWithOneMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("short: builds the whole module for another GOOS")
	}
	build := func(goos string, pkgs ...string) (string, error) {
		cmd := exec.Command("go", append([]string{"build"}, pkgs...)...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Run("windows", func(t *testing.T) {
		if out, err := build("windows", "./..."); err != nil {
			t.Errorf("GOOS=windows go build ./...: %v\n%s", err, out)
		}
	})
	// Another GOOS builds internal/platform alone, which imports nothing:
	// no standard library to build first.
	t.Run("freebsd", func(t *testing.T) {
		const message = "cro-exporter builds for Linux and Windows only: set GOOS=linux or GOOS=windows"
		out, err := build("freebsd", "./internal/platform")
		if err == nil {
			t.Fatalf("GOOS=freebsd go build passed, want it to stop with %q", message)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || lines[0] != "# github.com/cro-exporter/cro-exporter/internal/platform" || !strings.Contains(lines[1], message) {
			t.Errorf("GOOS=freebsd go build said:\n%s\nwant only internal/platform's %q", out, message)
		}
	})
}

// Code of one operating system sits in files named for it, so that
// another operating system is new files beside them and not edits across
// the house. The benchmark, which compares cro-exporter with Linux tools,
// and the test helpers are Linux's alone.
func TestEachSystemsCodeSitsInItsFiles(t *testing.T) {
	suffixOf := map[string]string{
		`"golang.org/x/sys/unix"`:                 "_linux.go",
		`"github.com/prometheus/procfs"`:          "_linux.go",
		`"golang.org/x/sys/windows"`:              "_windows.go",
		`"golang.org/x/sys/windows/svc"`:          "_windows.go",
		`"golang.org/x/sys/windows/svc/eventlog"`: "_windows.go",
		`"golang.org/x/sys/windows/svc/mgr"`:      "_windows.go",
	}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || path == "../../cmd/cro-bench" || strings.HasSuffix(path, "test")):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if suffix, ok := suffixOf[imp.Path.Value]; ok && !strings.HasSuffix(path, suffix) {
				t.Errorf("%s imports %s: that system's code goes in a %s file", path, imp.Path.Value, suffix)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
