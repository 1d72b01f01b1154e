package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() {
	// No /debug/pprof is served, so a heap profile could never be read:
	// recording one would only cost memory (its hash table and buckets).
	runtime.MemProfileRate = 0
	// Every signal that would end the process ends the daemon cleanly:
	// holders stopped, fill removed, averages saved.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}
