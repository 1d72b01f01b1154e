//go:build linux

package windows

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"
)

// What the install under Wine is given and what the service and the
// removal's recover must then be started with: the defaults, TARGET_CPU's
// flag, none for the targets not given, EXTRA_FLAGS as it is.
const (
	installedExe    = `C:\Program Files\cro-exporter\cro-exporter.exe`
	wantServiceArgs = `--web.listen-address=":9847" --preset="default" --state.dir="C:\ProgramData\cro-exporter" --target.cpu="40%" --disk.path=C:\data`
	wantRecoverArgs = `--recover --state.dir="C:\ProgramData\cro-exporter" --disk.path=C:\data`
)

// The keys the MSI writes, and those of Windows Installer's own that an
// install and removal go through: an install and removal must leave each
// as it found it.
const (
	serviceKey     = `HKLM\SYSTEM\CurrentControlSet\Services\cro-exporter`
	applicationLog = `HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application`
	eventSourceKey = applicationLog + `\cro-exporter`
	settingsKey    = `HKLM\SOFTWARE\cro-exporter`
)

var asFoundKeys = []string{
	serviceKey, applicationLog, settingsKey,
	`HKLM\SOFTWARE\Classes\Installer`,
	`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Installer`,
	`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`,
}

// The dirs of drive_c the MSI and msiexec write to, compared before and
// after (not the whole drive: other Wine programs may write elsewhere).
var asFoundDirs = []string{"Program Files", "ProgramData", "windows/Installer"}

// TestMSIInstallsAndRemovesUnderWine installs the MSI with Wine's msiexec
// into the test prefix (tools/wine), as a user would, around a stand-in
// for cro-exporter.exe (testdata/standin: the real binary is no service
// under Wine and would hold this host's memory) that writes down each
// command line it is started with; checks the binary, the service (its
// registration and the command line the SCM started it with) and the
// event source; removes it and checks that the service was stopped, then
// recovered with the state dir and EXTRA_FLAGS, and that the prefix is as
// it was found.
func TestMSIInstallsAndRemovesUnderWine(t *testing.T) {
	if testing.Short() {
		t.Skip("short: installs an MSI under Wine")
	}
	start := time.Now()
	w := newWine(t)
	dir := t.TempDir()
	record := filepath.Join(dir, "record.txt")
	exe := buildStandIn(t, dir, record)
	msi := winPath(buildMSI(t, dir))

	installDir := filepath.Join(w.prefix, "drive_c", "Program Files", "cro-exporter")
	if _, err := os.Lstat(installDir); !os.IsNotExist(err) {
		t.Fatalf("%s is there already (%v), from a run that did not clean up? Remove the product: tools/wine/exec.sh msiexec /x {ProductCode} /qn, the code from HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall", installDir, err)
	}
	w.keepApplicationLog(t)
	keysBefore := w.export(t, asFoundKeys...)
	if keysBefore[0] != "" {
		t.Fatalf("the service cro-exporter is registered already:\n%s", keysBefore[0])
	}
	filesBefore := w.files(t)

	installed := true
	t.Cleanup(func() {
		if installed {
			if out, err := w.run("msiexec", "/x", msi, "/qn"); err != nil {
				t.Logf("cleanup: msiexec /x: %v\n%s", err, out)
			}
		}
		// No wineserver -k: the prefix is shared. A stand-in left
		// would end with the session anyway.
		w.killStandIns(t)
		w.restore(t, keysBefore, filesBefore)
	})

	if out, err := w.run("msiexec", "/i", msi, "/qn", "TARGET_CPU=40%", `EXTRA_FLAGS=--disk.path=C:\data`); err != nil {
		t.Fatalf("msiexec /i: %v\n%s", err, out)
	}
	checkInstalled(t, w, installDir, exe, record)

	if out, err := w.run("msiexec", "/x", msi, "/qn"); err != nil {
		t.Fatalf("msiexec /x: %v\n%s", err, out)
	}
	installed = false
	checkRemoved(t, w, installDir, record)

	w.restore(t, keysBefore, filesBefore)
	for i, after := range w.export(t, asFoundKeys...) {
		if after != keysBefore[i] {
			t.Errorf("%s before the install:\n%s\nafter the removal:\n%s", asFoundKeys[i], keysBefore[i], after)
		}
	}
	if after := w.files(t); !slices.Equal(after, filesBefore) {
		t.Errorf("files under drive_c/{%s} before the install:\n%s\nafter the removal:\n%s",
			strings.Join(asFoundDirs, ","), strings.Join(filesBefore, "\n"), strings.Join(after, "\n"))
	}
	t.Logf("built, installed, removed and checked in %v", time.Since(start).Round(time.Millisecond))
}

