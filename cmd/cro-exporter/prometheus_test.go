package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The shipped rules and dashboard, proved against the real exporter and a
// real Prometheus (Debian's prometheus package; `make tools` installs it).
const (
	rulesFile     = "../../alerts/cro-exporter.rules.yml"
	dashboardFile = "../../dashboards/cro-exporter.json"
	// promJob is the job name the rules assume (examples/prometheus.yml).
	promJob = "cro-exporter"
)

// mayBeEmpty lists, by title, the panels whose queries may rightly return
// nothing on a healthy host, and why. Their queries must still succeed.
var mayBeEmpty = map[string]string{
	"Instances below target": "it lists only averages under their target, and a healthy host has none",
	cloudIdleTable:           "it reads the cloud idle rules' series, which this Prometheus does not record: TestCloudIdleRulesRecordEveryStatisticFromARealNodeExporter runs its queries where they are",
}

// dashboard is the part of a Grafana dashboard these tests read.
type dashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Editable   *bool       `json:"editable"`
	Tags       []string    `json:"tags"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []dashVariable `json:"list"`
	} `json:"templating"`
}

type dashRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *dashRef        `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

type dashPanel struct {
	ID          int      `json:"id"`
	Type        string   `json:"type"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Datasource  *dashRef `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string   `json:"refId"`
		Expr       string   `json:"expr"`
		Datasource *dashRef `json:"datasource"`
	} `json:"targets"`
	// Panels holds the panels of a collapsed row.
	Panels []dashPanel `json:"panels"`
}

// readDashboard decodes the shipped dashboard, refusing anything that is not
// one well-formed JSON object.
func readDashboard(t *testing.T) *dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: data after the dashboard object", dashboardFile)
	}
	return &d
}

// panels returns every panel, those inside rows included.
func (d *dashboard) panels() []dashPanel {
	var all []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

func (d *dashboard) variable(name string) *dashVariable {
	for i, v := range d.Templating.List {
		if v.Name == name {
			return &d.Templating.List[i]
		}
	}
	return nil
}

// selectors matches every series selector of the metrics the dashboard
// shows: cro_ and cro: (recording rule) metrics, and up.
// cloudIdlePrefix starts the names of the cloud idle rules' series.
const cloudIdlePrefix = "cro_cloud_idle_"

var selectors = regexp.MustCompile(`\b(cro[_:][A-Za-z0-9_:]*|up)\b(\{[^}]*\})?`)

func TestDashboardFollowsStyle(t *testing.T) {
	d := readDashboard(t)
	if d.UID != "cro-exporter" {
		t.Errorf("uid = %q, want the fixed cro-exporter", d.UID)
	}
	if d.Title == "" || len(d.Tags) == 0 {
		t.Errorf("title %q, tags %q: want both", d.Title, d.Tags)
	}
	if d.Editable == nil || *d.Editable {
		t.Error(`want "editable": false`)
	}

	checkVariables(t, d)

	panels := d.panels()
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	ids, titles := map[int]bool{}, map[string]bool{}
	for _, p := range panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if ids[p.ID] || titles[p.Title] {
			t.Errorf("%s: id or title used twice", name)
		}
		ids[p.ID], titles[p.Title] = true, true
		if p.Type == "row" {
			continue
		}
		checkPanel(t, name, p)
	}
	for i, a := range panels {
		for _, b := range panels[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
	for title := range mayBeEmpty {
		if !titles[title] {
			t.Errorf("mayBeEmpty names %q, which is no panel of the dashboard", title)
		}
	}
}

// checkVariables checks the dashboard's variables: a datasource, and job
// and instance queries on it, instance following job, both multi-valued.
func checkVariables(t *testing.T, d *dashboard) {
	t.Helper()
	if v := d.variable("datasource"); v == nil || v.Type != "datasource" || v.query() != "prometheus" {
		t.Errorf("want a datasource variable of type datasource for prometheus, got %+v", v)
	}
	for _, name := range []string{"job", "instance"} {
		v := d.variable(name)
		if v == nil {
			t.Errorf("no %s variable", name)
			continue
		}
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("%s variable: want a query variable on ${datasource}, got type %q, datasource %+v", name, v.Type, v.Datasource)
		}
		if !v.Multi || !v.IncludeAll || v.AllValue != ".+" {
			t.Errorf("%s variable: want multi, includeAll and allValue .+, got %v, %v, %q", name, v.Multi, v.IncludeAll, v.AllValue)
		}
	}
	if q := d.variable("instance"); q != nil && !strings.Contains(q.query(), `job=~"$job"`) {
		t.Errorf("instance variable %q does not follow $job", q.query())
	}
}

// checkPanel checks a panel that is not a row: described, with a unit, on
// the datasource variable, within the grid, and every query selecting cro_
// metrics of $job and $instance.
func checkPanel(t *testing.T, name string, p dashPanel) {
	t.Helper()
	if p.Title == "" || p.Description == "" || p.FieldConfig.Defaults.Unit == "" {
		t.Errorf("%s: want a title, a description and fieldConfig.defaults.unit", name)
	}
	if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
		t.Errorf("%s: datasource %+v, want uid ${datasource}", name, p.Datasource)
	}
	if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
		t.Errorf("%s: gridPos %+v outside the 24-column grid", name, p.GridPos)
	}
	if len(p.Targets) == 0 {
		t.Errorf("%s: no query", name)
	}
	for _, q := range p.Targets {
		if q.Datasource != nil && q.Datasource.UID != "${datasource}" {
			t.Errorf("%s, query %s: datasource %+v, want uid ${datasource}", name, q.RefID, q.Datasource)
		}
		found := selectors.FindAllStringSubmatch(q.Expr, -1)
		if len(found) == 0 {
			t.Errorf("%s, query %s: %q selects no cro_ metric", name, q.RefID, q.Expr)
		}
		for _, s := range found {
			switch {
			case strings.HasPrefix(s[1], cloudIdlePrefix):
				// node_exporter's hosts, which need not run cro-exporter.
				if !strings.Contains(s[2], `instance=~"$node"`) {
					t.Errorf("%s, query %s: selector %s lacks instance=~\"$node\"", name, q.RefID, s[0])
				}
			case !strings.Contains(s[2], `job=~"$job"`) || !strings.Contains(s[2], `instance=~"$instance"`):
				t.Errorf("%s, query %s: selector %s lacks job=~\"$job\" and instance=~\"$instance\"", name, q.RefID, s[0])
			}
		}
	}
}

