package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/cro-exporter/cro-exporter/internal/winholder"
	"github.com/cro-exporter/cro-exporter/internal/winservice"
)

func main() {
	// No /debug/pprof is served, so a heap profile could never be read:
	// recording one would only cost memory (its hash table and buckets).
	runtime.MemProfileRate = 0
	// Run as the service when the service control manager started us (its
	// stop and shutdown requests end ctx), at a console otherwise (Ctrl-C,
	// closing the console and --recover's stop event end it).
	code, err := winservice.Run(winholder.ServiceName, func(ctx context.Context, service bool) int {
		if !service {
			return run(ctx, os.Args[1:], os.Stderr, nil)
		}
		elog, err := winservice.OpenLog(winholder.ServiceName)
		if err != nil {
			return exitFailure // a service has nowhere else to say so
		}
		defer elog.Close()
		handler := func(l slog.Level) slog.Handler { return winservice.NewHandler(elog, l) }
		return run(ctx, os.Args[1:], winservice.ErrorWriter(elog), handler)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cro-exporter: error: %v\n", err)
		os.Exit(exitFailure)
	}
	os.Exit(code)
}
