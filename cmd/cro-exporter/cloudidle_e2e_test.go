package main

// The cloud idle rules (alerts/cloud-idle.rules.yml) in a real Prometheus
// scraping a real node_exporter: every rule loads and evaluates, and every
// recorded series, each provider's statistic among them, has data for the
// node, as it would for any host of a fleet.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	cloudIdleRules = "../../alerts/cloud-idle.rules.yml"
	// cloudIdleTable is the dashboard's panel of the rules' statistics.
	cloudIdleTable = "What each cloud's idle rule computes"
)

// clockGate is the condition that has a rule of the 1-minute group write a
// block's value only at the minute that closes the block (":00 and :30",
// "00:00 UTC"), to the end of its line.
var clockGate = regexp.MustCompile(`(?m)[ \t]*and on\(\) (?:hour|minute)\(\).*$`)

// hurried is the rule file with every group evaluated every second and no
// clock gate, so that a test sees in seconds every series it records: as
// shipped, the daily ones appear at the next 00:00 UTC. The expressions
// are otherwise the shipped ones; promtool's tests check their values.
func hurried(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(cloudIdleRules)
	if err != nil {
		t.Fatal(err)
	}
	text := clockGate.ReplaceAllString(string(b), "")
	text = regexp.MustCompile(`(?m)^(\s+interval:) \S+$`).ReplaceAllString(text, "$1 1s")
	if strings.Contains(text, "and on() minute()") || strings.Count(text, "interval: 1s") < 2 {
		t.Fatalf("the rule file's groups or gates are not as this test expects:\n%s", text)
	}
	path := filepath.Join(t.TempDir(), "cloud-idle.rules.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCloudIdleRulesRecordEveryStatisticFromARealNodeExporter(t *testing.T) {
	skipShort(t, "runs node_exporter and a real Prometheus for about 20 seconds")
	node := startNodeExporter(t, "cpu", "meminfo", "netdev", "uname")
	p := runPrometheus(t, hurried(t), "node", node)
	rules := p.awaitRules(t)
	// records are every recording rule; statistics, the window group's:
	// each provider's figures over its window.
	var records, statistics []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
			}
			if r.Type != "recording" {
				continue
			}
			records = append(records, r.Name)
			if g.Name == "cloud-idle.window" {
				statistics = append(statistics, r.Name)
			}
		}
	}
	if len(records) < 30 {
		t.Fatalf("%d recording rules loaded, want every one of the file's", len(records))
	}
	var missing []string
	p.await(t, 60*time.Second, "every recorded series to have data for the node", func() (bool, string) {
		missing = missing[:0]
		for _, r := range records {
			if n, err := p.query(fmt.Sprintf(`%s{job="node",instance=%q}`, r, node)); n != 1 || err != nil {
				missing = append(missing, fmt.Sprintf("%s (%d series, %v)", r, n, err))
			}
		}
		return len(missing) == 0, "without data: " + strings.Join(missing, ", ")
	})
	// Each provider's statistic is a number a dashboard can show beside
	// its threshold.
	if len(statistics) < 10 {
		t.Errorf("%d statistics in group cloud-idle.window, want every provider's", len(statistics))
	}
	// A second ahead, so that the query sees the evaluations the wait saw
	// (the API takes whole seconds).
	at := time.Now().Add(time.Second).Unix()
	for _, stat := range statistics {
		if v := p.scalar(t, at, stat); v < 0 || math.IsNaN(v) {
			t.Errorf("%s = %v, want a number of at least 0", stat, v)
		}
	}
	checkCloudIdleTable(t, p, node)
}

// checkCloudIdleTable runs the queries of the dashboard's cloud idle table
// for node, as Grafana would: each gives the node's figure.
func checkCloudIdleTable(t *testing.T, p *promServer, node string) {
	t.Helper()
	panels := readDashboard(t).panels()
	i := slices.IndexFunc(panels, func(p dashPanel) bool { return p.Title == cloudIdleTable })
	if i < 0 {
		t.Fatalf("the dashboard has no panel %q", cloudIdleTable)
	}
	for _, q := range panels[i].Targets {
		expr, err := substitute(q.Expr, map[string]string{"node": node})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := p.query(expr); n != 1 || err != nil {
			t.Errorf("%s, query %s: %s: %d series, %v; want the node's", cloudIdleTable, q.RefID, expr, n, err)
		}
	}
}
