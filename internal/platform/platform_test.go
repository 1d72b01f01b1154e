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
// code of one operating system imports this one.
func TestAnotherGOOSStopsWithOneMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("short: builds the whole module for another GOOS")
	}
	const message = "cro-exporter builds for Linux only: set GOOS=linux"
	// One GOOS: on a fresh machine each builds its standard library first.
	for _, goos := range []string{"windows"} {
		t.Run(goos, func(t *testing.T) {
			cmd := exec.Command("go", "build", "./...")
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("GOOS=%s go build ./... passed, want it to stop with %q", goos, message)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 2 || lines[0] != "# github.com/cro-exporter/cro-exporter/internal/platform" || !strings.Contains(lines[1], message) {
				t.Errorf("GOOS=%s go build ./... said:\n%s\nwant only internal/platform's %q", goos, out, message)
			}
		})
	}
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
