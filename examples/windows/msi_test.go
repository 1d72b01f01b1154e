// Package windows holds the Windows installer's source, cro-exporter.wxs,
// and its tests: the MSI built from it with wixl, as make package builds
// it, read back with msiinfo, and installed and removed under Wine
// (msi_wine_test.go).
package windows

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The flags the service is installed with: an optional target passes no
// flag when its property is empty, since MSI drops a {...} whose every
// property is empty. Wine's msiexec showed it: with TARGET_CPU=40% and
// EXTRA_FLAGS="--disk.path=C:\data", the service's command line was
// `... --state.dir="C:\ProgramData\cro-exporter" --target.cpu="40%" --disk.path=C:\data`.
const wantArguments = `--web.listen-address="[LISTEN_ADDRESS]" --preset="[PRESET]"` +
	` --state.dir="[CommonAppDataFolder]cro-exporter"` +
	`{ --target.cpu="[TARGET_CPU]"}{ --target.memory="[TARGET_MEMORY]"}{ --target.disk="[TARGET_DISK]"}` +
	` [EXTRA_FLAGS]`

// Custom action type bits (the CustomAction table's Type column).
const (
	caExeFromFile   = 18     // msidbCustomActionTypeExe + msidbCustomActionTypeSourceFile
	caContinue      = 0x40   // msidbCustomActionTypeContinue: its exit status is ignored
	caDeferred      = 0x400  // msidbCustomActionTypeInScript
	caNoImpersonate = 0x800  // msidbCustomActionTypeNoImpersonate: as SYSTEM
	svc64bit        = 256    // msidbComponentAttributes64bit
	svcOwnProcess   = 16     // SERVICE_WIN32_OWN_PROCESS
	svcAutoStart    = 2      // SERVICE_AUTO_START
	regLocator64bit = 16 | 2 // msidbLocatorType64bit | msidbLocatorTypeRawValue
)

func TestMSI(t *testing.T) {
	dir := t.TempDir()
	// A stand-in for the Windows binary: wixl copies it whatever it is,
	// and its size shows which file the MSI holds.
	exe := []byte("MZ stand-in for cro-exporter.exe")
	if err := os.WriteFile(filepath.Join(dir, "cro-exporter.exe"), exe, 0o644); err != nil {
		t.Fatal(err)
	}
	msi := buildMSI(t, dir)
	checkInstall(t, msi, len(exe))
	checkProperties(t, msi)
	checkRecoverAction(t, msi)
	checkUpgrade(t, msi)
	checkRegistry(t, msi)
}

// checkInstall checks the MSI's file, of exeLen bytes, where it goes, and
// the service it installs and controls.
func checkInstall(t *testing.T, msi string, exeLen int) {
	t.Helper()
	file := row(t, table(t, msi, "File"), "File", "CroExporterExe")
	if file["FileName"] != "cro-exporter.exe" || file["FileSize"] != strconv.Itoa(exeLen) || file["Component_"] != "Service" {
		t.Errorf("File: %v, want cro-exporter.exe of %d bytes in component Service", file, exeLen)
	}
	comp := row(t, table(t, msi, "Component"), "Component", "Service")
	if attr(t, comp["Attributes"])&svc64bit == 0 || comp["Directory_"] != "INSTALLDIR" || comp["KeyPath"] != "CroExporterExe" {
		t.Errorf("Component Service: %v, want 64-bit, in INSTALLDIR, keyed by the exe", comp)
	}
	dirs := table(t, msi, "Directory")
	if d := row(t, dirs, "Directory", "INSTALLDIR"); d["Directory_Parent"] != "ProgramFiles64Folder" || d["DefaultDir"] != "cro-exporter" {
		t.Errorf("INSTALLDIR: %v, want cro-exporter in ProgramFiles64Folder", d)
	}

	si := row(t, table(t, msi, "ServiceInstall"), "Name", "cro-exporter")
	if attr(t, si["ServiceType"]) != svcOwnProcess || attr(t, si["StartType"]) != svcAutoStart ||
		si["StartName"] != "LocalSystem" || si["Component_"] != "Service" {
		t.Errorf("ServiceInstall: %v, want its own process, auto start, LocalSystem, in component Service", si)
	}
	if si["Arguments"] != wantArguments {
		t.Errorf("service arguments:\n%s\nwant\n%s", si["Arguments"], wantArguments)
	}
	// Start on install; stop on install (an upgrade's) and uninstall;
	// delete on uninstall; wait for each.
	sc := row(t, table(t, msi, "ServiceControl"), "Name", "cro-exporter")
	if ev := attr(t, sc["Event"]); ev != 0x1|0x2|0x20|0x80 || sc["Wait"] != "1" {
		t.Errorf("ServiceControl: event %#x wait %q, want 0xa3 (start, stop; stop, delete on uninstall), 1", ev, sc["Wait"])
	}
}

