package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// CLI is the command line. Every flag can also be set through the
// environment variable kong derives from it: --web.listen-address is
// CRO_WEB_LISTEN_ADDRESS. The daemon's flags sit at the top so that
// `cro-exporter --help` shows them; the daemon is the default command.
type CLI struct {
	Daemon   struct{}    `cmd:"" default:"1" hidden:"" help:"Run the exporter and controller (the default)."`
	Simulate SimulateCmd `cmd:"" help:"Run the control law against a modelled host with a fake clock: when does it pass, at what cost."`
	Holder   HolderCmd   `cmd:"" hidden:"" help:"Run one holder process; the daemon starts these."`
	Generate GenerateCmd `cmd:"" hidden:"" help:"Write the man page, a shell completion or the packages' defaults file, made from this CLI."`

	WebListenAddress []string `name:"web.listen-address" default:":9847" placeholder:"ADDR" help:"Addresses to serve metrics on, comma separated (host:port)."`
	WebTelemetryPath string   `name:"web.telemetry-path" default:"/metrics" placeholder:"PATH" help:"Path under which to expose metrics."`
	WebConfigFile    string   `name:"web.config.file" type:"existingfile" placeholder:"FILE" help:"Path to a web configuration file (TLS, basic auth), in the format of the Prometheus exporter-toolkit."`

	//lint:ignore U1000 empty on Windows; kong reads the CLI by reflection
	platformFlags `embed:""`
	DiskPath      string `name:"disk.path" default:"${disk_path}" placeholder:"DIR" help:"${disk_path_help}"`
	StateDir      string `name:"state.dir" default:"${state_dir}" placeholder:"DIR" help:"Directory for the saved averages (created ${state_dir_mode} if missing)."`

	Interval Duration `default:"15s" help:"How often to sample the host, e.g. 15s, 1m."`

	// The flags a preset gives defaults for are pointers, nil when not
	// given: a flag given (or its environment variable) wins over the
	// preset, the preset over the built-in default. objectives and targets
	// resolve them.
	Preset          string     `default:"default" enum:"default,oracle-always-free,azure-advisor,gcp-idle-vm,aws-trusted-advisor,huawei-idle-ecs,oci-cloud-advisor" help:"A known auditor's rule, which sets the defaults of the objectives, windows, audit periods and targets; flags given win: default, oracle-always-free, azure-advisor, gcp-idle-vm, aws-trusted-advisor, huawei-idle-ecs or oci-cloud-advisor. default: the mean over 30d at the spec's targets. The others hold CPU alone, memory and disk at 0: oracle-always-free: p95 of 1m means over 7d at 20%; azure-advisor: p95 of 30m periods, each the max of its 1m means, over 7d at 3%; gcp-idle-vm: p97 of 1m means over 1d at 0.03cpus; aws-trusted-advisor: p25 of daily means over 14d at 10%; huawei-idle-ecs: max of 5m means over 7d at 3%; oci-cloud-advisor: the mean over 7d at 15%."`
	ObjectiveCPU    *Statistic `name:"objective.cpu" placeholder:"STAT" help:"What the auditor computes of CPU usage: mean, a percentile of audit period values such as p95, or their max (default: mean, or the preset's)."`
	ObjectiveMemory *Statistic `name:"objective.memory" placeholder:"STAT" help:"What the auditor computes of memory usage (default: mean, or the preset's)."`
	ObjectiveDisk   *Statistic `name:"objective.disk" placeholder:"STAT" help:"What the auditor computes of disk usage (default: mean, or the preset's)."`
	AuditPeriod     *Duration  `name:"audit.period" placeholder:"DURATION" help:"The period whose mean a percentile takes as one sample, aligned to the clock; must divide a day (default: 1m, or the preset's)."`
	AuditSubperiod  *Duration  `name:"audit.subperiod" placeholder:"DURATION" help:"Makes a period's value the max of the means of its sub-periods of this length, which divides --audit.period, for a percentile other than max; must divide a day (default: none, a period's value is its mean; or the preset's)."`
	Window          *Duration  `placeholder:"DURATION" help:"The trailing window the auditor looks at, e.g. 30d (default: 30d, or the preset's)."`
	WindowCPU       *Duration  `name:"window.cpu" placeholder:"DURATION" help:"The CPU audit window (default: --window)."`
	WindowMemory    *Duration  `name:"window.memory" placeholder:"DURATION" help:"The memory audit window (default: --window)."`
	WindowDisk      *Duration  `name:"window.disk" placeholder:"DURATION" help:"The disk audit window (default: --window)."`

	TargetCPU    *CPUTarget `name:"target.cpu" placeholder:"RATIO" help:"Target for the CPU objective, e.g. 0.4 or 40%, or in CPUs, e.g. 0.03cpus (default: from the host's spec, or the preset's)."`
	TargetMemory *Ratio     `name:"target.memory" placeholder:"RATIO" help:"Target for the memory objective (default: from the host's spec, or the preset's)."`
	TargetDisk   *Ratio     `name:"target.disk" placeholder:"RATIO" help:"Target for the disk objective (default: from the host's spec, or the preset's)."`
	Ceiling      Ratio      `default:"90%" help:"No target or setpoint is ever above this ratio."`

	MemoryReserve *Size  `name:"memory.reserve" placeholder:"SIZE" help:"MemAvailable that holders always leave to real work (default: 15% of MemTotal, at least 512MiB)."`
	DiskReserve   *Size  `name:"disk.reserve" placeholder:"SIZE" help:"Free disk space that fill files always leave (default: 10% of the filesystem, at least 1GiB)."`
	DiskFillDir   string `name:"disk.fill-dir" placeholder:"DIR" help:"Private directory of the disk fill files (default: <disk.path>/.cro-fill)."`
	MemoryChunk   Size   `name:"holder.memory-chunk" default:"${max_chunk}" help:"Largest memory holder process; ballast is given back a chunk at a time."`
	DryRun        bool   `name:"dry-run" help:"Decide and show everything, apply nothing: the holder metrics show what would be held."`
	Recover       bool   `help:"Stop every holder and the running daemon, remove every fill file, keep the averages, report, and exit."`

	LogLevel  string `name:"log.level" default:"info" enum:"debug,info,warn,error" help:"Only log messages of this severity or above: ${enum}."`
	LogFormat string `name:"log.format" default:"text" enum:"text,json" help:"Log format: text (coloured on a terminal) or json."`

	// The version flag takes no environment variable: CRO_VERSION=1 left
	// in an environment file would make every start print and exit.
	Version kong.VersionFlag `env:"-" help:"Print the version and exit."`
}

