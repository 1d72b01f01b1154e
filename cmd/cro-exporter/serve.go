package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"

	"github.com/cro-exporter/cro-exporter/collector"
	"github.com/cro-exporter/cro-exporter/internal/regfile"
)

// maxWebFile is the largest web config, certificate, key or client CA file
// read: the real ones are a few KB, a CA bundle a few hundred.
const maxWebFile = 1 << 20

// checkWebConfig checks the web config file at path ("" is none) as
// exporter-toolkit will read it, but first that it and every file it names
// (cert_file, key_file, client_ca_file) is a regular file of at most
// maxWebFile, read without blocking: exporter-toolkit reads them whole,
// waiting on a FIFO for good and on /dev/zero until memory runs out.
func checkWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := checkWebFiles(path); err != nil {
		return err
	}
	return web.Validate(path)
}

// checkWebFiles checks that the web config file at path and every file it
// names is a regular file of at most maxWebFile. A config that does not
// parse names no file: web.Validate says what is wrong with it.
func checkWebFiles(path string) error {
	data, err := regfile.ReadFile(path, maxWebFile)
	if err != nil {
		return err
	}
	var c struct {
		TLS struct {
			Cert     string `yaml:"cert_file"`
			Key      string `yaml:"key_file"`
			ClientCA string `yaml:"client_ca_file"`
		} `yaml:"tls_server_config"`
	}
	if yaml.Unmarshal(data, &c) != nil {
		return nil
	}
	for _, name := range []string{c.TLS.Cert, c.TLS.Key, c.TLS.ClientCA} {
		if name == "" {
			continue
		}
		// As exporter-toolkit has it: relative to the config's dir.
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(path), name)
		}
		if _, err := regfile.ReadFile(name, maxWebFile); err != nil {
			return err
		}
	}
	return nil
}

// webGuard admits a connection only while the web config and the files it
// names pass checkWebFiles. exporter-toolkit reads them again, whole and
// blocking, at every request and TLS handshake, so that a config swapped for
// a FIFO would hang every connection, and one swapped for /dev/zero would
// grow memory until the host ran out. A connection refused is closed unread
// and counted; the fault is logged once when it starts and once when it
// ends. The check and the reads that follow it are not atomic, and a
// keep-alive connection admitted before a swap is not checked again: it
// bounds a mistake, it cannot stop whoever may write the config.
type webGuard struct {
	path    string // the web config file; "" is none, and admits all
	refused prometheus.Counter
	logger  *slog.Logger

	mu      sync.Mutex
	failing bool
}

func newWebGuard(path string, logger *slog.Logger) *webGuard {
	return &webGuard{path: path, logger: logger, refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cro_web_connections_refused_total",
		Help: "Connections closed unserved because the web config file, or a file it names, was not a regular file of at most 1 MiB.",
	})}
}

// guard has every listener of ls admit connections through g.
func (g *webGuard) guard(ls []net.Listener) []net.Listener {
	if g.path == "" {
		return ls
	}
	guarded := make([]net.Listener, len(ls))
	for i, l := range ls {
		guarded[i] = guardedListener{l, g}
	}
	return guarded
}

// admit checks the web config's files; it counts and logs a refusal.
func (g *webGuard) admit() bool {
	err := checkWebFiles(g.path)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case err != nil && !g.failing:
		g.logger.Error("web config not usable: refusing connections until it is", "err", err)
	case err == nil && g.failing:
		g.logger.Info("web config usable again: serving connections", "web_config", g.path)
	}
	if err != nil {
		g.refused.Inc()
	}
	g.failing = err != nil
	return err == nil
}

// guardedListener accepts the connections its guard admits, and closes
// the others.
type guardedListener struct {
	net.Listener
	guard *webGuard
}

func (l guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.guard.admit() {
			return c, err
		}
		c.Close()
	}
}

// listen opens every listen address, so that a busy port fails the start
// before anything is held, and so the log can name the real port of ":0".
// Each listener accepts at most maxConns connections at a time.
func listen(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(ls)
			return nil, err
		}
		ls = append(ls, limit(l, maxConns))
	}
	return ls, nil
}

