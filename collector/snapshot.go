package collector

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Snapshot is a prometheus.Gatherer that serves what its registry gathered
// at the last Refresh. The loop refreshes it once a tick, so a scrape costs
// only the encoding: it never reads /proc, not even /proc/self for the
// process_ metrics, and many scrapes cost the host no more than one.
type Snapshot struct {
	reg      prometheus.Gatherer
	families atomic.Pointer[[]*dto.MetricFamily]
}

// NewSnapshot returns a Snapshot of reg that serves nothing until the first
// Refresh.
func NewSnapshot(reg prometheus.Gatherer) *Snapshot {
	return &Snapshot{reg: reg}
}

// Refresh gathers reg now. On error it keeps serving what it gathered, and
// the error is returned so the caller can log it.
func (s *Snapshot) Refresh() error {
	families, err := s.reg.Gather()
	if err != nil && len(families) == 0 {
		return err
	}
	s.families.Store(&families)
	return err
}

// Gather implements prometheus.Gatherer. The families it returns are shared
// by every scrape until the next Refresh: encoders only read them.
func (s *Snapshot) Gather() ([]*dto.MetricFamily, error) {
	if f := s.families.Load(); f != nil {
		return *f, nil
	}
	return nil, nil
}
