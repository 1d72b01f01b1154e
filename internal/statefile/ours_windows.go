package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// What is ours on Windows, decided here once as ours_linux.go decides it
// on Linux. Windows has no mode bits, and by default every user may reach
// a file by its full path through dirs they cannot list (the traverse
// check is bypassed: SeChangeNotifyPrivilege is Everyone's), so a dir of
// ours that keeps others out is not enough: a file's own security counts
// as much as its dir's. Hence:
//
//   - a dir or file is ours when its owner is one of us (trust), and its
//     DACL grants write access (writeRights) to no one else: not through an
//     ACE on itself, nor through an inheritable one, which would hand that
//     access to whatever cro-exporter makes in it;
//   - a file is ours, besides, when it is a regular file (no reparse
//     point: a symlink or a junction) with one link.
//
// Deny ACEs are not read: they only take access away, so ignoring them
// can refuse a dir that a deny made safe, never accept one that is not.

// Stat is what Windows says of an open dir or file: GetFileInformationByHandle,
// GetFileType and GetSecurityInfo.
type Stat struct {
	Attributes uint32 // FILE_ATTRIBUTE_*
	Links      uint32
	Size       int64
	Type       uint32 // GetFileType's: FILE_TYPE_DISK for files and dirs
	Security
}

// Security is the owner and the DACL of a dir or file.
type Security struct {
	Owner string // the owner's SID, S-1-5-...
	// NullDACL is a security descriptor without a DACL, which grants every
	// right to everyone (an empty DACL grants none).
	NullDACL bool
	ACEs     []ACE
}

// ACE is one entry of a DACL.
type ACE struct {
	Type  uint8 // ACCESS_ALLOWED_ACE_TYPE, ...
	Flags uint8 // OBJECT_INHERIT_ACE, INHERIT_ONLY_ACE, ...
	Mask  uint32
	SID   string // "" for the types whose SID is not read (not allowed or denied)
}

// ACE types (winnt.h); x/sys/windows names only the first two.
const (
	aceAllowed = 0x0
	aceDenied  = 0x1
	// The other types that only deny.
	aceDeniedObject         = 0x6
	aceDeniedCallback       = 0xA
	aceDeniedCallbackObject = 0xC
)

// fileDeleteChild is FILE_DELETE_CHILD (winnt.h), which x/sys/windows
// does not name.
const fileDeleteChild = 0x40

// writeRights are the rights that let a holder change a dir (add, rename,
// delete what it holds), a file's content, or either's owner or DACL; the
// generic ones stand for them in inheritable ACEs.
const writeRights = windows.FILE_WRITE_DATA | windows.FILE_APPEND_DATA | windows.FILE_WRITE_EA |
	fileDeleteChild | windows.FILE_WRITE_ATTRIBUTES | windows.DELETE | windows.WRITE_DAC |
	windows.WRITE_OWNER | windows.GENERIC_WRITE | windows.GENERIC_ALL | windows.MAXIMUM_ALLOWED |
	windows.ACCESS_SYSTEM_SECURITY

// Well-known SIDs trust uses.
const (
	sidSystem         = "S-1-5-18"
	sidAdministrators = "S-1-5-32-544"
	// sidCreatorOwner and sidOwnerRights stand for the owner of what is
	// made in a dir, or of the object itself: one of us, once its owner is.
	sidCreatorOwner = "S-1-3-0"
	sidOwnerRights  = "S-1-3-4"
)

// trust is who counts as us: the user our token is, and, when we run as
// SYSTEM or as a member of Administrators (a service, an elevated shell),
// SYSTEM and Administrators too, who own what such a process makes and can
// take anything over anyway.
type trust struct {
	user   string
	admins bool
}

// ours tells whether sid is one of us.
func (tr trust) ours(sid string) bool {
	switch sid {
	case tr.user:
		return true
	case sidSystem, sidAdministrators:
		return tr.admins
	}
	return false
}

// us reads our token once.
var us = sync.OnceValues(func() (trust, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return trust{}, fmt.Errorf("reading our token's user: %w", err)
	}
	tr := trust{user: u.User.Sid.String()}
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		return trust{}, err
	}
	// Token 0: CheckTokenMembership takes our own.
	member, err := windows.Token(0).IsMember(admins)
	if err != nil {
		return trust{}, fmt.Errorf("checking our membership of Administrators: %w", err)
	}
	tr.admins = member || tr.user == sidSystem
	return tr, nil
})

