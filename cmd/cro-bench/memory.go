//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// populateC is the memory baseline: the least a program can do to make
// 1 GiB resident.
const populateC = `#define _GNU_SOURCE
#include <sys/mman.h>
int main(void) {
	void *p = mmap(0, 1UL << 30, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED;
}
`

// memoryRounds is how many times the holder is timed, each between two runs
// of the C baseline.
const memoryRounds = 5

// benchMemory times a 1 GiB memory holder from its start to its ready line
// against C mmap+MAP_POPULATE: warm, alternated, the
// baseline right before and after each holder, ratio of medians.
func benchMemory(binary build) error {
	dir, err := os.MkdirTemp("", "cro-bench-memory")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, populate := filepath.Join(dir, "populate.c"), filepath.Join(dir, "populate")
	if err := os.WriteFile(src, []byte(populateC), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command("gcc", "-O2", "-o", populate, src).CombinedOutput(); err != nil {
		return fmt.Errorf("compiling the MAP_POPULATE baseline (apt-get install gcc): %v\n%s", err, out)
	}
	if _, err := timePopulate(populate); err != nil { // warms memory up
		return err
	}
	var base, held []float64
	for range memoryRounds {
		before, err := timePopulate(populate)
		if err != nil {
			return err
		}
		h, err := timeMemoryHolder(binary, 1<<30)
		if err != nil {
			return err
		}
		after, err := timePopulate(populate)
		if err != nil {
			return err
		}
		base, held = append(base, before, after), append(held, h)
	}
	fmt.Printf("memory: 1 GiB resident in %.2f s (median of %d), C MAP_POPULATE %.2f s: ratio %.2f (goal <= 1.30; stress-ng 0.99 s, python 0.95 s, NeverIdle 2.84 s); THP %s\n",
		median(held), memoryRounds, median(base), median(held)/median(base), thpSettings())
	fmt.Printf("memory: rounds (C before, holder, C after): %s\n", memoryRoundsString(base, held))
	return nil
}

// thpSettings names the transparent huge page settings the figure was
// measured under: enabled, defrag, and each folio size that is not "never".
func thpSettings() string {
	const dir = "/sys/kernel/mm/transparent_hugepage"
	settings := []string{"enabled", "defrag"}
	sizes, _ := filepath.Glob(filepath.Join(dir, "hugepages-*kB", "enabled"))
	for _, path := range sizes {
		settings = append(settings, strings.TrimPrefix(path, dir+"/"))
	}
	var shown []string
	for _, name := range settings {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if name == "enabled" {
				return "not available (" + err.Error() + ")"
			}
			continue
		}
		_, rest, _ := strings.Cut(string(b), "[")
		choice, _, _ := strings.Cut(rest, "]")
		if choice != "never" || !strings.HasPrefix(name, "hugepages-") {
			shown = append(shown, strings.TrimSuffix(name, "/enabled")+" "+choice)
		}
	}
	return strings.Join(shown, ", ")
}

// memoryRoundsString lists each round's times, for judging the noise.
func memoryRoundsString(base, held []float64) string {
	var rounds []string
	for i, h := range held {
		rounds = append(rounds, fmt.Sprintf("%.2f %.2f %.2f", base[2*i], h, base[2*i+1]))
	}
	return strings.Join(rounds, ", ")
}

// timePopulate runs the C baseline and returns its wall time in seconds.
func timePopulate(populate string) (float64, error) {
	start := time.Now()
	if out, err := exec.Command(populate).CombinedOutput(); err != nil {
		//lint:ignore ST1005 "C" is the name of the language, not a capitalized word.
		return 0, fmt.Errorf("C MAP_POPULATE baseline: %v\n%s", err, out)
	}
	return time.Since(start).Seconds(), nil
}

// timeMemoryHolder starts a memory holder of size bytes and returns the
// seconds from its start to its ready line; it checks the resident bytes the
// line reports, then closes the holder's stdin and waits for it to exit 0.
func timeMemoryHolder(binary build, size int64) (float64, error) {
	start := time.Now()
	h, err := startMemoryHolder(binary, size)
	if err != nil {
		return 0, err
	}
	took := time.Since(start).Seconds()
	if err := h.stop(); err != nil {
		return 0, fmt.Errorf("memory holder, stdin closed: %w", err)
	}
	return took, nil
}
