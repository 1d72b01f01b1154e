package controller

import (
	"math"
	"slices"
	"time"
)

// periods keeps what a percentile objective's auditor samples: the mean
// usage of every audit period of the trailing window, two bytes each (20 KiB
// for 7 days of minutes). Periods are numbered from the Unix epoch, so that
// they start on the clock's boundaries as a cloud agent's do.
//
// A mean is kept rounded down to 1/meanScale: a period counts as at or above
// a target only when its mean surely is, and one within 0.0015 percentage
// points above a target counts as below. Time nobody saw (the daemon was
// down, or had not started) counts as usage 0: a period is never made to
// pass by what was not seen.
type periods struct {
	length time.Duration
	// means is a ring: period k's mean at k mod len(means), for the
	// periods (closed-len(means), closed]; older ones count as 0.
	means  []uint16
	closed int64
	// bursts has a bit per period of the ring, set where the CPU burnt
	// through it; sched is the bursts decided ahead.
	bursts []uint64
	sched  schedule
	// open is the period in progress, after closed: sum is the
	// usage-seconds folded into it, up to until; until is zero before the
	// first sample.
	open  int64
	sum   float64
	until time.Time
	// sub, when above 0, makes a period's value the max of the means of
	// its sub-periods of that length: subOpen is the sub-period in
	// progress, subSum its usage-seconds, and best the highest mean of
	// the open period's sub-periods closed so far.
	sub     time.Duration
	subOpen int64
	subSum  float64
	best    uint16
	// thr is the threshold of the target bursts are planned for, so that
	// a burst of a sub-period knows when real work carried its period.
	thr uint16
	// scratch is window's; audited the last audit, for the window ending
	// at its end with the periods closed then.
	scratch []uint16
	audited audited
}

type audited struct {
	end, closed   int64
	q, target     float64
	quantile      float64
	passing, need int
}

// meanScale is what a mean of 1 is kept as.
const meanScale = math.MaxUint16

func newPeriods(length, window time.Duration) *periods {
	n := window / length
	return &periods{length: length, means: make([]uint16, n), bursts: make([]uint64, (n+63)/64)}
}

// newSubPeriods is newPeriods whose periods' values are the max of the
// means of their sub-periods of sub; 0 is newPeriods.
func newSubPeriods(length, sub, window time.Duration) *periods {
	p := newPeriods(length, window)
	p.sub = sub
	return p
}

// subNumber is the sub-period t falls in.
func (p *periods) subNumber(t time.Time) int64 { return t.UnixNano() / int64(p.sub) }

// closeSub folds the sub-period in progress into its period's best; time
// in it nobody saw counts as 0.
func (p *periods) closeSub() {
	mean := clamp(p.subSum/p.sub.Seconds(), 0, 1)
	p.best = max(p.best, uint16(math.Floor(mean*meanScale)))
}

// enter makes the sub-period t falls in the one in progress, closing the
// one before it; without sub-periods it does nothing.
func (p *periods) enter(t time.Time) {
	if p.sub == 0 {
		return
	}
	if j := p.subNumber(t); j != p.subOpen {
		p.closeSub()
		p.subOpen, p.subSum = j, 0
	}
}

// number is the period t falls in; a period's start belongs to it.
func (p *periods) number(t time.Time) int64 { return t.UnixNano() / int64(p.length) }

func (p *periods) start(k int64) time.Time { return time.Unix(0, k*int64(p.length)) }

