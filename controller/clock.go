package controller

import "time"

// stepTolerance is the least difference between the wall clock's and the
// monotonic clock's time between two samples that is a step of the wall
// clock, and not its slewing: chrony slews it by up to 8.3%, so by a
// tenth of the time between the samples, at least 2 s.
func stepTolerance(elapsed time.Duration) time.Duration {
	return max(2*time.Second, elapsed/10)
}

// wallStep is how far the wall clock stepped between a sample at prev and
// one at now, taken elapsed later by the monotonic clock: forward when
// positive, 0 within stepTolerance or without a previous sample.
func wallStep(prev, now time.Time, elapsed time.Duration) time.Duration {
	if prev.IsZero() {
		return 0
	}
	by := now.Round(0).Sub(prev.Round(0)) - elapsed
	if by.Abs() < stepTolerance(elapsed) {
		return 0
	}
	return by
}

// clockStepped logs and counts a step of the wall clock by `by`, and has
// the averages go on from the new time. (The memory hold-off needs
// nothing: its times carry the monotonic reading a step does not move.) It
// runs under mu.
func (l *Loop) clockStepped(by time.Duration) {
	l.clockSteps++
	direction := "forward"
	if by < 0 {
		direction = "back"
	}
	l.cfg.Logger.Warn("wall clock stepped", "by", by.Abs(), "direction", direction)
	l.cfg.Averages.clockStepped(by)
}