// buildStandIn builds the stand-in service as dir/cro-exporter.exe, writing
// its record to record, and returns its bytes.
func buildStandIn(t *testing.T, dir, record string) []byte {
	t.Helper()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-X main.record="+winPath(record),
		"-o", filepath.Join(dir, "cro-exporter.exe"), "./testdata/standin")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(filepath.Join(dir, "cro-exporter.exe"))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// checkInstalled checks what the install left: the stand-in's bytes in
// installDir, the service's registration, the event source, the settings
// kept for the removal, and the service started as registered.
func checkInstalled(t *testing.T, w *wine, installDir string, exe []byte, record string) {
	t.Helper()
	if got, err := os.ReadFile(filepath.Join(installDir, "cro-exporter.exe")); err != nil || !bytes.Equal(got, exe) {
		t.Errorf("installed cro-exporter.exe: %d bytes (%v), want the stand-in's %d", len(got), err, len(exe))
	}
	keys := w.export(t, serviceKey, eventSourceKey, settingsKey)
	svcValues := regKey(keys[0], serviceKey)
	// Windows Installer quotes the exe in ImagePath; Wine's does not.
	if exePath, args := splitCommandLine(regString(svcValues["imagepath"])); exePath != installedExe || args != wantServiceArgs {
		t.Errorf("service ImagePath %s, want %s %s", svcValues["imagepath"], installedExe, wantServiceArgs)
	}
	if svcValues["start"] != "dword:00000002" || svcValues["type"] != "dword:00000010" || regString(svcValues["objectname"]) != "LocalSystem" {
		t.Errorf("service: Start %s, Type %s, ObjectName %s; want automatic (2), its own process (0x10), LocalSystem",
			svcValues["start"], svcValues["type"], svcValues["objectname"])
	}
	src := regKey(keys[1], eventSourceKey)
	if regString(src["eventmessagefile"]) != `C:\windows\system32\EventCreate.exe` || src["typessupported"] != "dword:00000007" {
		t.Errorf("event source cro-exporter: %v, want EventCreate.exe's messages, types 7", src)
	}
	if got := regString(regKey(keys[2], settingsKey)["extra_flags"]); got != `--disk.path=C:\data` {
		t.Errorf("EXTRA_FLAGS kept for the removal: %q, want --disk.path=C:\\data", got)
	}
	// The SCM started the service (msiexec waits for it): the stand-in
	// wrote down its command line before it told the SCM it runs.
	lines := waitLines(t, record, 1)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "service ") {
		t.Fatalf("the stand-in wrote %q, want one service start", lines)
	}
	if exePath, args := splitCommandLine(strings.TrimPrefix(lines[0], "service ")); exePath != installedExe || args != wantServiceArgs {
		t.Errorf("the service ran as\n%s\nwant\n%q %s", lines[0], installedExe, wantServiceArgs)
	}
}

// checkRemoved checks what the removal did: the service stopped, then
// --recover run as installed, and nothing of the product left.
func checkRemoved(t *testing.T, w *wine, installDir, record string) {
	t.Helper()
	// Stopped, then --recover with the state dir and EXTRA_FLAGS as
	// installed, the service stopped and not yet deleted, and nothing more.
	lines := waitLines(t, record, 4)
	if len(lines) != 4 || lines[1] != "stopped" || !strings.HasPrefix(lines[2], "recover ") || lines[3] != "scm stopped" {
		t.Fatalf("the stand-in wrote %q, want its service start, its stop, a recover and the service stopped as the recover saw it", lines)
	}
	if exePath, args := splitCommandLine(strings.TrimPrefix(lines[2], "recover ")); exePath != installedExe || args != wantRecoverArgs {
		t.Errorf("the removal recovered with\n%s\nwant\n%q %s", lines[2], installedExe, wantRecoverArgs)
	}
	if _, err := os.Lstat(installDir); !os.IsNotExist(err) {
		t.Errorf("%s left after the removal (%v)", installDir, err)
	}
	keys := w.export(t, serviceKey, eventSourceKey, settingsKey)
	for i, k := range []string{serviceKey, eventSourceKey, settingsKey} {
		if keys[i] != "" {
			t.Errorf("%s left after the removal:\n%s", k, keys[i])
		}
	}
}