// Validate checks what no single flag can check alone; kong calls it after
// parsing, so a violation is a usage error like any other.
func (c *CLI) Validate() error {
	for _, r := range host.Resources {
		if w, from := c.window(r); c.Interval.D() >= w {
			return fmt.Errorf("--interval=%s must be shorter than %s", c.Interval, from)
		}
	}
	if err := c.checkPeriod(); err != nil {
		return err
	}
	if c.Ceiling == 0 {
		return errors.New("--ceiling must be above 0")
	}
	for _, r := range host.Resources {
		t, ok := controller.Presets[c.Preset].Targets[r]
		if ok && !c.targetGiven(r) && t > float64(c.Ceiling) {
			return fmt.Errorf("--preset=%s sets a %s target of %s, above --ceiling=%s: lower --target.%[2]s or raise the ceiling", c.Preset, r, Ratio(t), c.Ceiling)
		}
	}
	if c.MemoryChunk < minChunk || c.MemoryChunk > holder.MaxChunk {
		return fmt.Errorf("--holder.memory-chunk=%s must be between %s and %s", c.MemoryChunk, Size(minChunk), Size(holder.MaxChunk))
	}
	if !strings.HasPrefix(c.WebTelemetryPath, "/") {
		return fmt.Errorf("--web.telemetry-path=%q must start with /", c.WebTelemetryPath)
	}
	if len(c.WebListenAddress) == 0 || slices.Contains(c.WebListenAddress, "") {
		return fmt.Errorf("--web.listen-address=%q must name one address or more, none of them empty", strings.Join(c.WebListenAddress, ","))
	}
	return nil
}

