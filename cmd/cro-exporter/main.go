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
	if _, err := parser.Parse(args); err != nil {
		fmt.Fprintf(stderr, "cro-exporter: error: %v\n", err)
		return exitUsage
	}
	logger := newLogger(stderr, cli.LogLevel, cli.LogFormat)
	if err := daemon(ctx, &cli, logger); err != nil {
		if errors.As(err, new(usageError)) {
			fmt.Fprintf(stderr, "cro-exporter: error: %v\n", err)
			return exitUsage
		}
		logger.Error("exiting", "err", err)
		return exitFailure
	}
	return 0
}

// daemon checks everything the flags point at, takes the first sample, and
// only then opens the listeners and runs the loop until ctx ends.
func daemon(ctx context.Context, cli *CLI, logger *slog.Logger) error {
	if err := web.Validate(cli.WebConfigFile); err != nil {
		return usageError{fmt.Errorf("--web.config.file=%s: %w", cli.WebConfigFile, err)}
	}
	reader, err := collector.NewReader(cli.PathProcfs, cli.DiskPath)
	if _, ok := errors.AsType[*collector.DiskError](err); ok {
		return usageError{fmt.Errorf("--disk.path=%s: %w", cli.DiskPath, err)}
	} else if err != nil {
		return usageError{fmt.Errorf("--path.procfs=%s: %w", cli.PathProcfs, err)}
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

	exporter := collector.NewExporter()
	loop := &controller.Loop{
		Read:     reader.Read,
		Averages: averages,
		Spec:     spec,
		Targets:  targets,
		Ceiling:  float64(cli.Ceiling),
		StateDir: cli.StateDir,
		Interval: cli.Interval.D(),
		Publish:  exporter.Publish,
		Logger:   logger,
	}
	loop.Step(first)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		exporter,
		buildInfo(),
	)
	listeners, err := listen(cli.WebListenAddress)
	if err != nil {
		return err
	}
	logger.Info("starting", "version", version, "spec", spec.Name, "memory_total", first.MemoryTotal,
		"target_cpu", targets[collector.CPU], "target_memory", targets[collector.Memory], "target_disk", targets[collector.Disk])

	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, listeners, cli, reg, logger)
		cancel() // a server that fails ends the loop too
	}()
	loopErr := loop.Run(ctx)
	cancel()
	return errors.Join(loopErr, <-served)
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
