// Command cro-exporter keeps the host's CPU, memory and disk utilization at
// the level its spec demands and exports what it sees and does to Prometheus.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	commonversion "github.com/prometheus/common/version"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/controller"
	"github.com/cro-exporter/cro-exporter/holder"
	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// started is when the process started, near enough: package variables are
// set before main runs.
var started = time.Now()

// Exit statuses: 2 for anything wrong in the command line, before anything
// is started, as the GNU and LSB conventions have it.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as the user's to fix on the command line.
type usageError struct{ error }

// run parses args and runs the exporter until ctx ends; it returns the exit
// status. It writes usage errors to stderr, and logs there too unless
// handler is given, which makes the log's handler at its level (a Windows
// service logs to the event log).
func run(ctx context.Context, args []string, stderr io.Writer, handler func(slog.Level) slog.Handler) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("cro-exporter"),
		kong.Description("Keeps the host's CPU, memory and disk utilization averages at the level its spec demands, with the least extra load, and exports them to Prometheus."),
		kong.DefaultEnvars("CRO"),
		cliVars(version),
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
	logger := newLogger(stderr, cli.LogLevel, cli.LogFormat, handler)
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

// daemon checks everything the flags point at and takes the first sample;
// only then does it open the listeners, and only once they are open does it
// take the state dir's lock and start holders, so that a bad flag or a busy
// port leaves nothing behind. It runs the loop until ctx ends; then it stops
// every holder and removes every fill file. A ctx that ends during the
// start ends it at once, with what it started undone, as a stop: no error.
func daemon(ctx context.Context, cli *CLI, logger *slog.Logger) (err error) {
	// Its only output is the log on stderr: a log reader that goes away
	// (a closed pipe) must cost log lines, never the daemon, which Go
	// would otherwise kill with SIGPIPE at the next line, before it could
	// stop its holders. With SIGPIPE ignored, a failed write is an EPIPE
	// the log handler drops.
	signal.Ignore(syscall.SIGPIPE)
	// The ticks, and the give-way watcher while anything is held, make
	// garbage steadily, so the heap grows to the collector's 4 MiB floor
	// (at GOGC 100) however little is live. Half of it, 2 MiB, is ample for what stays live, and the
	// idle RSS (cro-bench idle measures it) is what the host pays for
	// the daemon all day; the price, collections about twice as often,
	// is a millisecond of CPU or so each. GOGC, when set, still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	h, err := unlessDone(ctx, func() (*checked, error) { return checkHost(cli) })
	if err != nil || ctx.Err() != nil {
		return stopped(ctx, err)
	}
	if ctx, err = askedToStop(ctx, cli.StateDir); err != nil {
		return err
	}
	h.cgroups = ownCgroups(logger)
	listeners, err := listen(cli.WebListenAddress)
	if err != nil || ctx.Err() != nil {
		return stopped(ctx, err)
	}
	defer closeAll(listeners) // serve closes them too; this is for a failed start
	held, err := openHolders(cli, h, logger)
	if err != nil {
		return err
	}
	if held.manager != nil {
		// For a start that fails or is stopped from here; a run that
		// ends stops them itself, and Close again does nothing.
		defer func() { err = errors.Join(err, stopHolders(held.manager)) }()
	}
	if ctx.Err() != nil {
		return nil
	}
	web := newWebGuard(cli.WebConfigFile, logger)
	loop, snapshot := newLoop(cli, h, held, web.refused, logger)
	objectives := cli.objectives()
	logger.Info("starting", "version", version, "spec", h.spec.Name, "memory_total", h.first.MemoryTotal, "dry_run", cli.DryRun,
		"target_cpu", h.targets[host.CPU], "target_memory", h.targets[host.Memory], "target_disk", h.targets[host.Disk],
		"memory_reserve", h.memReserve, "disk_reserve", h.diskReserve, "interval", cli.Interval.String(),
		"objective_cpu", describe(objectives[host.CPU]), "objective_memory", describe(objectives[host.Memory]), "objective_disk", describe(objectives[host.Disk]))
	for _, l := range listeners {
		logger.Info("listening", "address", l.Addr().String(), "web_config", cli.WebConfigFile)
	}
	// The first tick before the first scrape is served: clients that
	// connect meanwhile wait in the listen backlog.
	loop.Step(h.first)
	return runUntilDone(ctx, cli, loop, h.watcher, web.guard(listeners), snapshot, held.manager, logger)
}