// cliVars are the variables the flags' tags use: the version, and the
// largest memory holder, the holder package's.
func cliVars(version string) kong.Vars {
	vars := kong.Vars{"version": version, "max_chunk": Size(holder.MaxChunk).String()}
	for k, v := range platformVars() {
		vars[k] = v
	}
	return vars
}

// minChunk is the smallest --holder.memory-chunk. Every chunk is a process
// with a Go runtime of its own, a few MiB: smaller chunks would spend a
// large share of the ballast on runtimes and start hundreds of processes
// (4MiB: 256 for 1GiB), which a process limit may refuse mid-start.
const minChunk = 64 << 20

// checkReserves refuses reserves that leave the holders nothing at all on
// the sampled host: a reserve of all the memory or all the disk is a
// mistake in the flag, not a setting.
func (c *CLI) checkReserves(s host.Sample) error {
	if c.MemoryReserve != nil && uint64(*c.MemoryReserve) >= s.MemoryTotal {
		return fmt.Errorf("--memory.reserve=%s must be under MemTotal, %s", *c.MemoryReserve, Size(s.MemoryTotal))
	}
	if c.DiskReserve != nil && uint64(*c.DiskReserve) >= s.DiskSize {
		return fmt.Errorf("--disk.reserve=%s must be under the size of the filesystem of --disk.path, %s", *c.DiskReserve, Size(s.DiskSize))
	}
	return nil
}

// fillDir is where disk fill files live.
func (c *CLI) fillDir() string {
	if c.DiskFillDir != "" {
		return c.DiskFillDir
	}
	return filepath.Join(c.DiskPath, ".cro-fill")
}

// reserves are the reserves given, or the defaults for the sampled host.
func (c *CLI) reserves(s host.Sample) (memory, disk int64) {
	memory, disk = controller.DefaultReserves(s.MemoryTotal, s.DiskSize)
	if c.MemoryReserve != nil {
		memory = int64(*c.MemoryReserve)
	}
	if c.DiskReserve != nil {
		disk = int64(*c.DiskReserve)
	}
	return memory, disk
}

// targets returns the targets given on the command line, and the preset's
// for resources without one, for a host of cpus CPUs (which converts a CPU
// target in CPUs); resources with neither take their spec's default. A CPU
// target of more CPUs than the host has is an error naming the flag.
func (c *CLI) targets(cpus int) (map[host.Resource]float64, error) {
	given := map[host.Resource]float64{}
	if c.TargetCPU != nil {
		t, err := c.TargetCPU.of(cpus)
		if err != nil {
			return nil, err
		}
		given[host.CPU] = t
	}
	for r, t := range map[host.Resource]*Ratio{host.Memory: c.TargetMemory, host.Disk: c.TargetDisk} {
		if t != nil {
			given[r] = float64(*t)
		}
	}
	return controller.Presets[c.Preset].WithTargets(given, cpus), nil
}

// targetGiven tells whether r's --target flag is given.
func (c *CLI) targetGiven(r host.Resource) bool {
	switch r {
	case host.CPU:
		return c.TargetCPU != nil
	case host.Memory:
		return c.TargetMemory != nil
	}
	return c.TargetDisk != nil
}

// objectives resolves the objective of every resource: a flag given wins,
// then the preset, then the built-in default (the mean over 30 days). The
// mean's Period is 0.
func (c *CLI) objectives() map[host.Resource]controller.Objective {
	period, _ := c.period()
	sub, _ := c.subperiod()
	objectives := make(map[host.Resource]controller.Objective, len(host.Resources))
	for _, r := range host.Resources {
		s, _ := c.objective(r)
		w, _ := c.window(r)
		o := controller.Objective{Quantile: s.Quantile(), Window: w}
		if s.Quantile() > 0 {
			o.Period, o.Sub = period, sub
		}
		objectives[r] = o
	}
	return objectives
}

