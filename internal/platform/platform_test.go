package platform

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A build for an operating system we have no code for stops at this
// package, with its one message, and nowhere deeper: every package with
// code of one operating system imports this one. Windows, ported as far as
// internal/host, gets through here and stops at notyet, with its one
// message, in every package not ported yet; the ported ones build.
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
	for _, tc := range []struct{ goos, pkg, guard, message string }{
		// Windows' standard library is built once, on a fresh machine, for
		// the whole module; another GOOS builds internal/platform alone,
		// which imports nothing.
		{"windows", "./...", "internal/platform/notyet", "cro-exporter is not ported to Windows yet beyond internal/host and internal/statefile: set GOOS=linux"},
		{"freebsd", "./internal/platform", "internal/platform", "cro-exporter builds for Linux only: set GOOS=linux"},
	} {
		t.Run(tc.goos, func(t *testing.T) {
			out, err := build(tc.goos, tc.pkg)
			if err == nil {
				t.Fatalf("GOOS=%s go build %s passed, want it to stop with %q", tc.goos, tc.pkg, tc.message)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || lines[0] != "# github.com/cro-exporter/cro-exporter/"+tc.guard || !strings.Contains(lines[1], tc.message) {
				t.Errorf("GOOS=%s go build %s said:\n%s\nwant only %s's %q", tc.goos, tc.pkg, out, tc.guard, tc.message)
			}
		})
	}
	t.Run("windows ported", func(t *testing.T) {
		if out, err := build("windows", "./internal/host", "./internal/regfile", "./internal/statefile", "./internal/winholder", "./internal/winservice"); err != nil {
			t.Errorf("GOOS=windows go build of the ported packages: %v\n%s", err, out)
		}
	})
}

// Code of one operating system sits in files named for it, so that
// another operating system is new files beside them and not edits across
// the house. The benchmark, which compares cro-exporter with Linux tools,
// and the test helpers are Linux's alone.
func TestLinuxCodeSitsInLinuxFiles(t *testing.T) {
	linuxOnly := []string{`"golang.org/x/sys/unix"`, `"github.com/prometheus/procfs"`}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".git" || path == "../../cmd/cro-bench" || strings.HasSuffix(path, "test")):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, "_linux.go"):
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if slices.Contains(linuxOnly, imp.Path.Value) {
				t.Errorf("%s imports %s: Linux's code goes in a _linux.go file", path, imp.Path.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
