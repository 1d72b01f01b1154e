package holder

import (
	"fmt"
	"strconv"
	"strings"
)

// The talk with a CPU holder, both sides of it: the burner is started with
// --duty=R and says readyLine first; the daemon then writes dutyLine for
// each new duty, which the burner answers with the same line, and "stop"
// (or closes the pipe) to end it. Every duty is a plain decimal between 0
// and 1, written by formatDuty and read by parseDuty.

// cpuCommand is one line a CPU holder reads: a new duty, or stop.
type cpuCommand struct {
	duty float64
	stop bool
}

// parseCPUCommand parses a CPU holder's stdin line, already trimmed: "stop",
// or "duty R" with R a plain decimal between 0 and 1 (0.3, 1, .25; no
// percent sign, exponent, sign, NaN or infinity). The empty line and
// anything else are errors that name the line.
func parseCPUCommand(line string) (cpuCommand, error) {
	if line == "stop" {
		return cpuCommand{stop: true}, nil
	}
	word, arg, _ := strings.Cut(line, " ")
	if word != "duty" {
		return cpuCommand{}, fmt.Errorf("unknown command %q (a CPU holder knows \"duty R\" and \"stop\")", line)
	}
	duty, err := parseDuty(strings.TrimSpace(arg))
	if err != nil {
		return cpuCommand{}, fmt.Errorf("command %q: %w", line, err)
	}
	return cpuCommand{duty: duty}, nil
}

// parseDuty parses a plain decimal between 0 and 1.
func parseDuty(s string) (float64, error) {
	digits, dots, others := 0, 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			others++ // signs, exponents, letters, percent signs
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if digits == 0 || dots > 1 || others > 0 || err != nil || v > 1 {
		return 0, fmt.Errorf("duty %q is not a plain decimal between 0 and 1", s)
	}
	return v, nil
}

// formatDuty writes a duty as a plain decimal, never with an exponent: the
// way parseDuty reads it, on the command line (--duty) and in every line.
func formatDuty(d float64) string { return strconv.FormatFloat(d, 'f', -1, 64) }

// dutyLine is the line that sets a duty, and the CPU holder's answer to it.
func dutyLine(d float64) string { return "duty " + formatDuty(d) }

// readyLine is the CPU holder's first line, naming the duty it starts at.
func readyLine(d float64) string { return "ready " + formatDuty(d) }