// newAverages makes the averages of the daemon and of simulate, each
// resource with its objective. A sample stands for at most two intervals
// before it: a longer gap, while the exporter was down, was not observed.
func (c *CLI) newAverages() *controller.Averages {
	w, _ := c.window(host.CPU)
	averages := controller.NewAverages(w, 2*c.Interval.D())
	for r, o := range c.objectives() {
		averages.SetObjective(r, o)
	}
	return averages
}

// objective is r's statistic, and the flag it comes from, as messages
// name it.
func (c *CLI) objective(r host.Resource) (Statistic, string) {
	given := map[host.Resource]*Statistic{host.CPU: c.ObjectiveCPU, host.Memory: c.ObjectiveMemory, host.Disk: c.ObjectiveDisk}[r]
	if given != nil {
		return *given, fmt.Sprintf("--objective.%s=%s", r, *given)
	}
	s := Statistic(controller.Presets[c.Preset].Quantiles[r])
	return s, fmt.Sprintf("--objective.%s=%s (of --preset=%s)", r, s, c.Preset)
}

// window is r's audit window, and the flag it comes from.
func (c *CLI) window(r host.Resource) (time.Duration, string) {
	given := map[host.Resource]*Duration{host.CPU: c.WindowCPU, host.Memory: c.WindowMemory, host.Disk: c.WindowDisk}[r]
	if given != nil {
		return c.resolve("--window."+string(r), given, 0, 0)
	}
	return c.resolve("--window", c.Window, controller.Presets[c.Preset].Window, controller.DefaultWindow)
}

// period is the audit period, and the flag it comes from.
func (c *CLI) period() (time.Duration, string) {
	return c.resolve("--audit.period", c.AuditPeriod, controller.Presets[c.Preset].Period, controller.DefaultPeriod)
}

// subperiod is the audit sub-period, 0 for none, and the flag it comes
// from.
func (c *CLI) subperiod() (time.Duration, string) {
	return c.resolve("--audit.subperiod", c.AuditSubperiod, controller.Presets[c.Preset].Sub, 0)
}

// resolve is a duration flag's value, and how messages name it: the value
// given, or else the preset's (when above 0), or else the built-in one.
func (c *CLI) resolve(flag string, given *Duration, preset, builtin time.Duration) (time.Duration, string) {
	switch {
	case given != nil:
		return given.D(), fmt.Sprintf("%s=%s", flag, *given)
	case preset > 0:
		return preset, fmt.Sprintf("%s=%s (of --preset=%s)", flag, Duration(preset), c.Preset)
	}
	return builtin, fmt.Sprintf("%s=%s", flag, Duration(builtin))
}

// checkPeriod checks the audit period and sub-period: each must divide a
// day, so that periods line up with the clock's days as an auditor's do,
// whatever the objectives (a mean ignores both); and for every resource
// with a percentile objective, the period must be a multiple of --interval
// (a period of whole samples), no longer than the window, and the window
// may hold at most controller.MaxPeriods of them.
func (c *CLI) checkPeriod() error {
	p, from := c.period()
	sub, subFrom := c.subperiod()
	for _, d := range []struct {
		d    time.Duration
		from string
	}{{p, from}, {sub, subFrom}} {
		if d.d > 0 && (24*time.Hour)%d.d != 0 {
			return fmt.Errorf("%s must divide a day evenly (1m, 5m, 15s, 1h, ...)", d.from)
		}
	}
	for _, r := range host.Resources {
		s, objective := c.objective(r)
		if s.Quantile() == 0 {
			continue
		}
		w, window := c.window(r)
		switch {
		case p%c.Interval.D() != 0:
			// Samples are taken on the clock's multiples of --interval:
			// a period of whole samples is measured exactly.
			return fmt.Errorf("%s must be a multiple of --interval=%s, for %s", from, c.Interval, objective)
		case p > w:
			return fmt.Errorf("%s must not be longer than %s, for %s", from, window, objective)
		case w/p > controller.MaxPeriods:
			return fmt.Errorf("%s makes %d periods of %s, for %s: at most %d; lengthen the period or shorten the window", from, w/p, window, objective, controller.MaxPeriods)
		}
		if err := c.checkSubperiod(s, objective, p, from); err != nil {
			return err
		}
	}
	return nil
}

