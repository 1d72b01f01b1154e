package controller

import "time"

// burstLead is how long before its period a burst starts: the watcher wakes
// then and looks four times a second through the burst, and the burner is a new process that must start and
// settle into its duty cycles, so the lift is there from the period's first
// moment. It costs a second a burst: 1.7% more for minutes.
const burstLead = time.Second

// planBurst decides, once in each period, whether the CPU burns through
// the period after now's, for target as the q-quantile of the periods'
// means (burstNext).
func (p *periods) planBurst(now time.Time, target, q float64) {
	n := len(p.means)
	need, plan := atLeast(n, q), planned(n, q)
	p.thr = threshold(target)
	k := p.number(now)
	if p.sched.decided == 0 && (p.length >= meanControlled || p.sub > 0) {
		// The first decision, at a start or a restart, is for the period
		// in progress too where a burst of it still counts: a mean held
		// over what is left of it, or its last sub-period. A day's
		// burst is not lost to a restart.
		p.sched = schedule{decided: k, bursts: [2]bool{false, p.burstNext(k, target, need, plan, false)}}
	}
	p.sched.advance(k, func(next int64, current bool) bool {
		return p.burstNext(next, target, need, plan, current)
	})
}

// burning tells whether the CPU holds its lift at now: through a burst,
// from burstLead before it.
func (p *periods) burning(now time.Time) bool {
	return p.burns(now) || p.burns(now.Add(burstLead))
}

// burns tells whether t is in a burst. With sub-periods, a burst period
// burns through its last sub-period alone, and not even that when one of
// its sub-periods before already reached the target by real work: the max
// of its sub-periods' means is its value.
func (p *periods) burns(t time.Time) bool {
	k := p.number(t)
	if !p.sched.burns(k) {
		return false
	}
	if p.sub == 0 {
		return true
	}
	last := p.start(k + 1).Add(-p.sub)
	return !t.Before(last) && !(k == p.open && p.best >= p.thr && p.thr > 0)
}

// nextBurst is when the burst decided after now's period starts, burstLead
// before it (before its last sub-period with sub-periods); zero when none
// is.
func (p *periods) nextBurst(now time.Time) time.Time {
	if d := p.sched.decided; d > p.number(now) && p.sched.burns(d) {
		start := p.start(d)
		if p.sub > 0 {
			start = p.start(d + 1).Add(-p.sub)
		}
		return start.Add(-burstLead)
	}
	return time.Time{}
}

// meanControlled is the shortest period whose bursts hold the period's
// mean rather than a level: over an hour or more, the duty's error and
// real work moving average out, and what the period lacks so far (a
// restart, a moment of give-way) is made up before it ends.
const meanControlled = time.Hour

// burstLevel is the total usage a burst holds at now for target: the
// target and the lift; for a period of meanControlled or more, the
// constant level that brings the period's mean to target and margin by
// its end, from what it holds so far.
func (p *periods) burstLevel(now time.Time, target float64) float64 {
	if p.length < meanControlled || p.sub > 0 || p.until.IsZero() {
		return target + lift
	}
	left := p.start(p.open + 1).Sub(p.until).Seconds()
	if left <= 0 {
		return target + lift
	}
	return max(0, ((target+margin)*p.length.Seconds()-p.sum)/left)
}

// burstNext tells whether the CPU burns through period next, for a
// q-quantile objective of the periods' means: the periods of the window
// ending at next must hold need at or above target, and those of every later
// window plan, counting the bursts that could still come, one every n/plan
// periods from next+1 on. A burst comes only when one of these would fall
// short without it: as late as even spacing allows, so bursts spread over
// the window. A period that real work carried above target spares one, and
// is taken to come again when it leaves the window, as a daily or weekly
// workload's does; should it not, the window ending at next still never
// holds fewer than need. current tells that the period in progress, next-1,
// is a burst.
func (p *periods) burstNext(next int64, target float64, need, plan int, current bool) bool {
	n := int64(len(p.means))
	gap := max(1, n/int64(plan))
	thr := threshold(target)
	// The periods next-n+1 .. next-1: those of the window ending at next
	// that are known, the oldest first; the h-th of them leaves the window
	// ending at next+h.
	known := p.window(next - 1)[1:]
	if current {
		known[len(known)-1] = thr
	}
	count := 0
	for _, m := range known {
		if m >= thr {
			count++
		}
	}
	if count < need {
		return true
	}
	for h, m := range known {
		if k := next - n + 1 + int64(h); m >= thr && (p.burst(k) || k == next-1) {
			count--
		}
		if spaced := int((int64(h) + gap) / gap); count+spaced < plan {
			return true
		}
	}
	return false
}

// schedule is the CPU's bursts for a percentile objective: whether it burns
// through period decided-1 (the one in progress) and decided.
type schedule struct {
	decided int64
	bursts  [2]bool
}

// advance decides the period after k, once, when a tick is in k.
func (s *schedule) advance(k int64, decide func(next int64, current bool) bool) {
	if k+1 == s.decided {
		return
	}
	current := s.burns(k)
	s.decided, s.bursts = k+1, [2]bool{current, decide(k+1, current)}
}

// burns tells whether period k is a burst.
func (s schedule) burns(k int64) bool {
	return k == s.decided-1 && s.bursts[0] || k == s.decided && s.bursts[1]
}