// checkProperties checks the properties' defaults, and that the optional
// ones have none.
func checkProperties(t *testing.T, msi string) {
	t.Helper()
	props := table(t, msi, "Property")
	for name, want := range map[string]string{"LISTEN_ADDRESS": ":9847", "PRESET": "default", "ProductVersion": "1.2.3", "ALLUSERS": "1"} {
		if got := row(t, props, "Property", name)["Value"]; got != want {
			t.Errorf("property %s = %q, want %q", name, got, want)
		}
	}
	// Empty until given: MSI keeps no empty property, and a default
	// here would become a flag.
	for _, name := range []string{"TARGET_CPU", "TARGET_MEMORY", "TARGET_DISK", "EXTRA_FLAGS"} {
		if i := slices.IndexFunc(props, func(r map[string]string) bool { return r["Property"] == name }); i >= 0 {
			t.Errorf("property %s has a default, %q", name, props[i]["Value"])
		}
	}
}

// checkRecoverAction checks the --recover run on removal and its place in
// the sequence.
func checkRecoverAction(t *testing.T, msi string) {
	t.Helper()
	ca := row(t, table(t, msi, "CustomAction"), "Action", "Recover")
	typ := attr(t, ca["Type"])
	if typ&0x3f != caExeFromFile || typ&caDeferred == 0 || typ&caNoImpersonate == 0 || typ&caContinue == 0 || ca["Source"] != "CroExporterExe" {
		t.Errorf("CustomAction Recover: %v, want the installed exe (18), deferred, as SYSTEM, its failure ignored", ca)
	}
	if want := `--recover --state.dir="[CommonAppDataFolder]cro-exporter" [INSTALLED_EXTRA_FLAGS]`; ca["Target"] != want {
		t.Errorf("Recover runs cro-exporter.exe %s, want %s", ca["Target"], want)
	}
	seq := map[string]int{}
	var cond string
	for _, r := range table(t, msi, "InstallExecuteSequence") {
		seq[r["Action"]] = attr(t, r["Sequence"])
		if r["Action"] == "Recover" {
			cond = r["Condition"]
		}
	}
	if cond != `REMOVE~="ALL"` || !(seq["InstallInitialize"] < seq["StopServices"] && seq["StopServices"] < seq["Recover"] &&
		seq["Recover"] < seq["DeleteServices"] && seq["Recover"] < seq["RemoveFiles"] && seq["Recover"] < seq["InstallFinalize"]) {
		t.Errorf("Recover at %d if %q, want after StopServices, before DeleteServices and RemoveFiles, if REMOVE~=\"ALL\"; sequence: %v", seq["Recover"], cond, seq)
	}
	if !(seq["FindRelatedProducts"] > 0 && seq["FindRelatedProducts"] < seq["RemoveExistingProducts"] && seq["RemoveExistingProducts"] < seq["InstallInitialize"]) {
		t.Errorf("the old product is not removed first: %v", seq)
	}
}

// checkUpgrade checks what an install does to an installed version.
func checkUpgrade(t *testing.T, msi string) {
	t.Helper()
	// The old product is replaced whatever its version, the same too; a
	// newer one refuses the install.
	ups := table(t, msi, "Upgrade")
	repl := row(t, ups, "ActionProperty", "REPLACED_FOUND")
	newer := row(t, ups, "ActionProperty", "NEWER_FOUND")
	if repl["VersionMin"] != "0.0.0" || repl["VersionMax"] != "" || attr(t, repl["Attributes"])&2 != 0 ||
		newer["VersionMin"] != "1.2.3" || attr(t, newer["Attributes"]) != 2 {
		t.Errorf("Upgrade: %v, want any version replaced, a newer one only detected", ups)
	}
	if lc := row(t, table(t, msi, "LaunchCondition"), "Condition", "NOT NEWER_FOUND"); lc["Description"] == "" {
		t.Error("no message for a newer version installed")
	}
}

