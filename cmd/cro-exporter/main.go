// Command cro-exporter keeps the host's CPU, memory and disk utilization at
// the level its spec demands and exports what it sees and does to Prometheus.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/holder"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses: 2 for anything wrong in the command line, before anything
// is started, as the GNU and LSB conventions have it.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as the user's to fix on the command line.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// run parses args and runs the exporter until ctx ends; it returns the exit
// status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("cro-exporter"),
		kong.Description("Keeps the host's CPU, memory and disk utilization averages at the level its spec demands, with the least extra load, and exports them to Prometheus."),
		kong.DefaultEnvars("CRO"),
		kong.Vars{"version": version},
		kong.Writers(os.Stdout, stderr),
	)
	if err != nil {
		panic(err) // the CLI struct itself is wrong
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "cro-exporter: error: %v\n", err)
		return exitUsage
	}
	logger := newLogger(stderr, cli.LogLevel, cli.LogFormat)
	switch kctx.Command() {
	case "holder memory":
		err = holderMemory(int64(cli.Holder.Memory.Size))
	case "holder cpu":
		err = holder.RunCPU(float64(cli.Holder.CPU.Duty), os.Stdin, os.Stdout)
	case "simulate":
		err = simulate(&cli, os.Stdout)
	default:
		if cli.Recover {
			err = recoverHost(&cli, os.Stdout, logger)
		} else {
			err = daemon(ctx, &cli, logger)
		}
	}
	if err != nil {
		if errors.As(err, new(usageError)) {
			fmt.Fprintf(stderr, "cro-exporter: error: %v\n", err)
			return exitUsage
		}
		logger.Error("exiting", "err", err)
		return exitFailure
	}
	return 0
}

// holderMemory runs a memory holder after checking its size, so that a bad
// size is a usage error and allocates nothing.
func holderMemory(size int64) error {
	if err := holder.CheckMemorySize(size); err != nil {
		return usageError{fmt.Errorf("--size=%s: %w", Size(size), err)}
	}
	return holder.RunMemory(size, os.Stdin, os.Stdout)
}

// daemon checks everything the flags point at, takes the first sample, and
// only then opens the listeners and runs the loop until ctx ends; then it
// stops every holder and removes every fill file.
func daemon(ctx context.Context, cli *CLI, logger *slog.Logger) (err error) {
	if err := web.Validate(cli.WebConfigFile); err != nil {
		return usageError{fmt.Errorf("--web.config.file=%s: %w", cli.WebConfigFile, err)}
	}
	reader, err := newReader(cli)
	if err != nil {
		return err
	}
	// The give-way watcher reads the host on its own: a read moves the CPU
	// baseline.
	watcher, err := newReader(cli)
	if err != nil {
		return err
	}
	if err := controller.CheckStateDir(cli.StateDir); err != nil {
		return usageError{fmt.Errorf("--state.dir=%s: %w", cli.StateDir, err)}
	}
	now := time.Now()
	first, err := reader.Read(now)
	if err != nil {
		return err
	}
	spec := controller.Classify(first.MemoryTotal)
	targets, err := controller.Targets(spec, cli.targets(), float64(cli.Ceiling))
	if err != nil {
		return usageError{err}
	}
	// A sample stands for at most two intervals before it: a longer gap,
	// while the exporter was down, was not observed.
	averages := controller.NewAverages(cli.Window.D(), 2*cli.Interval.D())
	if err := averages.Load(cli.StateDir, now, logger); err != nil {
		return err
	}
	var holders controller.Holders // none in a dry run
	if !cli.DryRun {
		m, err := holder.Open(holderConfig(cli, logger))
		if err != nil {
			return err
		}
		defer func() {
			if cerr := m.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("stopping the holders: %w", cerr))
			}
		}()
		holders = managed{m}
	}

	exporter := collector.NewExporter()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		exporter,
		buildInfo(),
	)
	snapshot := collector.NewSnapshot(reg)
	memReserve, diskReserve := cli.reserves(first)
	loop := &controller.Loop{
		Read:          reader.Read,
		Holders:       holders,
		Averages:      averages,
		Spec:          spec,
		Targets:       targets,
		Ceiling:       float64(cli.Ceiling),
		MemoryReserve: memReserve,
		DiskReserve:   diskReserve,
		Chunk:         int64(cli.MemoryChunk),
		StateDir:      cli.StateDir,
		Interval:      cli.Interval.D(),
		Publish: func(s *collector.State) {
			exporter.Publish(s)
			if err := snapshot.Refresh(); err != nil {
				logger.Warn("gathering metrics", "err", err)
			}
		},
		Logger: logger,
	}
	loop.Step(first)

	listeners, err := listen(cli.WebListenAddress)
	if err != nil {
		return err
	}
	logger.Info("starting", "version", version, "spec", spec.Name, "memory_total", first.MemoryTotal, "dry_run", cli.DryRun,
		"target_cpu", targets[collector.CPU], "target_memory", targets[collector.Memory], "target_disk", targets[collector.Disk],
		"memory_reserve", memReserve, "disk_reserve", diskReserve)

	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, listeners, cli, snapshot, logger)
		cancel() // a server that fails ends the loop too
	}()
	watched := make(chan struct{})
	go func() {
		loop.Watch(ctx, watcher.Read, watchEvery)
		close(watched)
	}()
	loopErr := loop.Run(ctx)
	cancel()
	<-watched
	return errors.Join(loopErr, <-served)
}

