package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// SimulateCmd is `cro-exporter simulate`: the daemon's control law and
// averages against a modelled host, with a fake clock. The daemon's flags
// (--interval, --preset, --objective.*, --audit.period, --window*,
// --target.*, --ceiling, the reserves) apply.
type SimulateCmd struct {
	Days   int    `default:"30" help:"Days to simulate."`
	Spec   string `default:"small" enum:"small,medium,large" help:"The host's spec, as MemTotal 7.6GiB (an 8 GB VM), 11.7GiB or 15.4GiB: ${enum}."`
	Memory *Size  `placeholder:"SIZE" help:"The host's MemTotal, which picks its spec; replaces --spec."`
	CPUs   int    `name:"cpus" default:"2" help:"The host's CPUs."`
	Disk   Size   `default:"100GiB" help:"The size of the host's filesystem."`

	Idle   bool       `xor:"source" help:"Real usage of an idle host: cpu 1%, memory 10%, disk 10% (the default)."`
	Load   *RealUsage `xor:"source" placeholder:"cpu=R,memory=R,disk=R" help:"Constant real usage; resources not named stay idle."`
	Trace  string     `xor:"source" type:"existingfile" placeholder:"FILE" help:"Real usage from a CSV file: seconds since start, cpu, memory, disk ratios; each row holds until the next, the last until the end."`
	Format string     `default:"table" enum:"table,csv" help:"Output: a table per day, or CSV for plotting: ${enum}."`
}

// idleUsage is the real usage of a freshly installed, idle host.
var idleUsage = RealUsage{0.01, 0.10, 0.10}

// specMemory is the MemTotal each spec is simulated with: what 8, 12 and
// 16 GB cloud VMs report.
var specMemory = map[string]float64{"small": 7.6, "medium": 11.7, "large": 15.4}

// RealUsage is the real usage of a simulated host, a ratio per resource,
// written cpu=0.1,memory=20%,disk=0.1.
type RealUsage [len(host.Resources)]float64

// UnmarshalText parses a usage; resources not named keep idle usage.
func (u *RealUsage) UnmarshalText(text []byte) error {
	*u = idleUsage
	for _, part := range strings.Split(string(text), ",") {
		name, value, _ := strings.Cut(part, "=")
		i := slices.Index(host.Resources[:], host.Resource(name))
		if i < 0 {
			return fmt.Errorf("%q: %q is not cpu, memory or disk", text, name)
		}
		var r Ratio
		if err := r.UnmarshalText([]byte(value)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		u[i] = float64(r)
	}
	return nil
}

// maxTrace is the largest --trace read: a row every 15 s for a year is
// about 60 MB.
const maxTrace = 64 << 20

// row is one row of a trace: real usage from a time on.
type row struct {
	at    time.Duration
	usage RealUsage
}

// parseTrace reads a trace: rows of seconds since start and the cpu, memory
// and disk ratios, in rising time order; an optional first row of column
// names; blank lines and # comments are skipped. Errors name the line.
func parseTrace(r io.Reader) ([]row, error) {
	var rows []row
	lines := bufio.NewScanner(r)
	for n := 1; lines.Scan(); n++ {
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields, err := csv.NewReader(strings.NewReader(line)).Read()
		if err != nil || len(fields) != 4 {
			return nil, fmt.Errorf("line %d: want 4 fields (seconds,cpu,memory,disk), got %q", n, line)
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(fields[0]), 64)
		if err != nil && n == 1 && len(rows) == 0 {
			continue // a header
		}
		if err != nil || secs < 0 {
			return nil, fmt.Errorf("line %d: %q is not seconds since start", n, fields[0])
		}
		at := time.Duration(secs * float64(time.Second))
		if len(rows) > 0 && at <= rows[len(rows)-1].at {
			return nil, fmt.Errorf("line %d: time %s is not after the previous row's", n, fields[0])
		}
		var u RealUsage
		for i, f := range fields[1:] {
			var ratio Ratio
			if err := ratio.UnmarshalText([]byte(strings.TrimSpace(f))); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, host.Resources[i], err)
			}
			u[i] = float64(ratio)
		}
		rows = append(rows, row{at, u})
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no rows")
	}
	return rows, nil
}

// real is the usage the rows give at elapsed: the last row at or before
// it, or the first row before any.
func real(rows []row) func(time.Duration) [len(host.Resources)]float64 {
	return func(elapsed time.Duration) [len(host.Resources)]float64 {
		i, _ := slices.BinarySearchFunc(rows, elapsed, func(r row, t time.Duration) int {
			return int(r.at - t)
		})
		if i == len(rows) || rows[i].at > elapsed {
			i = max(0, i-1)
		}
		return rows[i].usage
	}
}

