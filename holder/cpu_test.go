package holder

import (
	"testing"
	"time"
)

func TestContended(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		cpu, wall time.Duration
		want      bool
	}{
		{"a burn that got its whole wall time is not contended", 30 * ms, 30*ms + 20*time.Microsecond, false},
		{"a short interruption is not contended", 28 * ms, 30 * ms, false},
		{"a small loss in a long burn is not contended", 30 * ms, 37 * ms, false},
		{"losing half the wall time is contended", 15 * ms, 30 * ms, true},
		{"getting almost nothing is contended", 100 * time.Microsecond, 60 * ms, true},
		{"a tiny burn that lost most of a tiny wall time is not yet contended", 100 * time.Microsecond, 1 * ms, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := contended(tt.cpu, tt.wall); got != tt.want {
				t.Errorf("contended(%v, %v) = %v, want %v", tt.cpu, tt.wall, got, tt.want)
			}
		})
	}
}

func TestBackoffPeriods(t *testing.T) {
	want := []int{0, 0, 1, 2, 4, 8, 16, 20, 20}
	for streak, w := range want {
		if got := backoffPeriods(streak); got != w {
			t.Errorf("backoffPeriods(%d) = %d, want %d", streak, got, w)
		}
	}
	if got := backoffPeriods(1000); got != cpuMaxBackoff {
		t.Errorf("backoffPeriods(1000) = %d, want %d", got, cpuMaxBackoff)
	}
}

func TestMachineFull(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name       string
		idle, wall time.Duration
		want       bool
	}{
		{"no idle time over a period is full", 0, 100 * ms, true},
		{"a step of idle time over a period is full", 10 * ms, 100 * ms, true},
		{"half a CPU idle is not full", 50 * ms, 100 * ms, false},
		{"the burner's own CPU idle is not full", 90 * ms, 100 * ms, false},
		{"no idle time over a short wait tells nothing", 0, 20 * ms, false},
		{"no idle time over the shortest telling wait is full", 0, 30 * ms, true},
		{"a step of idle time over the shortest telling wait is not full", 10 * ms, 30 * ms, false},
		{"no idle time over seconds of backing off is full", 0, 2 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := machineFull(tt.idle, tt.wall); got != tt.want {
				t.Errorf("machineFull(%v, %v) = %v, want %v", tt.idle, tt.wall, got, tt.want)
			}
		})
	}
}

func TestLedger(t *testing.T) {
	ms := time.Millisecond
	const base = 30 * time.Millisecond
	// spend rolls a ledger over one period in which the burner's thread
	// spent own and its share of the rest of the process spent rest.
	spend := func(l *ledger, own, rest time.Duration) time.Duration {
		return l.roll(base, cpuTimes{l.last.own + own, l.last.rest + rest})
	}
	tests := []struct {
		name  string
		spent [][2]time.Duration // own, rest per period, after the first roll
		want  time.Duration      // the budget after them
	}{
		{"a new ledger budgets the base", nil, base},
		{"spending the budget keeps the base", [][2]time.Duration{{30 * ms, 0}, {30 * ms, 0}}, base},
		{"a burn cut short is made up next period", [][2]time.Duration{{18 * ms, 0}}, base + 12*ms},
		{"what was made up is not made up twice", [][2]time.Duration{{18 * ms, 0}, {42 * ms, 0}}, base},
		{"the rest of the process counts as spent", [][2]time.Duration{{30 * ms, 0}, {29 * ms, 300 * time.Microsecond}}, base + 700*time.Microsecond},
		{"burning over is taken off the next budget", [][2]time.Duration{{34 * ms, ms}}, base - 5*ms},
		{"at most one period's duty is owed", [][2]time.Duration{{0, 0}, {0, 0}, {0, 0}}, 2 * base},
		{"at most one period's duty is taken off", [][2]time.Duration{{100 * ms, 0}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l ledger
			got := l.roll(base, cpuTimes{own: 5 * time.Second, rest: time.Second})
			for _, s := range tt.spent {
				got = spend(&l, s[0], s[1])
			}
			if got != tt.want {
				t.Errorf("budget %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("forgiving drops what is owed and what was burnt over", func(t *testing.T) {
		for _, spent := range []time.Duration{0, 100 * ms} {
			var l ledger
			l.roll(base, cpuTimes{})
			l.forgive()
			if got := spend(&l, spent, 0); got != base {
				t.Errorf("spent %v, forgiven: budget %v, want %v", spent, got, base)
			}
			if got := spend(&l, 10*ms, 0); got != base+20*ms {
				t.Errorf("after forgiving, spent 10ms of %v: budget %v, want the account kept again, %v", base, got, base+20*ms)
			}
		}
	})
}

func TestBurnWindowLeavesRoomForTheBudget(t *testing.T) {
	for _, budget := range []time.Duration{0, 30 * time.Millisecond, cpuPeriod, 2 * cpuPeriod} {
		for _, u := range []float64{0, 0.5, 0.999999} {
			start := burnWindow(cpuPeriod, budget, u)
			if start < 0 || (budget <= cpuPeriod && start+budget > cpuPeriod) {
				t.Errorf("burnWindow(%v, %v, %v) = %v: the burn does not fit the period", cpuPeriod, budget, u, start)
			}
		}
	}
}

func TestParseUptimeIdle(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  time.Duration
		err   bool
	}{
		{"idle seconds are read", "1313.77 1709.25\n", 1709*time.Second + 250*time.Millisecond, false},
		{"hundredths are read", "1.00 0.05\n", 50 * time.Millisecond, false},
		{"a missing field is an error", "1313.77\n", 0, true},
		{"a missing fraction is an error", "1313.77 1709\n", 0, true},
		{"one decimal is an error", "1313.77 1709.2\n", 0, true},
		{"a negative time is an error", "1313.77 -1.00\n", 0, true},
		{"garbage is an error", "x y\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUptimeIdle([]byte(tt.input))
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parseUptimeIdle(%q) = %v, %v; want %v, error %v", tt.input, got, err, tt.want, tt.err)
			}
		})
	}
}
