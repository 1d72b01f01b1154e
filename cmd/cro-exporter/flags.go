package main

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/common/model"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/holder"
)

// CLI is the command line. Every flag can also be set through the
// environment variable kong derives from it: --web.listen-address is
// CRO_WEB_LISTEN_ADDRESS. The daemon's flags sit at the top so that
// `cro-exporter --help` shows them; the daemon is the default command.
type CLI struct {
	Daemon   struct{}    `cmd:"" default:"1" hidden:"" help:"Run the exporter and controller (the default)."`
	Simulate SimulateCmd `cmd:"" help:"Run the control law against a modelled host with a fake clock: when does it pass, at what cost."`
	Holder   HolderCmd   `cmd:"" hidden:"" help:"Run one holder process; the daemon starts these."`

	WebListenAddress []string `name:"web.listen-address" default:":9847" placeholder:"ADDR" help:"Addresses to serve metrics on, comma separated (host:port)."`
	WebTelemetryPath string   `name:"web.telemetry-path" default:"/metrics" placeholder:"PATH" help:"Path under which to expose metrics."`
	WebConfigFile    string   `name:"web.config.file" type:"existingfile" placeholder:"FILE" help:"Path to a web configuration file (TLS, basic auth), in the format of the Prometheus exporter-toolkit."`

	PathProcfs string `name:"path.procfs" default:"/proc" placeholder:"DIR" help:"procfs mountpoint; point it at the host's /proc from a container."`
	DiskPath   string `name:"disk.path" default:"/" placeholder:"DIR" help:"A path on the filesystem whose utilization is measured and held."`
	StateDir   string `name:"state.dir" default:"/var/lib/cro-exporter" placeholder:"DIR" help:"Directory for the saved averages (created 0700 if missing)."`

	Interval Duration `default:"15s" help:"How often to sample the host, e.g. 15s, 1m."`
	Window   Duration `default:"30d" help:"Length of the audit window the averages stand for, e.g. 30d."`

	TargetCPU    *Ratio `name:"target.cpu" placeholder:"RATIO" help:"Target for the CPU average, e.g. 0.4 or 40% (default: from the host's spec)."`
	TargetMemory *Ratio `name:"target.memory" placeholder:"RATIO" help:"Target for the memory average (default: from the host's spec)."`
	TargetDisk   *Ratio `name:"target.disk" placeholder:"RATIO" help:"Target for the disk average (default: from the host's spec)."`
	Ceiling      Ratio  `default:"90%" help:"No target or setpoint is ever above this ratio."`

	MemoryReserve *Size  `name:"memory.reserve" placeholder:"SIZE" help:"MemAvailable that holders always leave to real work (default: 15% of MemTotal, at least 512MiB)."`
	DiskReserve   *Size  `name:"disk.reserve" placeholder:"SIZE" help:"Free disk space that fill files always leave (default: 10% of the filesystem, at least 1GiB)."`
	DiskFillDir   string `name:"disk.fill-dir" placeholder:"DIR" help:"Private directory of the disk fill files (default: <disk.path>/.cro-fill)."`
	MemoryChunk   Size   `name:"holder.memory-chunk" default:"1GiB" help:"Largest memory holder process; ballast is given back a chunk at a time."`
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
	if c.Interval.D() >= c.Window.D() {
		return fmt.Errorf("--interval=%s must be shorter than --window=%s", c.Interval, c.Window)
	}
	if c.Ceiling == 0 {
		return errors.New("--ceiling must be above 0")
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

// minChunk is the smallest --holder.memory-chunk. Every chunk is a process
// with a Go runtime of its own, a few MiB: smaller chunks would spend a
// large share of the ballast on runtimes and start hundreds of processes
// (4MiB: 256 for 1GiB), which a process limit may refuse mid-start.
const minChunk = 64 << 20

// checkReserves refuses reserves that leave the holders nothing at all on
// the sampled host: a reserve of all the memory or all the disk is a
// mistake in the flag, not a setting.
func (c *CLI) checkReserves(s collector.Sample) error {
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
func (c *CLI) reserves(s collector.Sample) (memory, disk int64) {
	memory, disk = controller.DefaultReserves(s.MemoryTotal, s.DiskSize)
	if c.MemoryReserve != nil {
		memory = int64(*c.MemoryReserve)
	}
	if c.DiskReserve != nil {
		disk = int64(*c.DiskReserve)
	}
	return memory, disk
}

// targets returns the targets given on the command line; resources without
// one take their spec's default.
func (c *CLI) targets() map[collector.Resource]float64 {
	given := map[collector.Resource]*Ratio{collector.CPU: c.TargetCPU, collector.Memory: c.TargetMemory, collector.Disk: c.TargetDisk}
	targets := map[collector.Resource]float64{}
	for r, t := range given {
		if t != nil {
			targets[r] = float64(*t)
		}
	}
	return targets
}

// HolderCmd is the hidden holder subcommands: stable, so that tests and
// --recover can find and drive holders from outside.
type HolderCmd struct {
	Memory struct {
		Size Size `required:"" help:"Bytes to hold resident, at most 1GiB."`
	} `cmd:"" help:"Hold SIZE of resident memory until stdin closes or reads \"stop\"."`
	CPU struct {
		Duty Ratio `default:"0" help:"Share of the whole machine to burn, e.g. 0.3 or 30%."`
	} `cmd:"" name:"cpu" help:"Burn a share of the machine under SCHED_IDLE; stdin sets it with \"duty R\"."`
}

// Ratio is a fraction 0..1, written as 0.4 or 40%.
type Ratio float64

// UnmarshalText parses a ratio.
func (r *Ratio) UnmarshalText(text []byte) error {
	s := string(text)
	num, percent := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(num, 64)
	if percent {
		v /= 100
	}
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("%q is not a ratio between 0 and 1 (0.4 or 40%%)", s)
	}
	*r = Ratio(v)
	return nil
}

// String formats the ratio as a percentage, as it was most likely written.
func (r Ratio) String() string {
	// Rounding hides float noise such as 7.000000000000001%.
	return strconv.FormatFloat(math.Round(float64(r)*1e8)/1e6, 'f', -1, 64) + "%"
}

// Duration is a positive duration in Prometheus' forms: 15s, 1h30m, 30d.
type Duration model.Duration

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := model.ParseDuration(string(text))
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration such as 15s, 5m or 30d", text)
	}
	*d = Duration(v)
	return nil
}

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as Prometheus does.
func (d Duration) String() string { return model.Duration(d).String() }