// simulate runs the simulation the flags describe and writes its days.
func simulate(cli *CLI, w io.Writer) error {
	sc := cli.Simulate
	if sc.Days <= 0 || sc.CPUs <= 0 || sc.Disk <= 0 {
		return usageError{fmt.Errorf("--days, --cpus and --disk must be above 0")}
	}
	memory := uint64(specMemory[sc.Spec] * (1 << 30))
	if sc.Memory != nil {
		memory = uint64(*sc.Memory)
	}
	rows, source := []row{{0, idleUsage}}, "idle"
	switch {
	case sc.Load != nil:
		rows, source = []row{{0, *sc.Load}}, "constant"
	case sc.Trace != "":
		data, err := regfile.ReadFile(sc.Trace, maxTrace)
		if err != nil {
			return usageError{fmt.Errorf("--trace=%s: %w", sc.Trace, err)}
		}
		if rows, err = parseTrace(bytes.NewReader(data)); err != nil {
			return usageError{fmt.Errorf("--trace=%s: %w", sc.Trace, err)}
		}
		source = "from " + sc.Trace
	}
	spec := controller.Classify(memory)
	given, err := cli.targets(sc.CPUs)
	if err != nil {
		return usageError{err}
	}
	targets, err := controller.Targets(spec, given, float64(cli.Ceiling))
	if err != nil {
		return usageError{err}
	}
	model := &controller.Model{CPUs: sc.CPUs, MemoryTotal: memory, DiskSize: uint64(sc.Disk), Real: real(rows)}
	memReserve, diskReserve := cli.reserves(host.Sample{MemoryTotal: memory, DiskSize: uint64(sc.Disk)})
	sim := &controller.Simulation{
		Model:         model,
		Averages:      cli.newAverages(),
		Targets:       targets,
		Ceiling:       float64(cli.Ceiling),
		MemoryReserve: memReserve,
		DiskReserve:   diskReserve,
		Interval:      cli.Interval.D(),
		Start:         time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	days := sim.Run(sc.Days)
	if sc.Format == "csv" {
		return writeCSV(w, days, cli.objectives())
	}
	fmt.Fprintf(w, "%s host (MemTotal %s), %d CPUs, %s disk; real usage %s (first row: cpu %s, memory %s, disk %s); a sample every %s, for %d days\n\n",
		spec.Name, Size(memory), sc.CPUs, sc.Disk, source, pct(rows[0].usage[0]), pct(rows[0].usage[1]), pct(rows[0].usage[2]), cli.Interval, sc.Days)
	writeTable(w, days, cli.objectives())
	return nil
}

// writeTable writes a row per day: per resource the audited statistic at
// the end of the day (as the auditor computes it over the trailing window),
// the target and the mean holder load, * on the day the statistic first
// met its target; after CPU, the CPU-hours the holders spent that day and
// those a constant hold at the CPU target would have spent. Then when each
// resource passed, and at what cost.
func writeTable(w io.Writer, days []controller.Day, objectives map[host.Resource]controller.Objective) {
	fmt.Fprintf(w, "%5s", "day")
	var width [len(host.Resources)]int // of the statistic's column
	for i, r := range host.Resources {
		head := string(r) + " " + Statistic(objectives[r].Quantile).String()
		width[i] = max(10, len(head))
		fmt.Fprintf(w, "  %*s %7s %7s", width[i], head, "target", "holders")
		if r == host.CPU {
			fmt.Fprintf(w, "  %7s %7s", "cpu-h", "const-h")
		}
	}
	fmt.Fprintln(w)
	var (
		passed               [len(host.Resources)]int
		held                 [len(host.Resources)]float64
		cpuHours, constHours float64
	)
	for d, day := range days {
		fmt.Fprintf(w, "%5d", d+1)
		for i, r := range host.Resources {
			mark := " "
			if met(day, i) && passed[i] == 0 {
				passed[i], mark = d+1, "*"
			}
			held[i] += day.Holder[i] / float64(len(days))
			fmt.Fprintf(w, "  %*s%s %7s %7s", width[i]-1, pct(day.Audit[i]), mark, pct(day.Target[i]), pct(day.Holder[i]))
			if r == host.CPU {
				fmt.Fprintf(w, "  %7.2f %7.2f", day.HolderCPUHours, day.ConstantCPUHours)
			}
		}
		cpuHours += day.HolderCPUHours
		constHours += day.ConstantCPUHours
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\n* the day the audited statistic first met its target, at the day's end")
	fmt.Fprintln(w, "cpu-h: CPU-hours the holders spent that day; const-h: those a constant hold at the CPU target would have spent")
	for i, r := range host.Resources {
		when := "never"
		if passed[i] > 0 {
			when = fmt.Sprintf("on day %d", passed[i])
		}
		fmt.Fprintf(w, "%-6s meets its target %s (%s); holders took %s of it on average\n", r, when, describe(objectives[r]), pct(held[i]))
	}
	fmt.Fprintf(w, "CPU holders spent %.2f CPU-hours; a constant hold at the target would have spent %.2f", cpuHours, constHours)
	if constHours > 0 {
		fmt.Fprintf(w, ": %.3f of it", cpuHours/constHours)
	}
	fmt.Fprintln(w)
}

// met tells whether resource i's audited statistic met its target at the
// end of the day.
func met(day controller.Day, i int) bool { return day.Audit[i] >= day.Target[i] }

// writeCSV writes a row per day and resource. New columns go last, so that
// a script that reads the first ones by position keeps working; met tells
// whether the audited statistic met the target at the day's end. The
// CPU-hours are the day's, on the cpu row.
func writeCSV(w io.Writer, days []controller.Day, objectives map[host.Resource]controller.Objective) error {
	out := csv.NewWriter(w)
	out.Write([]string{"day", "resource", "average", "target", "holder_load", "met", "statistic", "audit", "holder_cpu_hours", "constant_cpu_hours"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }
	for d, day := range days {
		for i, r := range host.Resources {
			held, constant := "", ""
			if r == host.CPU {
				held, constant = f(day.HolderCPUHours), f(day.ConstantCPUHours)
			}
			out.Write([]string{strconv.Itoa(d + 1), string(r), f(day.Average[i]), f(day.Target[i]), f(day.Holder[i]),
				strconv.FormatBool(met(day, i)), Statistic(objectives[r].Quantile).String(), f(day.Audit[i]), held, constant})
		}
	}
	out.Flush()
	return out.Error()
}

func pct(x float64) string { return strconv.FormatFloat(x*100, 'f', 2, 64) + "%" }