// wine runs Windows programs in the test prefix through tools/wine/exec.sh.
type wine struct {
	exec, prefix string
	restored     bool // restore has run
}

// newWine finds (or makes) the prefix exec.sh runs in, and holds a lock
// beside it for the test: two runs of it at once in one prefix would
// replace each other's product.
func newWine(t *testing.T) *wine {
	t.Helper()
	wineDir, err := filepath.Abs("../../tools/wine")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(wineDir, "prefix.sh")).Output()
	if err != nil {
		t.Fatalf("tools/wine/prefix.sh (make tools installs Wine): %v", err)
	}
	w := &wine{exec: filepath.Join(wineDir, "exec.sh"), prefix: strings.TrimSpace(string(out))}
	lock, err := os.OpenFile(w.prefix+".msi-test.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return w
}

// run runs a Windows program in the prefix and returns its output.
func (w *wine) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, w.exec, args...).CombinedOutput()
}

// export returns each key, its values and its subkeys, as reg export
// writes them (the keys in one Wine process), "" for a key not there.
func (w *wine) export(t *testing.T, keys ...string) []string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cro-msi-reg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var cmds []string
	for i, k := range keys {
		cmds = append(cmds, fmt.Sprintf(`reg export %s %s\%d.reg /y`, k, winPath(dir), i))
	}
	// Wine's cmd fails when one of them does (a key not there): its
	// last word tells it ran them all.
	if out, err := w.run("cmd", "/c", strings.Join(append(cmds, "echo exported"), " & ")); !bytes.Contains(out, []byte("exported")) {
		t.Fatalf("reg export: %v\n%s", err, out)
	}
	texts := make([]string, len(keys))
	for i := range keys {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.reg", i)))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		// UTF-16LE with a byte order mark.
		u := make([]uint16, len(b)/2)
		binary.Read(bytes.NewReader(b), binary.LittleEndian, u)
		texts[i] = strings.ReplaceAll(strings.TrimPrefix(string(utf16.Decode(u)), "\ufeff"), "\r\n", "\n")
	}
	return texts
}

