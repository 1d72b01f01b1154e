package controller

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"testing"
)

// Helpers the tests of several files share.

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// privateDir is a fresh dir of ours with mode 0700: t.TempDir() makes 0777
// less the umask.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o700))
	return dir
}

// discard is a logger for tests that expect no warning.
func discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// textLogger logs as text to w.
func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// loadLogged loads a from dir, failing the test on an error, and returns
// what Load logged, as JSON.
func loadLogged(t *testing.T, a *Averages, dir string) *bytes.Buffer {
	t.Helper()
	var log bytes.Buffer
	if err := a.Load(dir, loadedAt, slog.New(slog.NewJSONHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	return &log
}
