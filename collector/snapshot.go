package collector

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Snapshot is a prometheus.Gatherer that serves what its registry gathered
// at the last Refresh. The loop refreshes it once a tick, so a scrape never
// reads /proc, not even /proc/self for the process_ metrics, and many
// scrapes cost the host no more than one. Its Handler serves bytes encoded
// at the Refresh, so a scrape does not encode either.
type Snapshot struct {
	reg     prometheus.Gatherer
	current atomic.Pointer[gathered]

	mu     sync.Mutex
	wanted []variant // the variants clients have asked for, encoded at each Refresh
}

// NewSnapshot returns a Snapshot of reg that serves nothing until the first
// Refresh.
func NewSnapshot(reg prometheus.Gatherer) *Snapshot {
	return &Snapshot{reg: reg}
}

// Refresh gathers reg now and encodes it in every variant that clients
// have asked for. On error it keeps serving what it gathered, and the error
// is returned so the caller can log it.
func (s *Snapshot) Refresh() error {
	families, err := s.reg.Gather()
	if err != nil && len(families) == 0 {
		return err
	}
	g := &gathered{families: families, bodies: map[variant]encoded{}}
	s.mu.Lock()
	wanted := slices.Clone(s.wanted)
	s.mu.Unlock()
	for _, v := range wanted {
		g.bodies[v] = encode(families, v)
	}
	s.current.Store(g)
	return err
}

// Gather implements prometheus.Gatherer. The families it returns are shared
// by every scrape until the next Refresh: encoders only read them.
func (s *Snapshot) Gather() ([]*dto.MetricFamily, error) {
	if g := s.current.Load(); g != nil {
		return g.families, nil
	}
	return nil, nil
}
