package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/cro-exporter/cro-exporter/internal/wintest"
)

// The decision over an owner and a DACL, with made-up SIDs: Wine cannot
// make most of these (WINDOWS.md).
func TestSecurityProblem(t *testing.T) {
	const (
		me    = "S-1-5-21-1-2-3-1000"
		other = "S-1-5-21-1-2-3-1001"
		users = "S-1-5-32-545"
		full  = 0x1f01ff // FILE_ALL_ACCESS
		read  = 0x1200a9 // FILE_GENERIC_READ | FILE_EXECUTE
	)
	user := trust{user: me}
	admin := trust{user: me, admins: true}
	system := trust{user: sidSystem, admins: true}
	allow := func(sid string, mask uint32) ACE { return ACE{Type: aceAllowed, Mask: mask, SID: sid} }
	inheritOnly := func(a ACE) ACE {
		a.Flags = windows.OBJECT_INHERIT_ACE | windows.CONTAINER_INHERIT_ACE | windows.INHERIT_ONLY_ACE
		return a
	}
	for _, tc := range []struct {
		name string
		tr   trust
		sec  Security
		want string
	}{
		{"ours, owner alone", user, Security{Owner: me, ACEs: []ACE{allow(me, full)}}, ""},
		{"ours, empty DACL", user, Security{Owner: me}, ""},
		{"others may read", user, Security{Owner: me, ACEs: []ACE{allow(me, full), allow(users, read)}}, ""},
		{"another owner", user, Security{Owner: other, ACEs: []ACE{allow(me, full)}},
			"is owned by " + other + ", not by us (" + me + ")"},
		{"Administrators own it, we are not one", user, Security{Owner: sidAdministrators},
			"is owned by S-1-5-32-544, not by us (" + me + ")"},
		{"Administrators own it, we are one", admin, Security{Owner: sidAdministrators,
			ACEs: []ACE{allow(sidSystem, full), allow(sidAdministrators, full), allow(me, full)}}, ""},
		{"a service as SYSTEM", system, Security{Owner: sidSystem,
			ACEs: []ACE{allow(sidSystem, full), allow(sidAdministrators, full)}}, ""},
		{"SYSTEM may write, we are a user", user, Security{Owner: me, ACEs: []ACE{allow(sidSystem, full)}},
			"grants S-1-5-18 write access (ACE mask 0x1f01ff)"},
		{"null DACL", user, Security{Owner: me, NullDACL: true}, "has no DACL, which lets everyone write to it"},
		{"Users may add files (ProgramData's)", admin, Security{Owner: sidAdministrators,
			ACEs: []ACE{allow(sidAdministrators, full), allow(users, 0x116)}},
			"grants S-1-5-32-545 write access (ACE mask 0x116)"},
		{"Users may write what is made in it", user, Security{Owner: me,
			ACEs: []ACE{allow(me, full), inheritOnly(allow(users, windows.GENERIC_WRITE))}},
			"grants S-1-5-32-545 write access of what is made in it (ACE mask 0x40000000)"},
		{"CREATOR OWNER and OWNER RIGHTS are the owner", user, Security{Owner: me,
			ACEs: []ACE{inheritOnly(allow(sidCreatorOwner, windows.GENERIC_ALL)), allow(sidOwnerRights, full)}}, ""},
		{"only delete-child", user, Security{Owner: me, ACEs: []ACE{allow(other, fileDeleteChild)}},
			"grants " + other + " write access (ACE mask 0x40)"},
		{"only WRITE_DAC", user, Security{Owner: me, ACEs: []ACE{allow(other, windows.WRITE_DAC)}},
			"grants " + other + " write access (ACE mask 0x40000)"},
		{"a deny is ignored", user, Security{Owner: me, ACEs: []ACE{{Type: aceDenied, Mask: full, SID: users}, allow(me, full)}}, ""},
		{"an object ACE is not read", user, Security{Owner: me, ACEs: []ACE{{Type: 0x5, Mask: full}}},
			"has an ACE of type 5, which cro-exporter does not read"},
		{"a callback deny is ignored", user, Security{Owner: me, ACEs: []ACE{{Type: aceDeniedCallback, Mask: full}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sec.problem(tc.tr); got != tc.want {
				t.Errorf("problem = %q, want %q", got, tc.want)
			}
		})
	}
}

// What Wine shows of a dir and a file it made: logged (-v), and checked
// where Wine is known to agree with Windows (WINDOWS.md).
func TestFstatOfWhatWeMake(t *testing.T) {
	tr, err := us()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("us: %+v", tr)
	dir := wintest.TempDir(t)
	path := filepath.Join(dir, "state.json")
	wintest.Must(t, Write(path, []byte("{}")))
	for _, p := range []string{dir, path} {
		f, err := openNoFollow(p, os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Fstat(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: attributes %#x, links %d, size %d, type %d, owner %s, null DACL %v",
			p, st.Attributes, st.Links, st.Size, st.Type, st.Owner, st.NullDACL)
		for _, a := range st.ACEs {
			t.Logf("  ACE type %d flags %#x mask %#x %s", a.Type, a.Flags, a.Mask, a.SID)
		}
		if st.Owner != tr.user {
			t.Errorf("%s is owned by %s, want us (%s)", p, st.Owner, tr.user)
		}
		if st.Type != windows.FILE_TYPE_DISK {
			t.Errorf("%s: file type %d, want FILE_TYPE_DISK", p, st.Type)
		}
	}
	t.Logf("CheckDir: %v", CheckDir(dir))
	f, err := Open(path, os.O_RDONLY)
	t.Logf("Open: %v", err)
	if err == nil {
		f.Close()
	}
}

func TestWriteReplacesTheFileAndLeavesNoTemporary(t *testing.T) {
	dir := wintest.TempDir(t)
	path := filepath.Join(dir, "state.json")
	// A leftover temporary file is removed, not written through.
	wintest.Must(t, os.WriteFile(path+".tmp", []byte("leftover, longer than what is written"), 0o600))
	for _, content := range []string{"first", "second"} {
		wintest.Must(t, Write(path, []byte(content)))
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Errorf("after writing %q: %q, %v", content, got, err)
		}
	}
	if _, err := os.Lstat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	// Over a file another handle holds open, Write may fail (Wine refuses
	// even when the handle shares delete, as Open's does; WINDOWS.md), but
	// never leaves it half written or a temporary file behind; once the
	// handle is closed it works.
	for _, open := range []func(string) (*os.File, error){
		func(p string) (*os.File, error) { return Open(p, os.O_RDONLY) },
		os.Open,
	} {
		f, err := open(path)
		wintest.Must(t, err)
		err = Write(path, []byte("third"))
		t.Logf("Write over an open file: %v", err)
		if got, _ := os.ReadFile(path); string(got) != "second" && string(got) != "third" {
			t.Errorf("after writing over an open file: %q", got)
		}
		if _, err := os.Lstat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("temporary file left: %v", err)
		}
		f.Close()
		wintest.Must(t, Write(path, []byte("second")))
	}
}

