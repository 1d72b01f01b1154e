package wintest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/windows"
)

// TempDir is t.TempDir for Wine: TempDirIn of the default temp dir.
func TempDir(t *testing.T) string {
	t.Helper()
	return TempDirIn(t, "")
}

// TempDirIn makes a new dir in parent ("" is the default temp dir, as for
// os.MkdirTemp) and removes it when the test ends. Not t.TempDir: Go's
// os.RemoveAll, which t.TempDir cleans up with, deletes through
// FileDispositionInformationEx, which Wine 8.0 answers with "Invalid
// function"; os.Remove, through DeleteFile, works. Real Windows needs none
// of this. What the test removed itself is not missed.
func TempDirIn(t *testing.T, parent string) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "cro-exporter-test")
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
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cleaning up: %v", err)
			}
		}
	})
	return dir
}

// Must fails the test at once on err.
func Must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// LetEveryoneWrite gives path a protected DACL granting us full control
// and Everyone (S-1-1-0) write access (0x116: write data, append, write
// extended attributes and attributes): what cro-exporter must refuse as
// not ours. It skips the test where the volume cannot keep a DACL.
func LetEveryoneWrite(t *testing.T, path string) {
	t.Helper()
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	Must(t, err)
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;" + u.User.Sid.String() + ")(A;;0x116;;;WD)")
	Must(t, err)
	dacl, _, err := sd.DACL()
	Must(t, err)
	if err := windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		t.Skipf("SetNamedSecurityInfo: %v", err)
	}
}