// problem says why s is not ours by tr, or "": "is owned by S-1-5-21-1-2-3-1001,
// not by us (S-1-5-21-1-2-3-1000)", to follow a name.
func (s *Security) problem(tr trust) string {
	if !tr.ours(s.Owner) {
		return fmt.Sprintf("is owned by %s, not by us (%s)", s.Owner, tr.user)
	}
	if s.NullDACL {
		return "has no DACL, which lets everyone write to it"
	}
	for _, a := range s.ACEs {
		switch a.Type {
		case aceDenied, aceDeniedObject, aceDeniedCallback, aceDeniedCallbackObject:
			continue
		case aceAllowed:
		default:
			return fmt.Sprintf("has an ACE of type %d, which cro-exporter does not read", a.Type)
		}
		if a.Mask&writeRights == 0 || tr.ours(a.SID) || a.SID == sidCreatorOwner || a.SID == sidOwnerRights {
			continue
		}
		inherited := ""
		if a.Flags&windows.INHERIT_ONLY_ACE != 0 {
			inherited = " of what is made in it"
		}
		return fmt.Sprintf("grants %s write access%s (ACE mask %#x)", a.SID, inherited, a.Mask)
	}
	return ""
}

// ownerProblem is Security.problem with our token read.
func ownerProblem(s *Security) string {
	tr, err := us()
	if err != nil {
		return "cannot be checked: " + err.Error()
	}
	return s.problem(tr)
}

// DirProblem says why a dir, as st describes it (from Fstat), is not ours:
// "is owned by S-1-..., not by us (S-1-...)" or "grants S-1-5-32-545 write
// access (ACE mask 0x116)", to follow the dir's name; "" when it is ours.
func DirProblem(st *Stat) string {
	if st.Attributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
		return "is a symlink or junction"
	}
	if st.Attributes&windows.FILE_ATTRIBUTE_DIRECTORY == 0 {
		return "is not a directory"
	}
	return ownerProblem(&st.Security)
}

// FileProblem says why a file in a dir of ours, as st describes it, is not
// ours: "is a symlink or junction", "is not a regular file", "has 2 links,
// not one", or an owner's or a DACL's problem (DirProblem's), to follow the
// file's name; "" when it is ours.
func FileProblem(st *Stat) string {
	switch {
	case st.Attributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		return "is a symlink or junction"
	case st.Attributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 || st.Type != windows.FILE_TYPE_DISK:
		return "is not a regular file"
	case st.Links != 1:
		return fmt.Sprintf("has %d links, not one", st.Links)
	}
	return ownerProblem(&st.Security)
}

// Fstat describes the open dir or file f. f must have been opened with
// READ_CONTROL (openNoFollow's and os.Open's handles have it).
func Fstat(f *os.File) (*Stat, error) {
	h := windows.Handle(f.Fd())
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		return nil, &fs.PathError{Op: "GetFileInformationByHandle", Path: f.Name(), Err: err}
	}
	typ, err := windows.GetFileType(h)
	if err != nil {
		return nil, &fs.PathError{Op: "GetFileType", Path: f.Name(), Err: err}
	}
	sec, err := security(h)
	if err != nil {
		return nil, &fs.PathError{Op: "GetSecurityInfo", Path: f.Name(), Err: err}
	}
	return &Stat{
		Attributes: info.FileAttributes,
		Links:      info.NumberOfLinks,
		Size:       int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow),
		Type:       typ,
		Security:   *sec,
	}, nil
}

// security reads the owner and the DACL of the object h is open on.
func security(h windows.Handle) (*Security, error) {
	sd, err := windows.GetSecurityInfo(h, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return nil, err
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return nil, fmt.Errorf("owner: %w", err)
	}
	if owner == nil {
		return nil, errors.New("no owner")
	}
	s := &Security{Owner: owner.String()}
	dacl, _, err := sd.DACL()
	switch {
	case errors.Is(err, windows.ERROR_OBJECT_NOT_FOUND) || err == nil && dacl == nil:
		s.NullDACL = true
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("DACL: %w", err)
	}
	for i := range uint32(dacl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			return nil, fmt.Errorf("ACE %d: %w", i, err)
		}
		a := ACE{Type: ace.Header.AceType, Flags: ace.Header.AceFlags, Mask: uint32(ace.Mask)}
		// Allowed and denied ACEs share ACCESS_ALLOWED_ACE's layout; the
		// other types put GUIDs or conditions where the SID is.
		if a.Type == aceAllowed || a.Type == aceDenied {
			a.SID = (*windows.SID)(unsafe.Pointer(&ace.SidStart)).String()
		}
		s.ACEs = append(s.ACEs, a)
	}
	return s, nil
}
