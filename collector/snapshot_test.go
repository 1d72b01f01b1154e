package collector

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSnapshotServesWhatWasGatheredAtTheLastRefresh(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "A gauge."})
	reg.MustRegister(g)
	s := NewSnapshot(reg)

	if families, err := s.Gather(); err != nil || len(families) != 0 {
		t.Fatalf("before the first Refresh: %v, %v; want nothing", families, err)
	}
	g.Set(1)
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	g.Set(2)
	want := "# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
	if err := testutil.GatherAndCompare(s, strings.NewReader(want)); err != nil {
		t.Errorf("between refreshes: %v", err)
	}
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(s, strings.NewReader(strings.Replace(want, "g 1", "g 2", 1))); err != nil {
		t.Errorf("after the next refresh: %v", err)
	}
}
