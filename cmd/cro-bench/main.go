//go:build linux

// Command cro-bench prints cro-exporter's figures beside their references,
// measured in the same run by the method in the README's "How the bench
// measures": scrape latency and memory, the CPU spent holding nothing,
// ballast fill time, the CPU holder's accuracy, how fast load gives way to real work, also under attack, what a
// percentile objective's CPU bursts cost beside a constant hold, the
// simulator's speed, and what each cloud preset's rule costs beside a
// constant hold. `make bench` runs it. It runs on Linux alone: it reads
// the machine from /proc, and measures the Windows build under Wine, as
// the Linux processes Wine runs it as.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

func main() {
	binary := flag.String("binary", "bin/cro-exporter", "the cro-exporter binary to measure")
	only := flag.String("only", "scrape,idle,memory,cpu,giveway,p95,simulate,presets", "comma-separated benchmarks to run")
	flag.Parse()
	benches := []struct {
		name string
		run  func(binary string) error
	}{
		{"scrape", benchScrape},
		{"idle", benchIdle},
		{"memory", benchMemory},
		{"cpu", benchCPU},
		{"giveway", benchGiveWay},
		{"hostile", benchHostileGiveWay},
		{"p95", benchP95},
		{"simulate", benchSimulate},
		{"presets", benchPresets},
	}
	failed := false
	for _, b := range benches {
		if !slices.Contains(strings.Split(*only, ","), b.name) {
			continue
		}
		if err := b.run(*binary); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", b.name, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