// observe folds usage x, which stands for the time since the previous call
// (at most maxSpan of it), into the periods, closing each period it ends.
// The first call observes no time and only sets where the next interval
// starts. A call at or before the previous one (the clock stepped back, and
// the loop did not see it, as across a restart) observes no time either: the
// periods resume from now.
func (p *periods) observe(now time.Time, x float64, maxSpan time.Duration) {
	if p.until.IsZero() {
		k := p.number(now)
		p.open, p.sum, p.until = k, 0, now
		p.closed = max(p.closed, k-1)
		p.restartSubs(now)
		return
	}
	if !now.After(p.until) {
		p.resume(now)
		return
	}
	from := later(p.until, now.Add(-maxSpan))
	p.until = now
	for from.Before(now) {
		// A sub-period closes before the period it ends.
		p.enter(from)
		if k := p.number(from); k != p.open {
			p.close()
			p.open, p.sum, p.best = k, 0, 0
		}
		end := p.start(p.open + 1)
		if p.sub > 0 {
			end = time.Unix(0, (p.subOpen+1)*int64(p.sub))
		}
		if end.After(now) {
			end = now
		}
		p.sum += x * end.Sub(from).Seconds()
		if p.sub > 0 {
			p.subSum += x * end.Sub(from).Seconds()
		}
		from = end
	}
	p.enter(now)
	if now.Equal(p.start(p.open + 1)) {
		p.close()
		p.open, p.sum, p.best = p.open+1, 0, 0
	}
}

// restartSubs makes the sub-period now falls in the one in progress, from
// nothing, and forgets the open period's best: after a step of the clock
// back it could hold sub-periods the clock comes to again, and a period's
// value is never made higher by what was not seen.
func (p *periods) restartSubs(now time.Time) {
	if p.sub > 0 {
		p.subOpen, p.subSum, p.best = p.subNumber(now), 0, 0
	}
}

// resume goes on from from, what the clock reads now where it read until
// before it stepped; before the first sample there is nothing to resume.
// Ahead of until, the time between counts as nobody saw it, as a gap does.
// Back, the periods after from's are forgotten, so that none numbered
// ahead of the clock holds the window's periods back from closing, and
// from's period is reopened with its mean so far over its time before
// from: the time after from is counted once, when the clock comes to it
// again.
func (p *periods) resume(from time.Time) {
	switch {
	case p.until.IsZero():
		return
	case !from.Before(p.until):
		p.until = from
		return
	}
	n := int64(len(p.means))
	k := p.number(from)
	start := p.start(k)
	var mean float64 // of period k so far
	switch {
	case k == p.open:
		mean = p.sum / p.until.Sub(start).Seconds()
	case k <= p.closed && k > p.closed-n:
		mean = float64(p.means[k%n]) / meanScale
	}
	p.forget(k)
	p.open, p.sum, p.until = k, mean*from.Sub(start).Seconds(), from
	p.restartSubs(from)
}

// forget makes the periods from k on never seen: those closed count as 0,
// and k is the next to close.
func (p *periods) forget(k int64) {
	n := int64(len(p.means))
	for j := max(k, p.closed-n+1); j <= p.closed; j++ {
		p.means[j%n] = 0
		p.setBurst(j, false)
	}
	p.closed = min(p.closed, k-1)
}

// close records the open period's mean; time in it nobody saw counts as 0.
func (p *periods) close() {
	n := int64(len(p.means))
	k := p.open
	for j := max(p.closed+1, k-n+1); j < k; j++ {
		p.means[j%n] = 0 // periods nobody saw
		p.setBurst(j, false)
	}
	mean := clamp(p.sum/p.length.Seconds(), 0, 1)
	p.means[k%n] = uint16(math.Floor(mean * meanScale))
	if p.sub > 0 {
		p.means[k%n] = p.best
	}
	p.setBurst(k, p.sched.burns(k))
	p.closed = k
}

func (p *periods) setBurst(k int64, burst bool) {
	slot := k % int64(len(p.means))
	if burst {
		p.bursts[slot/64] |= 1 << (slot % 64)
	} else {
		p.bursts[slot/64] &^= 1 << (slot % 64)
	}
}

// burst tells whether the CPU burnt through period k, one of the ring's.
func (p *periods) burst(k int64) bool {
	slot := k % int64(len(p.means))
	return p.bursts[slot/64]&(1<<(slot%64)) != 0
}