// watchEvery is how often the give-way watcher reads the host: well under a
// second, for a few hundred microseconds of CPU a second.
const watchEvery = 250 * time.Millisecond

// newReader opens the host's procfs and disk path, naming the flag at fault.
func newReader(cli *CLI) (*collector.Reader, error) {
	r, err := collector.NewReader(cli.PathProcfs, cli.DiskPath)
	if _, ok := errors.AsType[*collector.DiskError](err); ok {
		return nil, usageError{fmt.Errorf("--disk.path=%s: %w", cli.DiskPath, err)}
	} else if err != nil {
		return nil, usageError{fmt.Errorf("--path.procfs=%s: %w", cli.PathProcfs, err)}
	}
	return r, nil
}

func holderConfig(cli *CLI, logger *slog.Logger) holder.Config {
	return holder.Config{StateDir: cli.StateDir, FillDir: cli.fillDir(), Chunk: int64(cli.MemoryChunk), Logger: logger}
}

// managed is the holder manager as the controller sees it: the two
// packages' types have the same fields, so they convert.
type managed struct{ *holder.Manager }

func (m managed) Apply(l controller.Load) error { return m.Manager.Apply(holder.Desired(l)) }

func (m managed) Usage() (controller.HolderUsage, error) {
	u, err := m.Manager.Usage()
	return controller.HolderUsage(u), err
}

// errIncomplete is --recover's failure: its report names what is left.
var errIncomplete = errors.New("recovery incomplete: see the report")

// recoverHost is --recover: it stops the daemon and every holder, removes
// every fill file, keeps the averages, and reports, with the host's usage
// after.
func recoverHost(cli *CLI, w io.Writer, logger *slog.Logger) error {
	rep, err := holder.Recover(holderConfig(cli, logger))
	if err != nil {
		return err
	}
	rep.WriteTo(w)
	if reader, err := newReader(cli); err == nil {
		if s, err := reader.Read(time.Now()); err == nil {
			fmt.Fprintf(w, "Host usage now: CPU %s (since boot), memory %s, disk %s.\n",
				pct(s.Usage(collector.CPU)), pct(s.Usage(collector.Memory)), pct(s.Usage(collector.Disk)))
		}
	}
	if rep.Failed() {
		return errIncomplete
	}
	return nil
}

// buildInfo is cro_build_info: the version, the VCS revision Go stamped into
// the binary, and the Go version.
func buildInfo() prometheus.Collector {
	revision := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "cro_build_info",
		Help:        "A metric with a constant '1' value labeled by the version, revision and Go version cro-exporter was built from.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