// checkRegistry checks the event source and the EXTRA_FLAGS kept for the
// removal, and where the removal reads them back.
func checkRegistry(t *testing.T, msi string) {
	t.Helper()
	reg := map[string]map[string]string{}
	for _, r := range table(t, msi, "Registry") {
		reg[strings.TrimSuffix(r["Key"], `\`)+`\`+r["Name"]] = r
	}
	for key, want := range map[string]string{
		`SYSTEM\CurrentControlSet\Services\EventLog\Application\cro-exporter\EventMessageFile`: `[System64Folder]EventCreate.exe`,
		`SYSTEM\CurrentControlSet\Services\EventLog\Application\cro-exporter\TypesSupported`:   `#7`,
		`SOFTWARE\cro-exporter\EXTRA_FLAGS`:                                                    `[EXTRA_FLAGS]`,
	} {
		if r := reg[key]; r == nil || r["Root"] != "2" || r["Value"] != want {
			t.Errorf(`HKLM\%s: %v, want %s`, key, r, want)
		}
	}
	loc := row(t, table(t, msi, "RegLocator"), "Signature_", row(t, table(t, msi, "AppSearch"), "Property", "INSTALLED_EXTRA_FLAGS")["Signature_"])
	if loc["Root"] != "2" || loc["Key"] != `SOFTWARE\cro-exporter` || loc["Name"] != "EXTRA_FLAGS" || attr(t, loc["Type"]) != regLocator64bit {
		t.Errorf("INSTALLED_EXTRA_FLAGS is read from %v, want HKLM\\SOFTWARE\\cro-exporter\\EXTRA_FLAGS, raw, 64-bit", loc)
	}
}

// buildMSI builds dir/cro-exporter.msi, version 1.2.3, from cro-exporter.wxs
// around dir/cro-exporter.exe with wixl, as make package-windows does, and
// returns its path.
func buildMSI(t *testing.T, dir string) string {
	t.Helper()
	wxs, err := filepath.Abs("cro-exporter.wxs")
	if err != nil {
		t.Fatal(err)
	}
	msi := filepath.Join(dir, "cro-exporter.msi")
	// Exe relative to the working dir: wixl 0.101 fails on an absolute
	// Source ("Couldn't find file").
	wixl := exec.Command("wixl", "-a", "x64", "-D", "Version=1.2.3", "-D", "Exe=cro-exporter.exe", "-o", msi, wxs)
	wixl.Dir = dir
	if out, err := wixl.CombinedOutput(); err != nil {
		t.Fatalf("wixl (make tools installs Debian's wixl and msitools): %v\n%s", err, out)
	}
	return msi
}

// table returns the rows of the MSI's table name, each by column name, as
// msiinfo export writes them: a line of column names, one of types, one of
// the table's name and keys, then a row a line, tab separated.
func table(t *testing.T, msi, name string) []map[string]string {
	t.Helper()
	out, err := exec.Command("msiinfo", "export", msi, name).Output()
	if err != nil {
		t.Fatalf("msiinfo export %s: %v", name, err)
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("msiinfo export %s: %q", name, out)
	}
	cols := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[3:] {
		r := map[string]string{}
		for i, v := range strings.Split(l, "\t") {
			if i < len(cols) {
				r[cols[i]] = v
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// row returns the one row whose column col is v.
func row(t *testing.T, rows []map[string]string, col, v string) map[string]string {
	t.Helper()
	var found []map[string]string
	for _, r := range rows {
		if r[col] == v {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d rows with %s %q, want 1: %v", len(found), col, v, rows)
	}
	return found[0]
}

// attr is an integer column's value.
func attr(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is no integer", s)
	}
	return n
}
