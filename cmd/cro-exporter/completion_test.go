package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGenerateBashCompletes drives the bash completion as bash would: flag
// names, a subcommand, enum values after = or a space.
func TestGenerateBashCompletes(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	file := filepath.Join(t.TempDir(), "cro-exporter")
	if err := os.WriteFile(file, []byte(generated(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `source "$1"
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _cro_exporter; echo "${COMPREPLY[*]}"; }
t cro-exporter --log.lev
t cro-exporter --log.level = w
t cro-exporter --log.format j
t cro-exporter si
t cro-exporter simulate --spec = l
`
	out, err := exec.Command("bash", "-c", script, "bash", file).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "--log.level\nwarn\njson\nsimulate\nlarge\n"
	if string(out) != want {
		t.Errorf("completions:\n%s\nwant:\n%s", out, want)
	}
}
