package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/common/model"

	"github.com/cro-exporter/cro-exporter/collector"
)

// CLI is the command line. Every flag can also be set through the
// environment variable kong derives from it: --web.listen-address is
// CRO_WEB_LISTEN_ADDRESS.
type CLI struct {
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

	LogLevel  string `name:"log.level" default:"info" enum:"debug,info,warn,error" help:"Only log messages of this severity or above: ${enum}."`
	LogFormat string `name:"log.format" default:"text" enum:"text,json" help:"Log format: text (coloured on a terminal) or json."`

	Version kong.VersionFlag `help:"Print the version and exit."`
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
	return nil
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
