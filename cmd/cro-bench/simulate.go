//go:build linux

package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// benchSimulate times 30 simulated days at a 15 s interval.
func benchSimulate(binary build) error {
	var took []float64
	for range 3 {
		start := time.Now()
		if out, err := binary.command("simulate", "--days=30").CombinedOutput(); err != nil {
			return fmt.Errorf("simulate: %v\n%s", err, out)
		}
		took = append(took, time.Since(start).Seconds())
	}
	fmt.Printf("simulate: 30 days at 15 s in %.2f s (median of 3; goal < 2 s)\n", median(took))
	return nil
}

// presets are the cloud rules whose cost benchPresets prints.
var presets = []string{"oracle-always-free", "azure-advisor", "gcp-idle-vm", "aws-trusted-advisor", "huawei-idle-ecs", "oci-cloud-advisor"}

// benchPresets prints what holding each preset's rule costs an idle 2-CPU
// host, from simulate: the CPU-hours its holders burn in a week (the first,
// which builds the window up, and the mean of the two after) beside a
// constant hold's at the rule's threshold.
func benchPresets(binary build) error {
	fmt.Println("presets, an idle 2-CPU host simulated for 3 weeks: CPU-hours a week, later weeks (first week), beside a constant hold at the threshold")
	for _, preset := range presets {
		out, err := binary.command("simulate", "--preset="+preset, "--days=21", "--cpus=2", "--format=csv").Output()
		if err != nil {
			return fmt.Errorf("simulate --preset=%s: %v", preset, err)
		}
		var week [3]float64
		var constant float64
		for line := range strings.Lines(string(out)) {
			f := strings.Split(strings.TrimSpace(line), ",")
			if len(f) < 10 || f[1] != "cpu" {
				continue
			}
			day, err1 := strconv.Atoi(f[0])
			held, err2 := strconv.ParseFloat(f[8], 64)
			c, err3 := strconv.ParseFloat(f[9], 64)
			if err := errors.Join(err1, err2, err3); err != nil {
				return fmt.Errorf("simulate --preset=%s: line %q: %v", preset, line, err)
			}
			week[(day-1)/7] += held
			constant = 7 * c
		}
		later := (week[1] + week[2]) / 2
		fmt.Printf("  %-20s %7.3f (%.3f)  constant hold %6.2f  ratio %.3f\n", preset, later, week[0], constant, later/constant)
	}
	return nil
}
