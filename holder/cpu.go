package holder

import "time"

// cpuPeriod is the length of one duty cycle of a burner thread: short
// enough that a sampler sees a steady load and real work never waits behind
// a long burst, long enough that waking up costs nothing against it. Each
// thread burns once per period, at a random offset, so that the kernel's
// tick-based CPU accounting (HZ 250: a 4 ms tick) does not alias with it.
const cpuPeriod = 100 * time.Millisecond

// Giving way. SCHED_IDLE alone lets a burner keep 0.65% of the machine
// against busy loops of its own session, and 37% against busy loops of
// another session (another autogroup; another cgroup is the same), because
// the scheduler first shares the CPUs between the groups, whose weights do
// not know that the burner's threads are idle ones (measured on a 2-core
// VM). So each burner thread also watches for itself, two ways:
//   - Before it burns, it looks at the machine's idle time (/proc/uptime;
//     GetSystemTimes on Windows) over the time it was off: (almost) none
//     means real work is taking every CPU, and it skips the period without
//     burning at all.
//   - While it burns, it compares its thread's CPU time with the wall time:
//     much lost means other tasks wanted its CPU, and it stops for the rest
//     of the period.
//
// Either way the period counts as wanted by real work; from the second such
// period in a row on it sits out 1, 2, 4, ... up to cpuMaxBackoff periods,
// and it takes up its duty again after the first period that was not. With
// a busy loop on every CPU the burner then keeps under 0.05% of the machine,
// from either session, and is back at its duty 2-4 s after they end.
const (
	// cpuLostMin is the least CPU time lost to other tasks in one burn that
	// counts as contention: more than a short wakeup of real work.
	cpuLostMin = 2 * time.Millisecond
	// cpuLostShare is the least share of the burn's wall time lost to
	// other tasks that counts as contention.
	cpuLostShare = 0.25
	// cpuMaxBackoff is the most periods a burner sits out in a row.
	cpuMaxBackoff = 20
	// cpuEvidenceMin is the least time a burner must have been off for the
	// machine's idle time over it to tell anything at its resolution
	// (idleStep, per OS).
	cpuEvidenceMin = 3 * idleStep
)

// contended tells whether a burn that got cpu of its thread's CPU time over
// wall time of trying has met real work wanting the CPU.
func contended(cpu, wall time.Duration) bool {
	lost := wall - cpu
	return lost >= cpuLostMin && float64(lost) >= cpuLostShare*float64(wall)
}

// backoffPeriods is how many periods a burner sits out after streak
// contended burns in a row: none after the first, which may be a blip, then
// 1, 2, 4, ... and at most cpuMaxBackoff.
func backoffPeriods(streak int) int {
	if streak < 2 {
		return 0
	}
	return min(1<<min(streak-2, 16), cpuMaxBackoff)
}

// machineFull tells whether the machine, over wall time in which a burner
// thread was off, had so little idle time (all CPUs together, as
// /proc/uptime counts it) that real work wants every CPU: less than half a
// CPU, counting idle time a step (idleStep) high. A burner that finds
// the machine alone always sees its own CPU idle, at least wall less a
// step, so this never holds then. Too short a time tells nothing (false).
func machineFull(idle, wall time.Duration) bool {
	return wall >= cpuEvidenceMin && 2*(idle+idleStep) < wall
}

// cpuTimes is what a burner's ledger reads at a period boundary: its own
// thread's CPU time, and its share of the CPU time of the rest of its
// process.
type cpuTimes struct{ own, rest time.Duration }

// ledger is a burner thread's account of its duty, period by period. The
// burner spends its thread's CPU time, and a share of the Go runtime's work
// for the burners (its timers, waking their threads; about 1% of what they
// burn, measured): counting both, the whole process adds the duty asked for,
// not its burners alone. What a period falls short by (a burn cut at the
// period's end or by a blip of other work), or burns over, is owed to the
// next, up to one period's duty either way. The burner forgives what is
// owed when the duty changes and while real work wants the CPUs, so that
// what real work takes is never made up.
type ledger struct {
	kept   bool          // false: the next roll starts afresh
	budget time.Duration // of the current period
	last   cpuTimes      // read at its start
}

// forgive drops what is owed: the next roll starts afresh, at the base duty.
func (l *ledger) forgive() { l.kept = false }

// roll closes the current period on the times read at its end and returns
// the budget of the next one: its base duty plus what is owed.
func (l *ledger) roll(base time.Duration, now cpuTimes) time.Duration {
	var owed time.Duration
	if l.kept {
		spent := now.own - l.last.own + now.rest - l.last.rest
		owed = min(max(l.budget-spent, -base), base)
	}
	l.kept, l.budget, l.last = true, base+owed, now
	return l.budget
}

// burnWindow is where in a period of the given length a burn of budget CPU
// time starts: at u (uniform in [0, 1)) of the slack, so that burns land at
// random phases of the scheduler tick and of each other.
func burnWindow(period, budget time.Duration, u float64) time.Duration {
	slack := period - budget
	if slack <= 0 {
		return 0
	}
	return time.Duration(u * float64(slack))
}
