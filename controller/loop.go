package controller

import (
	"context"
	"log/slog"
	"time"

	"github.com/cro-exporter/cro-exporter/collector"
)

// saveEvery bounds how much of the averages' history a crash can lose.
const saveEvery = 5 * time.Minute

// Loop samples the host every Interval, keeps the averages, and publishes
// the state the metrics show.
type Loop struct {
	Read     func(now time.Time) (collector.Sample, error)
	Averages *Averages
	Spec     Spec
	Targets  map[collector.Resource]float64
	Ceiling  float64
	StateDir string
	Interval time.Duration
	Publish  func(*collector.State)
	Logger   *slog.Logger
}

// Run samples every Interval until ctx ends, saving the averages every few
// minutes and once more at the end.
func (l *Loop) Run(ctx context.Context) error {
	ticker := time.NewTicker(l.Interval)
	defer ticker.Stop()
	saved := time.Now()
	for {
		select {
		case <-ctx.Done():
			return l.Averages.Save(l.StateDir)
		case now := <-ticker.C:
			s, err := l.Read(now)
			if err != nil {
				// A failed read skips the tick; the stale
				// cro_last_sample_timestamp_seconds shows it.
				l.Logger.Warn("reading the host", "err", err)
				continue
			}
			l.Step(s)
			if now.Sub(saved) >= saveEvery {
				if err := l.Averages.Save(l.StateDir); err != nil {
					l.Logger.Warn("saving the averages", "err", err)
				}
				saved = now
			}
		}
	}
}

// Step folds one sample into the averages and publishes the new state.
func (l *Loop) Step(s collector.Sample) {
	state := &collector.State{
		Sample:    s,
		Spec:      l.Spec.Name,
		Ceiling:   l.Ceiling,
		Resources: make(map[collector.Resource]collector.ResourceState, len(collector.Resources)),
	}
	for _, r := range collector.Resources {
		if err := l.Averages.Update(r, s.Time, s.Usage(r)); err != nil {
			l.Logger.Warn("updating the average", "resource", r, "err", err)
		}
		state.Resources[r] = collector.ResourceState{
			Average: l.Averages.Value(r),
			History: l.Averages.History(r),
			Target:  l.Targets[r],
		}
	}
	l.Publish(state)
}
