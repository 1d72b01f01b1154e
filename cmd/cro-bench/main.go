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
	windowsBinary := flag.String("windows-binary", "", "the Windows build (cro-exporter.exe) to measure too, under Wine, in the cpu and giveway benches")
	only := flag.String("only", "scrape,idle,memory,cpu,giveway,p95,simulate,presets", "comma-separated benchmarks to run")
	flag.Parse()
	// builds[0] is the Linux build, which every bench measures; the cpu
	// and giveway benches measure the others too, each in a row after
	// Linux's.
	builds := []build{linuxBuild(*binary)}
	if *windowsBinary != "" {
		builds = append(builds, wineBuild(*windowsBinary))
	}
	linux := builds[0]
	benches := []struct {
		name string
		run  func() error
	}{
		{"scrape", func() error { return benchScrape(linux) }},
		{"idle", func() error { return benchIdle(linux) }},
		{"memory", func() error { return benchMemory(linux) }},
		{"cpu", func() error { return benchCPU(builds) }},
		{"giveway", func() error { return benchGiveWay(builds) }},
		{"hostile", func() error { return benchHostileGiveWay(linux) }},
		{"p95", func() error { return benchP95(linux) }},
		{"simulate", func() error { return benchSimulate(linux) }},
		{"presets", func() error { return benchPresets(linux) }},
	}
	failed := false
	for _, b := range benches {
		if !slices.Contains(strings.Split(*only, ","), b.name) {
			continue
		}
		if err := b.run(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", b.name, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
