package controller

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestTheREADMEStatesEachPresetsCost: the README's preset table gives, per
// preset, the CPU-hours idleRules checks the simulation against, in the
// form "first, later; constant (later/constant)", so that the figures
// the README states are those the test holds the presets to.
func TestTheREADMEStatesEachPresetsCost(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.Lines(string(readme)) {
		cells := strings.Split(strings.TrimSpace(line), " | ")
		name := strings.Trim(cells[0], "| `")
		if _, ok := Presets[name]; ok && strings.HasPrefix(cells[0], "| `") {
			rows[name] = strings.TrimSuffix(cells[len(cells)-1], " |")
		}
	}
	for _, rule := range idleRules {
		want := fmt.Sprintf("%s, %s; %s (%.3f)", figure(rule.firstWeek), figure(rule.perWeek), figure(rule.constant), rule.perWeek/rule.constant)
		if got, ok := rows[rule.preset]; !ok || got != want {
			t.Errorf("the README's %s row ends %q, want %q", rule.preset, got, want)
		}
	}
	if len(rows) != len(Presets) {
		t.Errorf("the README's preset table has rows %v, want one per preset (%d)", slices.Sorted(maps.Keys(rows)), len(Presets))
	}
	if len(idleRules) != len(Presets)-1 {
		t.Errorf("%d presets' rules are simulated, want every preset's but default's (%d)", len(idleRules), len(Presets)-1)
	}
}

// figure is x as the README writes CPU-hours: the shortest of 2 or 3
// decimals.
func figure(x float64) string {
	s := fmt.Sprintf("%.3f", x)
	if strings.HasSuffix(s, "0") && x >= 1 {
		s = s[:len(s)-1]
	}
	return s
}
