package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// newTestParser is a parser for cli with main's naming of flags and
// variables.
func newTestParser(t *testing.T, cli *CLI) *kong.Kong {
	t.Helper()
	parser, err := kong.New(cli, kong.Name("cro-exporter"), kong.DefaultEnvars("CRO"), cliVars("test"))
	if err != nil {
		t.Fatal(err)
	}
	return parser
}

// generated runs the real binary's `generate what`, with env added to the
// test's environment.
func generated(t *testing.T, what string, env ...string) string {
	t.Helper()
	cmd := exec.Command(binaryPath(t), "generate", what)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("cro-exporter generate %s: %v\n%s", what, err, &stderr)
	}
	return string(out)
}

// visibleNodes are the root and every command the outputs show, with the
// flags of each.
func visibleNodes(app *kong.Application) map[string][]*kong.Flag {
	nodes := map[string][]*kong.Flag{"": visibleFlags(app.Node)}
	for _, c := range app.Children {
		if c.Type == kong.CommandNode && !c.Hidden {
			nodes[c.Name] = visibleFlags(c)
		}
	}
	return nodes
}

// hiddenFlags are the names of the flags of hidden commands.
func hiddenFlags(n *kong.Node) []string {
	var out []string
	for _, c := range n.Children {
		if c.Hidden {
			for _, l := range c.Leaves(false) {
				for _, f := range l.Flags {
					out = append(out, f.Name)
				}
			}
		}
		out = append(out, hiddenFlags(c)...)
	}
	return out
}

// TestGenerateHasEveryFlag: the man page and every completion name every
// visible flag and command of the CLI, so that a flag added to CLI cannot
// be missing from what the packages install.
func TestGenerateHasEveryFlag(t *testing.T) {
	app := newTestParser(t, &CLI{}).Model
	nodes := visibleNodes(app)
	if len(nodes[""]) < 20 || len(nodes["simulate"]) < 5 {
		t.Fatalf("the model shows %d flags and %d of simulate: the test reads it wrong", len(nodes[""]), len(nodes["simulate"]))
	}
	if h := hiddenFlags(app.Node); !slices.Contains(h, "size") || !slices.Contains(h, "duty") {
		t.Fatalf("the hidden holder command's flags are %q, without --size and --duty: the test reads the model wrong", h)
	}
	for _, what := range []string{"man", "bash", "zsh", "fish"} {
		t.Run(what, func(t *testing.T) {
			out := generated(t, what)
			for cmd, flags := range nodes {
				if cmd != "" && !strings.Contains(out, cmd) {
					t.Errorf("command %s is missing", cmd)
				}
				for _, f := range flags {
					name := "--" + f.Name
					switch what {
					case "man":
						name = roff(name)
					case "fish":
						name = "-l " + fishQuote(f.Name)
					}
					if !strings.Contains(out, name) {
						t.Errorf("flag --%s (of %q) is missing: no %q", f.Name, cmd, name)
					}
				}
			}
			for _, f := range hiddenFlags(app.Node) {
				if name := "--" + f; strings.Contains(out, name) || strings.Contains(out, roff(name)) {
					t.Errorf("%s, of a hidden command, is shown", name)
				}
			}
		})
	}
}

// defaultsFile parses an environment file as systemd reads one, commented
// assignments included: every #NAME=VALUE, unquoted.
func defaultsFile(t *testing.T, text string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "#CRO_")
		if !ok {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("a commented variable without =: %q", sc.Text())
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\$`, `$`, "\\`", "`").Replace(value[1 : len(value)-1])
		}
		vars["CRO_"+name] = value
	}
	return vars
}

// TestGenerateDefaults: /etc/default/cro-exporter names every flag of the
// daemon that has a variable, under that variable, and each default it
// shows is the built-in one: uncommenting them all changes nothing.
func TestGenerateDefaults(t *testing.T) {
	app := newTestParser(t, &CLI{}).Model
	out := generated(t, "defaults")
	vars := defaultsFile(t, out)
	n := 0
	for _, f := range app.Flags {
		if f.Hidden || len(f.Envs) == 0 {
			continue
		}
		n++
		if !strings.Contains(out, "# --"+f.Name+": ") {
			t.Errorf("flag --%s is not described", f.Name)
		}
		for _, env := range f.Envs {
			if _, ok := vars[env]; !ok {
				t.Errorf("flag --%s: no #%s= line", f.Name, env)
			}
		}
	}
	if n < 20 || len(vars) != n {
		t.Errorf("%d flags with variables, %d variables in the file", n, len(vars))
	}
	if strings.Contains(out, "CRO_VERSION") || strings.Contains(out, "CRO_HELP") {
		t.Error("--version and --help take no variable")
	}
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			t.Errorf("not a comment: %q", line)
		}
		if len(line) > 80 {
			t.Errorf("longer than 80 columns: %q", line)
		}
	}

	var plain CLI
	if _, err := newTestParser(t, &plain).Parse(nil); err != nil {
		t.Fatal(err)
	}
	for name, value := range vars {
		if value != "" {
			t.Setenv(name, value)
		}
	}
	var uncommented CLI
	if _, err := newTestParser(t, &uncommented).Parse(nil); err != nil {
		t.Fatalf("the defaults, uncommented: %v", err)
	}
	if !reflect.DeepEqual(plain, uncommented) {
		t.Errorf("the defaults, uncommented, are not the built-in ones:\n%+v\n%+v", uncommented, plain)
	}
}

// TestGenerateIgnoresEnvironment: what is generated comes from the CLI's
// definition alone; a CRO_ variable, even a bad one, changes nothing.
func TestGenerateIgnoresEnvironment(t *testing.T) {
	for _, what := range []string{"defaults", "man"} {
		if a, b := generated(t, what), generated(t, what, "CRO_INTERVAL=0", "CRO_STATE_DIR=/elsewhere"); a != b {
			t.Errorf("generate %s changes with CRO_ variables", what)
		}
	}
}

// TestGenerateSyntax: each output passes its own tool's syntax check, where
// the tool is installed (groff for the man page, bash, zsh, fish).
func TestGenerateSyntax(t *testing.T) {
	for _, c := range []struct {
		what string
		tool []string
	}{
		{"man", []string{"groff", "-man", "-Tutf8", "-ww", "-z"}},
		{"bash", []string{"bash", "-n"}},
		{"zsh", []string{"zsh", "-n"}},
		{"fish", []string{"fish", "--no-execute"}},
	} {
		t.Run(c.what, func(t *testing.T) {
			if _, err := exec.LookPath(c.tool[0]); err != nil {
				t.Skipf("%s is not installed", c.tool[0])
			}
			file := filepath.Join(t.TempDir(), "out")
			if err := os.WriteFile(file, []byte(generated(t, c.what)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(c.tool[0], append(c.tool[1:], file)...).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("%s: %v\n%s", strings.Join(c.tool, " "), err, out)
			}
		})
	}
}