// grafanaVariable matches a template variable in its three spellings:
// $name, ${name} (or ${name:format}) and [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substitute replaces the template variables of expr as Grafana would:
// vars by their value, regex-escaped for =~ as Grafana does for multi-value
// variables, and every built-in $__ variable by a one-minute stand-in.
func substitute(expr string, vars map[string]string) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		switch {
		case strings.HasPrefix(name, "__") && strings.HasSuffix(name, "_ms"):
			return "60000"
		case strings.HasPrefix(name, "__") && strings.HasSuffix(name, "_s"):
			return "60"
		case strings.HasPrefix(name, "__"):
			return "1m"
		}
		if v, ok := vars[name]; ok {
			return strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
		}
		unknown = append(unknown, m)
		return m
	})
	if unknown != nil {
		return "", fmt.Errorf("unknown template variables %q", unknown)
	}
	return out, nil
}

func TestSubstituteReplacesEveryVariable(t *testing.T) {
	vars := map[string]string{"job": "cro-exporter", "instance": "127.0.0.1:9847"}
	for _, c := range []struct{ in, want string }{
		{`rate(x{job=~"$job",instance=~"${instance}"}[$__rate_interval])`, `rate(x{job=~"cro-exporter",instance=~"127\\.0\\.0\\.1:9847"}[1m])`},
		{`x[$__range] offset [[__interval]]`, `x[1m] offset 1m`},
		{`x / $__range_s + $__interval_ms`, `x / 60 + 60000`},
	} {
		got, err := substitute(c.in, vars)
		if err != nil || got != c.want {
			t.Errorf("substitute(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := substitute(`x{resource=~"$resource"}`, vars); err == nil {
		t.Error("an unknown variable was not reported")
	}
}

// query evaluates expr now and returns how many series (or scalars) it gave.
func (p *promServer) query(expr string) (int, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}}, &data); err != nil {
		return 0, err
	}
	switch data.ResultType {
	case "vector", "matrix":
		var series []json.RawMessage
		err := json.Unmarshal(data.Result, &series)
		return len(series), err
	case "scalar", "string":
		return 1, nil
	}
	return 0, fmt.Errorf("unknown result type %q", data.ResultType)
}