// window is the kept means of the n periods (end-n, end], oldest first,
// 0 for those outside the ring, into p's scratch space.
func (p *periods) window(end int64) []uint16 {
	n := int64(len(p.means))
	first := end - n + 1
	p.scratch = slices.Grow(p.scratch[:0], int(n))[:n]
	clear(p.scratch)
	// The ring holds (closed-n, closed], in at most two runs of slots.
	for k, last := max(first, p.closed-n+1), min(end, p.closed); k <= last; {
		slot := k % n
		run := min(last-k+1, n-slot)
		copy(p.scratch[k-first:], p.means[slot:slot+run])
		k += run
	}
	return p.scratch
}

// threshold is the least kept mean that is surely at or above target.
func threshold(target float64) uint16 {
	return uint16(clamp(math.Ceil(target*meanScale), 0, meanScale))
}

// passing counts the periods (end-n, end] whose value is at or above target.
func (p *periods) passing(end int64, target float64) int {
	thr, c := threshold(target), 0
	for _, m := range p.window(end) {
		if m >= thr {
			c++
		}
	}
	return c
}

// quantile is the q-quantile (nearest rank) of the means of the periods
// (end-n, end].
func (p *periods) quantile(end int64, q float64) float64 {
	means := p.window(end)
	rank := int(math.Ceil(q*float64(len(means)) - 1e-9))
	return float64(kth(means, min(max(rank, 1), len(means)))) / meanScale
}

// kth is the k-th smallest of values (k from 1), in two counting passes,
// one per byte: linear in the window, where a sort is not, for a window of
// up to a week of minutes audited again each time a period closes.
func kth(values []uint16, k int) uint16 {
	var high [256]int
	for _, v := range values {
		high[v>>8]++
	}
	h := 0
	for ; k > high[h]; h++ {
		k -= high[h]
	}
	var low [256]int
	for _, v := range values {
		if int(v>>8) == h {
			low[v&0xff]++
		}
	}
	l := 0
	for ; k > low[l]; l++ {
		k -= low[l]
	}
	return uint16(h<<8 | l)
}

// atLeast is the fewest of n period means that must be at or above a
// target for their q-quantile to be at or above it, whatever the others
// are, both as the nearest rank (the ceil(q*n)-th smallest) and as the
// linear interpolation between ranks that Prometheus' quantile_over_time
// takes (between the floor and the ceiling of q*(n-1), from 0).
func atLeast(n int, q float64) int {
	nearest := n - int(math.Ceil(q*float64(n)-1e-9)) + 1
	linear := n - int(math.Floor(q*float64(n-1)+1e-9))
	return min(n, max(nearest, linear))
}

// planned is how many of n periods the CPU plans at or above its target
// for a q-quantile: atLeast, and a tenth more but at least 2, for periods
// that fail however they were planned (a burst the daemon stops in, a
// restart, a moment of give-way in a short period). A short window needs
// more than 1-q of its periods: p95 of 80 periods needs 5 (6.3%), planned
// 7. The spare ones are at most half of the periods the quantile lets fall
// under the target: a low quantile of few periods (p25 of 14 days needs
// 11, and lets 3 fall) would otherwise plan nearly all of them, at more
// than a constant hold's cost.
func planned(n int, q float64) int {
	need := atLeast(n, q)
	spare := min(max(2, int(math.Ceil(0.1*float64(need)))), max(0, n-need)/2)
	return min(n, need+spare)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// audit is what the auditor finds over the window ending at period end:
// the q-quantile of the means, the share of the periods at or above target,
// and how many more the window needs for the quantile to reach it.
func (p *periods) audit(end int64, q, target float64) (quantile, passing float64, needed int) {
	n := len(p.means)
	a := audited{end: end, closed: p.closed, q: q, target: target}
	if a.end != p.audited.end || a.closed != p.audited.closed || a.q != p.audited.q || a.target != p.audited.target {
		a.quantile, a.passing, a.need = p.quantile(end, q), p.passing(end, target), atLeast(n, q)
		p.audited = a
	}
	a = p.audited
	return a.quantile, float64(a.passing) / float64(n), max(0, a.need-a.passing)
}

// lastAudit is audit over the window ending with the last period before
// now's, the one an auditor sees closed at now.
func (p *periods) lastAudit(now time.Time, q, target float64) (quantile, passing float64, needed int) {
	return p.audit(p.number(now)-1, q, target)
}
