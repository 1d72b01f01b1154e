package regfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tempDir is t.TempDir for Wine: Go 1.26's os.RemoveAll, which t.TempDir
// cleans up with, deletes through FileDispositionInformationEx, which Wine
// 8.0 answers with "Invalid function"; os.Remove, through DeleteFile,
// works. Real Windows needs none of this.
func tempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "regfile")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var paths []string
		filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			paths = append(paths, path)
			return err
		})
		// Deepest first: each directory after what it holds.
		slices.Reverse(paths)
		for _, p := range paths {
			if err := os.Remove(p); err != nil {
				t.Errorf("cleaning up: %v", err)
			}
		}
	})
	return dir
}

// ReadFile returns a small regular file and refuses anything else at once,
// without waiting on it or reading it whole: a directory, a device, a file
// over the cap.
func TestReadFileRefusesAnythingButASmallRegularFile(t *testing.T) {
	dir := tempDir(t)
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(path("small"), []byte("ok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("large"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{path("small"), ""},
		{dir, dir + " is a directory, not a regular file"},
		{path("large"), path("large") + " is larger than 1024 bytes"},
		{"NUL", "NUL is a device, not a regular file"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, err = ReadFile(tc.path, 1024)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile still blocks after 5 s")
			}
			switch {
			case tc.want == "" && (err != nil || string(data) != "ok\n"):
				t.Errorf("ReadFile = %q, %v; want \"ok\\n\"", data, err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("ReadFile = %d bytes, %v; want %q", len(data), err, tc.want)
			}
		})
	}
}

// A file that is not regular is refused before it is opened.
func TestOpenRefusesBeforeOpening(t *testing.T) {
	checked := 0
	_, err := Open("NUL", os.O_RDONLY, func(fi os.FileInfo) error {
		checked++
		return Check("NUL", fi, 1)
	})
	if err == nil || !strings.Contains(err.Error(), "is a device") || checked != 1 {
		t.Errorf("Open = %v after %d checks; want it refused at the first, before opening", err, checked)
	}
}