// checkSubperiod checks the sub-period, if any, for a percentile objective
// s (named objective) of periods p (named from): a multiple of --interval
// that divides the period into more than one, and not for the max, where
// the max of sub-period maxes is the max of the sub-periods' means.
func (c *CLI) checkSubperiod(s Statistic, objective string, p time.Duration, from string) error {
	sub, name := c.subperiod()
	switch {
	case sub == 0:
	case s.Quantile() == controller.Max:
		return fmt.Errorf("%s with %s: the max of the sub-periods' maxes is the max of their means; give the sub-period as --audit.period instead", name, objective)
	case sub%c.Interval.D() != 0:
		return fmt.Errorf("%s must be a multiple of --interval=%s, for %s", name, c.Interval, objective)
	case sub >= p || p%sub != 0:
		return fmt.Errorf("%s must divide %s into two or more, for %s", name, from, objective)
	}
	return nil
}

// describe is an objective as the start line shows it: "mean over 30d",
// "p95 of 1m over 7d", "p95 of 30m maxes of 1m over 7d".
func describe(o controller.Objective) string {
	switch {
	case o.Quantile == 0:
		return "mean over " + Duration(o.Window).String()
	case o.Sub > 0:
		return fmt.Sprintf("%s of %s maxes of %s over %s", o.Statistic(), Duration(o.Period), Duration(o.Sub), Duration(o.Window))
	}
	return fmt.Sprintf("%s of %s over %s", o.Statistic(), Duration(o.Period), Duration(o.Window))
}

// HolderCmd is the hidden holder subcommands: stable, so that tests and
// --recover can find and drive holders from outside.
type HolderCmd struct {
	Memory struct {
		Size Size `required:"" help:"Bytes to hold resident, at most ${max_chunk}."`
	} `cmd:"" help:"Hold SIZE of resident memory until stdin closes or reads \"stop\"."`
	CPU struct {
		Duty Ratio `default:"0" help:"Share of the whole machine to burn, e.g. 0.3 or 30%."`
	} `cmd:"" name:"cpu" help:"Burn a share of the machine under SCHED_IDLE; stdin sets it with \"duty R\"."`
}

// GenerateCmd is the hidden `generate` command: what the packages install
// beside the binary, made from the CLI's kong model, so that a flag added
// to CLI is in every one of them without anyone writing it down. Each is
// written to stdout.
type GenerateCmd struct {
	Man      generator `cmd:"" help:"The man page cro-exporter(1), in roff."`
	Bash     generator `cmd:"" help:"The bash completion."`
	Zsh      generator `cmd:"" help:"The zsh completion."`
	Fish     generator `cmd:"" help:"The fish completion."`
	Defaults generator `cmd:"" help:"The packages' /etc/default/cro-exporter: every flag as its environment variable, commented out with its default."`
}

// generator is one of generate's subcommands. It runs as a kong hook, as
// --help and --version do: before the environment is read or the flags are
// validated, so that no CRO_ variable of the shell that builds a package
// can change or refuse what is generated; it writes to kong's stdout and
// exits through kong.
type generator struct{}

// BeforeReset writes what the command at path names.
func (generator) BeforeReset(app *kong.Kong, path *kong.Path) error {
	if err := generate(app.Stdout, app.Model, path.Command.Name, version, sourceDate()); err != nil {
		return err
	}
	app.Exit(0)
	return nil
}

// sourceDate is the man page's date: SOURCE_DATE_EPOCH when set (the
// reproducible-builds convention; the Makefile sets it to the commit's
// time), otherwise none.
func sourceDate() time.Time {
	s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