// closeAll closes every listener of ls; closing one twice does no harm.
func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// Limits of the HTTP side. Every connection costs the daemon a file
// descriptor, and the tick and the give-way watcher need descriptors to
// read /proc: idle or slow clients must never take them all. A scraper
// needs one connection, a handful of Prometheus servers a few; 64 leaves
// room for many and costs at most 64 descriptors and 64 goroutines per
// listener, whatever the clients do. Clients beyond it wait in the
// kernel's listen backlog, which costs the daemon nothing.
const (
	maxConns = 64
	// A scraper sends its request at once; one that sends nothing in
	// 10 s frees its slot.
	readHeaderTimeout = 10 * time.Second
	// A request is a GET with no body: headers and all within 15 s.
	readTimeout = 15 * time.Second
	// Longer than promhttp's handler timeout (scrapeTimeout), so that a
	// slow gather ends in its 503 rather than in a cut connection.
	writeTimeout  = scrapeTimeout + 5*time.Second
	scrapeTimeout = 10 * time.Second
	// Longer than Prometheus' default 1m scrape interval, so that its
	// keep-alive connection is reused; an abandoned one frees its slot.
	idleTimeout = 90 * time.Second
	// Scrape requests carry a few short headers (a bearer token or basic
	// auth at most): 64 KiB is ample, and bounds each connection's buffer.
	maxHeaderBytes = 64 << 10
)

// limitListener accepts at most cap(slots) connections at a time: Accept
// waits while that many are open.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

// limit wraps l to accept at most n connections at a time.
func limit(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

// Accept takes a slot, waiting for one, then accepts; the connection gives
// its slot back when it is closed.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
}

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// limitConn is a connection that gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// shutdownGrace is how long a scrape in flight may take to finish at exit.
const shutdownGrace = 300 * time.Millisecond

// serve serves the gathered metrics and a landing page on ls, with TLS and
// basic auth from the exporter-toolkit web config file, until ctx ends.
// A scrape writes the bytes the snapshot encoded at the last tick,
// negotiated as promhttp with these options negotiates.
func serve(ctx context.Context, ls []net.Listener, cli *CLI, metrics *collector.Snapshot, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle(cli.WebTelemetryPath, metrics.Handler(promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		MaxRequestsInFlight: 10,
		Timeout:             scrapeTimeout,
	}))
	if cli.WebTelemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "cro-exporter",
			Description: "Holds the host's CPU, memory and disk utilization at its audit target",
			Version:     version,
			Links:       []web.LandingLinks{{Address: cli.WebTelemetryPath, Text: "Metrics"}},
			Profiling:   "false", // no /debug/pprof is served
		})
		if err != nil {
			return err
		}
		mux.Handle("/", landing)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Into our log, not plain text on stderr; at debug level, since
		// every port scanner's broken handshake lands here.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() {
		done <- web.ServeMultiple(ls, srv, &web.FlagConfig{
			WebListenAddresses: &cli.WebListenAddress,
			WebConfigFile:      &cli.WebConfigFile,
		}, slog.New(quietListening{logger.Handler()}))
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// A scrape in flight gets a moment to finish (it writes bytes
		// encoded at the tick), then every connection is cut: no client
		// can delay the exit, or fail it. The moment is what any exit
		// takes while a connection that has sent nothing is under 5 s
		// old: Shutdown does not count those as idle.
		shutdown, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if srv.Shutdown(shutdown) != nil {
			srv.Close()
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// quietListening drops exporter-toolkit's "Listening on" and "TLS is
// disabled." lines: the daemon has logged each listener already, with its
// web config, before its first tick. "TLS is enabled." and every warning
// still show.
type quietListening struct{ slog.Handler }

func (h quietListening) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "Listening on" || r.Message == "TLS is disabled." {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietListening) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietListening{h.Handler.WithAttrs(attrs)}
}

func (h quietListening) WithGroup(name string) slog.Handler {
	return quietListening{h.Handler.WithGroup(name)}
}