// WriteNew creates, never overwrites.
func TestWriteNewIsExclusive(t *testing.T) {
	dir := wintest.TempDir(t)
	d, err := os.Open(dir)
	wintest.Must(t, err)
	defer d.Close()
	wintest.Must(t, WriteNew(d, dir, "marker", []byte("one\n")))
	if err := WriteNew(d, dir, "marker", []byte("two\n")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteNew over an existing file: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "marker")); string(got) != "one\n" {
		t.Errorf("marker holds %q", got)
	}
}

// Open returns a small regular file of ours and refuses anything else
// before reading it.
func TestOpenRefusesAnythingButASmallRegularFileOfOurs(t *testing.T) {
	dir := wintest.TempDir(t)
	path := func(name string) string { return filepath.Join(dir, name) }
	wintest.Must(t, os.WriteFile(path("small"), []byte("ok"), 0o600))
	wintest.Must(t, os.WriteFile(path("large"), make([]byte, maxSize+1), 0o600))
	wintest.Must(t, os.Mkdir(path("dir"), 0o700))
	for _, tc := range []struct{ path, want string }{
		{path("small"), ""},
		{path("large"), path("large") + " is larger than 1048576 bytes"},
		{path("dir"), path("dir") + " is a directory, not a regular file"},
		{"NUL", "NUL is a device, not a regular file"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			f, err := Open(tc.path, os.O_RDONLY)
			if err == nil {
				f.Close()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Open: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Open(path("missing"), os.O_RDONLY); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want fs.ErrNotExist", err)
	}
	f, err := Open(path("lock"), os.O_RDWR|os.O_CREATE)
	if err != nil {
		t.Fatalf("Open with O_CREATE: %v", err)
	}
	f.Close()
	if _, err := Open(path("small"), os.O_RDWR|os.O_TRUNC); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("Open with O_TRUNC: %v, want it refused", err)
	}
}

// A second hard link to a state file is refused: a write through it would
// land in the other name's file.
func TestOpenRefusesAHardLink(t *testing.T) {
	dir := wintest.TempDir(t)
	path := filepath.Join(dir, "state.json")
	wintest.Must(t, os.WriteFile(path, []byte("{}"), 0o600))
	if err := os.Link(path, filepath.Join(dir, "elsewhere")); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	f, err := Open(path, os.O_RDONLY)
	if err == nil {
		f.Close()
	}
	if want := path + " has 2 links, not one"; err == nil || err.Error() != want {
		t.Errorf("Open: %v, want %q", err, want)
	}
}

func TestCheckDirRefusesAFile(t *testing.T) {
	dir := wintest.TempDir(t)
	path := filepath.Join(dir, "file")
	wintest.Must(t, os.WriteFile(path, nil, 0o600))
	if err := CheckDir(path); err == nil || err.Error() != path+" is not a directory (it is a regular file)" {
		t.Errorf("CheckDir of a file: %v", err)
	}
	if err := CheckDir(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CheckDir of a missing dir: %v, want fs.ErrNotExist", err)
	}
}

// A DACL set on a dir is read back and judged: Everyone may write is
// refused. Wine keeps no DACL: it turns this one into the dir's mode bits
// and reads back a DACL made from them, so the mask differs (WINDOWS.md).
func TestCheckDirRefusesADirOthersMayWriteTo(t *testing.T) {
	dir := filepath.Join(wintest.TempDir(t), "d")
	wintest.Must(t, os.Mkdir(dir, 0o700))
	wintest.Must(t, CheckDir(dir))
	wintest.LetEveryoneWrite(t, dir)
	err := CheckDir(dir)
	t.Logf("CheckDir: %v", err)
	if want := dir + " grants S-1-1-0 write access (ACE mask "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("CheckDir: %v, want %q", err, want)
	}
}

func mustUs(t *testing.T) trust {
	tr, err := us()
	wintest.Must(t, err)
	return tr
}

// MkdirAll makes the dir and its parents, and the dir is one CheckDir
// accepts: its own DACL, read back, grants no one but us.
func TestMkdirAllMakesADirOfOurs(t *testing.T) {
	dir := filepath.Join(wintest.TempDir(t), "parent", "state")
	wintest.Must(t, MkdirAll(dir))
	wintest.Must(t, CheckDir(dir))
	wintest.Must(t, MkdirAll(dir)) // an existing dir is left as it is
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	wintest.Must(t, err)
	t.Logf("DACL read back: %s", sd.String())
	if !strings.Contains(sd.String(), mustUs(t).user) {
		t.Errorf("DACL %s grants nothing to us, %s", sd, mustUs(t).user)
	}
}