// files lists asFoundDirs' files and dirs with their sizes.
func (w *wine) files(t *testing.T) []string {
	t.Helper()
	var list []string
	for _, d := range asFoundDirs {
		root := filepath.Join(w.prefix, "drive_c", d)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if os.IsNotExist(err) && p == root {
				return nil
			} else if err != nil {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join(w.prefix, "drive_c"), p)
			size := info.Size()
			if e.IsDir() {
				size = 0
			}
			list = append(list, fmt.Sprintf("%s %d", rel, size))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return list
}

// keepApplicationLog makes sure the Application log's key is there, as a
// new prefix has it (no value): Wine's msiexec deletes the keys a removal
// leaves empty up the tree, so a removal that took the last source away
// took the key with it. Made by reg import: reg add would give it an empty
// default value.
func (w *wine) keepApplicationLog(t *testing.T) {
	t.Helper()
	if w.export(t, applicationLog)[0] != "" {
		return
	}
	t.Logf("%s is missing (Wine's msiexec deletes the keys a removal leaves empty): made again, as a new prefix has it", applicationLog)
	f, err := os.CreateTemp("", "cro-msi-*.reg")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	fmt.Fprintf(f, "Windows Registry Editor Version 5.00\r\n\r\n[%s]\r\n", strings.Replace(applicationLog, "HKLM", "HKEY_LOCAL_MACHINE", 1))
	f.Close()
	if out, err := w.run("reg", "import", winPath(f.Name())); err != nil {
		t.Errorf("reg import of %s: %v\n%s", applicationLog, err, out)
	}
}

// restore puts back what Wine's msiexec takes away or leaves, once the
// product is removed: the Application log's key (keepApplicationLog); the
// keys it made under asFoundKeys holding no value (Windows Installer's
// own, say Installer\Products, which Windows has from the start); and
// C:\windows\Installer if it made it and left it empty.
func (w *wine) restore(t *testing.T, keysBefore, filesBefore []string) {
	t.Helper()
	if w.restored {
		return
	}
	w.restored = true
	w.keepApplicationLog(t)
	made := map[string]bool{} // made: true while it and all under it hold no value
	for i, text := range w.export(t, asFoundKeys...) {
		before := regValues(keysBefore[i])
		for k, values := range regValues(text) {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(before)), func(b string) bool { return strings.EqualFold(b, k) }) {
				made[k] = len(values) == 0
			}
		}
	}
	for k, empty := range made {
		if !empty {
			for m := range made {
				if strings.HasPrefix(strings.ToLower(k), strings.ToLower(m)+`\`) {
					made[m] = false
				}
			}
		}
	}
	// The topmost of those, each with its subkeys: a key with a value
	// stays, and the test sees it.
	var cmds []string
	for k, empty := range made {
		if empty && !made[k[:max(strings.LastIndex(k, `\`), 0)]] {
			cmds = append(cmds, "reg delete "+k+" /f")
		}
	}
	if len(cmds) > 0 {
		t.Logf("removing what Wine's msiexec made and left empty: %s", strings.Join(cmds, " & "))
		if out, err := w.run("cmd", "/c", strings.Join(cmds, " & ")); err != nil {
			t.Logf("removing the keys Wine's msiexec left empty: %v\n%s", err, out)
		}
	}
	if !slices.Contains(filesBefore, "windows/Installer 0") {
		os.Remove(filepath.Join(w.prefix, "drive_c", "windows", "Installer"))
	}
}

// killStandIns kills any stand-in left running from the prefix's
// Program Files (its exe is mapped from there).
func (w *wine) killStandIns(t *testing.T) {
	t.Helper()
	exe := filepath.Join(w.prefix, "drive_c", "Program Files", "cro-exporter", "cro-exporter.exe")
	maps, _ := filepath.Glob("/proc/[0-9]*/maps")
	for _, m := range maps {
		b, err := os.ReadFile(m)
		if err != nil || !bytes.Contains(b, []byte(" "+exe)) {
			continue
		}
		var pid int
		fmt.Sscanf(m, "/proc/%d/maps", &pid)
		t.Logf("killing the stand-in left running, pid %d", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// regValues reads reg export's text: each key, as written, with its
// values, by name lowercased, as written ("..." or dword:...).
func regValues(text string) map[string]map[string]string {
	keys := map[string]map[string]string{}
	var cur map[string]string
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			cur = map[string]string{}
			keys[l[1:len(l)-1]] = cur
		case strings.HasPrefix(l, `"`) && cur != nil:
			if name, value, ok := strings.Cut(l[1:], `"=`); ok {
				cur[strings.ToLower(name)] = value
			}
		}
	}
	return keys
}

// regString is a string value as reg export writes it, unquoted.
func regString(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return ""
	}
	return strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(v[1 : len(v)-1])
}

// regKey is the values of key (HKLM\...) in reg export's text.
func regKey(text, key string) map[string]string {
	key = strings.Replace(key, "HKLM", "HKEY_LOCAL_MACHINE", 1)
	for k, values := range regValues(text) {
		if strings.EqualFold(k, key) {
			return values
		}
	}
	return nil
}

// splitCommandLine splits a command line into its exe, quoted or not
// (then up to ".exe"), and the arguments after it.
func splitCommandLine(line string) (exe, args string) {
	if rest, ok := strings.CutPrefix(line, `"`); ok {
		exe, args, _ = strings.Cut(rest, `"`)
	} else if i := strings.Index(strings.ToLower(line), ".exe"); i >= 0 {
		exe, args = line[:i+4], line[i+4:]
	}
	return exe, strings.TrimPrefix(args, " ")
}

// waitLines returns the stand-in's record once it has n lines, or what it
// has after 5 s.
func waitLines(t *testing.T, record string, n int) []string {
	t.Helper()
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(record)
		lines = strings.Split(strings.TrimSpace(strings.ReplaceAll(string(b), "\r\n", "\n")), "\n")
		if len(b) == 0 {
			lines = nil
		}
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
	}
}

// winPath is a Linux path as a Windows program under Wine sees it.
func winPath(p string) string {
	return "Z:" + strings.ReplaceAll(p, "/", `\`)
}
