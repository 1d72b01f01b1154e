package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// listen opens every listen address, so that a busy port fails the start
// before the exporter runs, and so the log can name the real port of ":0".
func listen(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// serve serves the gathered metrics and a landing page on ls, with TLS and
// basic auth from the exporter-toolkit web config file, until ctx ends.
func serve(ctx context.Context, ls []net.Listener, cli *CLI, metrics prometheus.Gatherer, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle(cli.WebTelemetryPath, promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		MaxRequestsInFlight: 10,
		Timeout:             10 * time.Second,
	}))
	if cli.WebTelemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "cro-exporter",
			Description: "Holds the host's CPU, memory and disk utilization at its audit target",
			Version:     version,
			Links:       []web.LandingLinks{{Address: cli.WebTelemetryPath, Text: "Metrics"}},
		})
		if err != nil {
			return err
		}
		mux.Handle("/", landing)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	for _, l := range ls {
		logger.Info("listening", "address", l.Addr().String())
	}
	done := make(chan error, 1)
	go func() {
		done <- web.ServeMultiple(ls, srv, &web.FlagConfig{
			WebListenAddresses: &cli.WebListenAddress,
			WebConfigFile:      &cli.WebConfigFile,
		}, logger)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			return err
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
