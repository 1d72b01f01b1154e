package statefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirProblemWantsADirOfOursWithMode0700(t *testing.T) {
	for _, tc := range []struct {
		mode uint32
		want string
	}{
		{0o700, ""},
		{0o750, "has mode 0750, not 0700"},
		{0o1777, "has mode 1777, not 0700"},
		// No group or other bits, but not what cro-exporter makes: a
		// setgid dir hands its group to what is made in it.
		{0o2700, "has mode 2700, not 0700"},
		{0o500, "has mode 0500, not 0700"},
	} {
		dir := filepath.Join(t.TempDir(), "d")
		must(t, os.Mkdir(dir, 0o700))
		must(t, unix.Chmod(dir, tc.mode))
		var st unix.Stat_t
		must(t, unix.Lstat(dir, &st))
		if got := DirProblem(&st); got != tc.want {
			t.Errorf("DirProblem of a %04o dir = %q, want %q", tc.mode, got, tc.want)
		}
		if err := CheckDir(dir); (err == nil) != (tc.want == "") {
			t.Errorf("CheckDir of a %04o dir = %v, want it to agree with DirProblem", tc.mode, err)
		}
	}
}

func TestFileProblemWantsARegularFileOfOursWithOneLink(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	for _, tc := range []struct {
		name string
		make func(path string) error
		want string
	}{
		{"a regular file of ours, whatever its mode", func(path string) error { return os.WriteFile(path, nil, 0o644) }, ""},
		{"a symlink", func(path string) error { return os.Symlink(file, path) }, "is a symlink"},
		{"a dir", func(path string) error { return os.Mkdir(path, 0o700) }, "is not a regular file"},
		{"a hard link", func(path string) error { return os.Link(file, path) }, "has 2 links, not one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			must(t, tc.make(path))
			var st unix.Stat_t
			must(t, unix.Lstat(path, &st))
			if got := FileProblem(&st); got != tc.want {
				t.Errorf("FileProblem = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWriteNewMakesADurableNewFileAndNeverReplacesOne(t *testing.T) {
	dirPath := t.TempDir()
	dir, err := os.Open(dirPath)
	must(t, err)
	defer dir.Close()
	must(t, WriteNew(dir, dirPath, "marker", []byte("owner\n")))
	path := filepath.Join(dirPath, "marker")
	if got, err := os.ReadFile(path); err != nil || string(got) != "owner\n" {
		t.Errorf("the new file holds %q, %v", got, err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode() != 0o600 {
		t.Errorf("the new file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	// An existing name, a symlink's included, is never written through.
	outside := filepath.Join(t.TempDir(), "outside")
	must(t, os.WriteFile(outside, []byte("keep"), 0o600))
	must(t, os.Symlink(outside, filepath.Join(dirPath, "link")))
	for _, name := range []string{"marker", "link"} {
		if err := WriteNew(dir, dirPath, name, []byte("new")); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("WriteNew over %s = %v, want an error naming it", name, err)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != "owner\n" {
		t.Errorf("the first file became %q", got)
	}
	if got, _ := os.ReadFile(outside); string(got) != "keep" {
		t.Errorf("the symlink's target became %q", got)
	}
}