// unlessDone returns what check returns, or, should ctx end first, nil at
// once: a check that waits on the host (statfs of a hung network
// filesystem, say) must not keep a stop from ending the start. Such a check
// is left behind, to end with the process; it starts nothing.
func unlessDone[T any](ctx context.Context, check func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := check()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, nil
	}
}

// stopped is what a start that ends before anything is held returns: err,
// unless ctx ended, which is a stop like any other.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// checked is what the daemon learns before it starts anything: a reader for
// the loop and one for the give-way watcher, the first sample, taken at now,
// and what the flags make of it.
type checked struct {
	reader, watcher         *host.Reader
	now                     time.Time
	first                   host.Sample
	spec                    controller.Spec
	targets                 map[host.Resource]float64
	memReserve, diskReserve int64
	// cgroups are the daemon's own, whose limits bound the holders; nil
	// where they could not be found.
	cgroups *cgroup.Group
}

// checkHost checks the flags and everything they point at, and takes the
// first sample, starting nothing: a bad flag is a usage error.
func checkHost(cli *CLI) (*checked, error) {
	if err := checkWebConfig(cli.WebConfigFile); err != nil {
		return nil, usageError{fmt.Errorf("--web.config.file=%s: %w", cli.WebConfigFile, err)}
	}
	reader, err := newReader(cli)
	if err != nil {
		return nil, err
	}
	// The give-way watcher reads the host on its own: a read moves the CPU
	// baseline.
	watcher, err := newReader(cli)
	if err != nil {
		return nil, err
	}
	// A dry run writes nothing: the state dir may be missing, and is
	// never created.
	if err := controller.CheckStateDir(cli.StateDir, !cli.DryRun); err != nil {
		return nil, usageError{fmt.Errorf("--state.dir=%s: %w", cli.StateDir, err)}
	}
	if err := holder.CheckFillDir(cli.fillDir(), cli.DiskPath, cli.StateDir); err != nil {
		return nil, usageError{fmt.Errorf("--disk.fill-dir=%s: %w", cli.fillDir(), err)}
	}
	now := time.Now()
	first, err := reader.Read(now)
	if err != nil {
		return nil, err
	}
	spec := controller.Classify(first.MemoryTotal)
	given, err := cli.targets(first.CPUs)
	if err != nil {
		return nil, usageError{err}
	}
	targets, err := controller.Targets(spec, given, float64(cli.Ceiling))
	if err != nil {
		return nil, usageError{err}
	}
	if err := cli.checkReserves(first); err != nil {
		return nil, usageError{err}
	}
	h := &checked{reader: reader, watcher: watcher, now: now, first: first, spec: spec, targets: targets}
	h.memReserve, h.diskReserve = cli.reserves(first)
	return h, nil
}

// holding is what the loop holds the host with: the holder manager, the
// averages, and the state dir they are saved in. A dry run holds nothing
// and saves nothing.
type holding struct {
	manager  *holder.Manager    // nil in a dry run
	holders  controller.Holders // none in a dry run
	averages *controller.Averages
	stateDir string // "" in a dry run: it never saves
}