// promRules is /api/v1/rules.
type promRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Name           string    `json:"name"`
			Query          string    `json:"query"`
			Type           string    `json:"type"`
			Health         string    `json:"health"`
			LastError      string    `json:"lastError"`
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"rules"`
	} `json:"groups"`
}

// ruleLine matches the groups and rules of a rules file.
var ruleLine = regexp.MustCompile(`(?m)^\s*-\s*(name|alert|record):\s*(\S+)\s*$`)

// rulesInFile returns "group/rule" for every rule of the rules file, read
// without a YAML parser: the file keeps one `- name:`, `- alert:` or
// `- record:` per line (promtool check rules proves the YAML itself).
func rulesInFile(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	group := ""
	for _, m := range ruleLine.FindAllStringSubmatch(string(data), -1) {
		if m[1] == "name" {
			group = m[2]
			continue
		}
		names = append(names, group+"/"+m[2])
	}
	return names
}

func TestPrometheusScrapesAndEvaluatesEverything(t *testing.T) {
	skipShort(t, "runs a real Prometheus")
	// start runs a dry run: the controller decides everything and holds
	// nothing, so the test costs the machine no CPU, memory or disk. Memory
	// is audited as a percentile beside the means of CPU and disk, so that
	// every query meets both kinds of objective, and the metrics of
	// percentiles alone are there.
	e := start(t, "--path.procfs="+filepath.Join(fixtures, "small-8g"), "--interval=1s", "--objective.memory=p95")
	instance := strings.TrimPrefix(e.url, "http://")
	p := startPrometheus(t, instance)

	p.awaitScrapes(t, 3)
	rules := p.awaitRules(t)
	t.Run("every rule of the file is loaded, healthy, and its expression valid", func(t *testing.T) {
		p.checkRules(t, rules)
	})

	d := readDashboard(t)
	vars := map[string]string{"job": promJob, "instance": instance, "node": instance}

	t.Run("the job and instance variables find the exporter", func(t *testing.T) {
		labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
		for _, name := range []string{"job", "instance"} {
			v := d.variable(name)
			if v == nil {
				t.Fatalf("no %s variable", name)
			}
			m := labelValues.FindStringSubmatch(v.query())
			if m == nil {
				t.Fatalf("%s variable: %q is not label_values(selector, label)", name, v.query())
			}
			selector, err := substitute(m[1], vars)
			if err != nil {
				t.Fatalf("%s variable: %v", name, err)
			}
			var values []string
			if err := p.api("label/"+m[2]+"/values", url.Values{"match[]": {selector}}, &values); err != nil {
				t.Fatalf("%s variable: %v", name, err)
			}
			if !slices.Contains(values, vars[name]) {
				t.Errorf("%s variable: %q gives %q, without %q", name, v.query(), values, vars[name])
			}
		}
	})

	for _, panel := range d.panels() {
		if len(panel.Targets) == 0 {
			continue
		}
		t.Run("panel "+panel.Title, func(t *testing.T) {
			for _, q := range panel.Targets {
				expr, err := substitute(q.Expr, vars)
				if err != nil {
					t.Errorf("query %s: %v", q.RefID, err)
					continue
				}
				n, err := p.query(expr)
				if err != nil {
					t.Errorf("query %s: %s: %v", q.RefID, expr, err)
				} else if _, ok := mayBeEmpty[panel.Title]; n == 0 && !ok {
					t.Errorf("query %s: %s: no data", q.RefID, expr)
				}
			}
		})
	}
}

// awaitScrapes waits for n successful scrapes of cro-exporter in the last
// minute.
func (p *promServer) awaitScrapes(t *testing.T, n int) {
	t.Helper()
	p.await(t, 20*time.Second, fmt.Sprintf("%d successful scrapes of cro-exporter", n), func() (bool, string) {
		var data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		err := p.api("query", url.Values{"query": {`sum_over_time(up{job="` + promJob + `"}[1m])`}}, &data)
		if err != nil || len(data.Result) == 0 {
			return false, fmt.Sprint("no scrape yet ", err)
		}
		got, _ := sampleValue(data.Result[0].Value[1])
		return got >= float64(n), fmt.Sprintf("%v successful scrapes", got)
	})
}

// awaitRules waits until every rule has been evaluated once, and returns
// them.
func (p *promServer) awaitRules(t *testing.T) promRules {
	t.Helper()
	var rules promRules
	p.await(t, 10*time.Second, "one evaluation of every rule", func() (bool, string) {
		if err := p.api("rules", nil, &rules); err != nil {
			return false, err.Error()
		}
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if r.LastEvaluation.IsZero() || r.Health == "unknown" {
					return false, g.Name + "/" + r.Name + " not evaluated yet"
				}
			}
		}
		return len(rules.Groups) > 0, "no rule group loaded"
	})
	return rules
}

// checkRules checks that Prometheus loaded every rule of the file, each
// healthy and its expression valid, and that every recording rule has data.
func (p *promServer) checkRules(t *testing.T, rules promRules) {
	t.Helper()
	var loaded []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			name := g.Name + "/" + r.Name
			loaded = append(loaded, name)
			if r.Health != "ok" {
				t.Errorf("%s: health %q: %s", name, r.Health, r.LastError)
			}
			n, err := p.query(r.Query)
			switch {
			case err != nil:
				t.Errorf("%s: %s: %v", name, r.Query, err)
			case r.Type == "recording" && n == 0:
				// The dashboard plots every recording rule.
				t.Errorf("%s: %s: no data on a healthy host", name, r.Query)
			}
		}
	}
	slices.Sort(loaded) // the API orders groups by name
	want := rulesInFile(t)
	slices.Sort(want)
	if !slices.Equal(loaded, want) {
		t.Errorf("Prometheus loaded rules %q, the file has %q", loaded, want)
	}
}

// The cloud idle rules (alerts/cloud-idle.rules.yml) in a real Prometheus
// scraping a real node_exporter: every rule loads and evaluates, and every
// recorded series, each provider's statistic among them, has data for the
// node, as it would for any host of a fleet.

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