// Size is a number of bytes, written as 1073741824, 512MiB or 1GiB; KB, MB,
// GB and TB mean the same binary units as KiB, MiB, GiB and TiB.
type Size int64

var sizeUnits = map[string]float64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "KB": 1 << 10,
	"MiB": 1 << 20, "MB": 1 << 20,
	"GiB": 1 << 30, "GB": 1 << 30,
	"TiB": 1 << 40, "TB": 1 << 40,
}

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(text []byte) error {
	str := string(text)
	num := strings.TrimRight(str, "KMGTiB")
	unit, known := sizeUnits[str[len(num):]]
	v, err := strconv.ParseFloat(num, 64)
	if !known || err != nil || math.IsNaN(v) || v < 0 || v*unit > math.MaxInt64 {
		return fmt.Errorf("%q is not a size such as 512MiB or 1GiB", str)
	}
	*s = Size(math.Round(v * unit))
	return nil
}

// String formats the size in the largest binary unit it fills, with two
// decimals where it is not whole in it.
func (s Size) String() string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		n := int64(sizeUnits[u])
		switch {
		case s != 0 && int64(s)%n == 0:
			return strconv.FormatInt(int64(s)/n, 10) + u
		case int64(s) >= n:
			return strconv.FormatFloat(float64(s)/float64(n), 'f', 2, 64) + u
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}