// openHolders takes the state dir's lock and opens the holder manager, and
// loads the averages under the lock; a dry run only reads them.
func openHolders(cli *CLI, h *checked, logger *slog.Logger) (holding, error) {
	held := holding{averages: cli.newAverages()}
	if cli.DryRun {
		held.averages.Read(cli.StateDir, logger)
		return held, nil
	}
	cfg := holderConfig(cli, logger)
	cfg.DiskPath = cli.DiskPath // --recover cleans up a fill dir wherever it is
	cfg.Started = started
	if h.cgroups != nil {
		cfg.Pids = h.cgroups.Pids
	}
	m, err := holder.Open(cfg)
	if err != nil {
		return held, err
	}
	// Under the lock: a daemon still saving them on its way out is done.
	if err := held.averages.Load(cli.StateDir, h.now, logger); err != nil {
		return held, errors.Join(err, stopHolders(m))
	}
	held.manager, held.holders, held.stateDir = m, m, cli.StateDir
	return held, nil
}

// newLoop builds the loop and the metrics it publishes: each tick
// refreshes a snapshot of the loop's state, the Go and process metrics,
// cro_build_info and the connections the web guard refused, which scrapes
// serve.
func newLoop(cli *CLI, h *checked, held holding, refused prometheus.Collector, logger *slog.Logger) (*controller.Loop, *collector.Snapshot) {
	exporter := collector.NewExporter()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		exporter,
		buildInfo(),
		refused,
	)
	snapshot := collector.NewSnapshot(reg)
	cfg := controller.Config{
		Read:          h.reader.Read,
		Holders:       held.holders,
		Averages:      held.averages,
		Spec:          h.spec,
		Targets:       h.targets,
		Ceiling:       float64(cli.Ceiling),
		MemoryReserve: h.memReserve,
		DiskReserve:   h.diskReserve,
		Chunk:         int64(cli.MemoryChunk),
		StateDir:      held.stateDir,
		Interval:      cli.Interval.D(),
		Publish: func(s *controller.State) {
			exporter.Publish(s)
			if err := snapshot.Refresh(); err != nil {
				logger.Warn("gathering metrics", "err", err)
			}
		},
		Logger: logger,
	}
	if h.cgroups != nil {
		cfg.Cgroup = h.cgroups.Read
	}
	return controller.NewLoop(cfg), snapshot
}

// runUntilDone serves the snapshot on listeners, has the loop watch the
// host with watcher and run until ctx ends or the server fails; then it
// stops the holders of m (nil in a dry run) before the server has shut
// down, so that no client delays them.
func runUntilDone(ctx context.Context, cli *CLI, loop *controller.Loop, watcher *host.Reader,
	listeners []net.Listener, snapshot *collector.Snapshot, m *holder.Manager, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, listeners, cli, snapshot, logger)
		cancel() // a server that fails ends the loop too
	}()
	watched := make(chan struct{})
	go func() {
		loop.Watch(ctx, watcher.ReadParts, watchEvery)
		close(watched)
	}()
	loopErr := loop.Run(ctx)
	cancel()
	<-watched
	var stopErr error
	if m != nil {
		stopErr = stopHolders(m)
	}
	return errors.Join(loopErr, stopErr, <-served)
}

// stopHolders stops every holder and removes every fill file.
func stopHolders(m *holder.Manager) error {
	if err := m.Close(); err != nil {
		return fmt.Errorf("stopping the holders: %w", err)
	}
	return nil
}

// watchEvery is how often the give-way watcher reads the host: well under a
// second, for a few hundred microseconds of CPU a second.
const watchEvery = 250 * time.Millisecond

// holderConfig is what the daemon's holder manager and --recover share.
func holderConfig(cli *CLI, logger *slog.Logger) holder.Config {
	return holder.Config{StateDir: cli.StateDir, FillDir: cli.fillDir(), Chunk: int64(cli.MemoryChunk), Logger: logger}
}

// buildInfo is cro_build_info: client_golang's version collector, as
// node_exporter exports it, labeled by our version (which -X main.version
// sets), the VCS revision Go stamped into the binary, the branch (which
// make build sets with -X on prometheus/common/version.Branch), the Go
// version, the platform and the build tags. The collector reads the
// version from prometheus/common/version, so ours is set there first.
func buildInfo() prometheus.Collector {
	commonversion.Version = version
	return versioncollector.NewCollector("cro")
}
