//go:build linux

package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// Idle cost: cro-exporter with nothing to hold, beside node_exporter, each
// scraped every idleScrape as Prometheus would, for idleFor after idleSettle.
const (
	idleSettle = 5 * time.Second
	idleFor    = time.Minute
	idleScrape = 15 * time.Second
	// idleGoal is what cro-exporter may cost above node_exporter, as a
	// share of one CPU.
	idleGoal = 0.0005
)

// benchIdle measures the CPU time cro-exporter spends when it holds
// nothing (every target 0), beside node_exporter's (cpu, meminfo and
// filesystem collectors) over the same minute, both scraped alike.
func benchIdle(binary build) error {
	b, err := startBeside()
	if err != nil {
		return err
	}
	defer b.close()
	c, err := startCro(binary, filepath.Join(b.dir, "state"), "--disk.path="+b.dir,
		"--target.cpu=0", "--target.memory=0", "--target.disk=0")
	if err != nil {
		return err
	}
	defer stop(c.cmd)
	time.Sleep(idleSettle)

	urls := []string{c.url, b.nodeURL}
	scraper := newScraper()
	defer scraper.close()
	pids := []int{c.cmd.Process.Pid, b.node.Process.Pid}
	var before, after [2]time.Duration
	for i, pid := range pids {
		if before[i], err = cpuTime(pid); err != nil {
			return err
		}
	}
	start := time.Now()
	for at := time.Duration(0); at < idleFor; at += idleScrape {
		time.Sleep(time.Until(start.Add(at)))
		for _, url := range urls {
			if err := scraper.scrape(url); err != nil {
				return fmt.Errorf("scrape of %s: %w", url, err)
			}
		}
	}
	time.Sleep(time.Until(start.Add(idleFor)))
	for i, pid := range pids {
		if after[i], err = cpuTime(pid); err != nil {
			return err
		}
	}
	took := time.Since(start).Seconds()
	cro, nodeCPU := (after[0] - before[0]).Seconds(), (after[1] - before[1]).Seconds()
	fmt.Printf("idle cost, nothing held, each scraped every %v for %v: cro-exporter %.1f ms of CPU (%.3f%% of one CPU);"+
		" node_exporter cpu+meminfo+filesystem %.1f ms (%.3f%%) (goal: cro-exporter <= node_exporter + %.2f%% of one CPU: %s)\n",
		idleScrape, idleFor, cro*1e3, 100*cro/took, nodeCPU*1e3, 100*nodeCPU/took, 100*idleGoal, met(cro <= nodeCPU+idleGoal*took))
	return nil
}
