package holder

import (
	"strings"
	"testing"
	"time"
)

func TestContended(t *testing.T) {
	ms := time.Millisecond
	testDurations(t, "contended", contended, []durationsCase{ // cpu, wall
		{"a burn that got its whole wall time is not contended", 30 * ms, 30*ms + 20*time.Microsecond, false},
		{"a short interruption is not contended", 28 * ms, 30 * ms, false},
		{"a small loss in a long burn is not contended", 30 * ms, 37 * ms, false},
		{"losing half the wall time is contended", 15 * ms, 30 * ms, true},
		{"getting almost nothing is contended", 100 * time.Microsecond, 60 * ms, true},
		{"a tiny burn that lost most of a tiny wall time is not yet contended", 100 * time.Microsecond, 1 * ms, false},
	})
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
	// In steps of the OS's idle time (idleStep: 10 ms on Linux).
	ms := time.Millisecond
	testDurations(t, "machineFull", machineFull, []durationsCase{ // idle, wall
		{"no idle time over a period is full", 0, 100 * ms, true},
		{"a step of idle time over a period is full", idleStep, 100 * ms, true},
		{"half a CPU idle is not full", 50 * ms, 100 * ms, false},
		{"the burner's own CPU idle is not full", 100*ms - idleStep, 100 * ms, false},
		{"no idle time over a short wait tells nothing", 0, 2 * idleStep, false},
		{"no idle time over the shortest telling wait is full", 0, 3 * idleStep, true},
		{"a step of idle time over the shortest telling wait is not full", idleStep, 3 * idleStep, false},
		{"no idle time over seconds of backing off is full", 0, 2 * time.Second, true},
	})
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

func TestParseCPUCommand(t *testing.T) {
	tests := []parseCase[cpuCommand]{
		{"stop stops", "stop", cpuCommand{stop: true}, false},
		{"a duty is read", "duty 0.3", cpuCommand{duty: 0.3}, false},
		{"duty 0 is read", "duty 0", cpuCommand{duty: 0}, false},
		{"duty 1 is read", "duty 1", cpuCommand{duty: 1}, false},
		{"a duty with a trailing dot is read", "duty 1.", cpuCommand{duty: 1}, false},
		{"a duty with a leading dot is read", "duty .25", cpuCommand{duty: 0.25}, false},
		{"spaces between the words are allowed", "duty   0.5", cpuCommand{duty: 0.5}, false},
		{"a duty above 1 is refused", "duty 2", cpuCommand{}, true},
		{"a duty just above 1 is refused", "duty 1.0000001", cpuCommand{}, true},
		{"a negative duty is refused", "duty -0.1", cpuCommand{}, true},
		{"a signed duty is refused", "duty +0.1", cpuCommand{}, true},
		{"a percentage is refused", "duty 30%", cpuCommand{}, true},
		{"an exponent is refused", "duty 1e-1", cpuCommand{}, true},
		{"NaN is refused", "duty NaN", cpuCommand{}, true},
		{"infinity is refused", "duty Inf", cpuCommand{}, true},
		{"a hexadecimal float is refused", "duty 0x1p-2", cpuCommand{}, true},
		{"a word is refused", "duty x", cpuCommand{}, true},
		{"a lone dot is refused", "duty .", cpuCommand{}, true},
		{"two dots are refused", "duty 0.1.2", cpuCommand{}, true},
		{"a missing duty is refused", "duty", cpuCommand{}, true},
		{"two duties are refused", "duty 0.1 0.2", cpuCommand{}, true},
		{"an unknown command is refused", "jump", cpuCommand{}, true},
		{"the empty line is refused", "", cpuCommand{}, true},
		{"commands are case sensitive", "DUTY 0.5", cpuCommand{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUCommand(tt.input)
			if tt.err {
				if err == nil {
					t.Fatalf("parseCPUCommand(%q) = %+v, want an error", tt.input, got)
				}
				if !strings.Contains(err.Error(), `"`+tt.input+`"`) {
					t.Errorf("parseCPUCommand(%q) = %q, want the line named", tt.input, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseCPUCommand(%q) = %+v, %v; want %+v", tt.input, got, err, tt.want)
			}
		})
	}
}

func TestFormatDutyIsReadBack(t *testing.T) {
	for _, d := range []float64{0, 0.3, 1, 0.125, 1e-9, 0.1 + 0.2} {
		got, err := parseDuty(formatDuty(d))
		if err != nil || got != d {
			t.Errorf("parseDuty(formatDuty(%v) = %q) = %v, %v", d, formatDuty(d), got, err)
		}
	}
}

func TestTheBurnerAnswersADutyLineWithItself(t *testing.T) {
	for _, d := range []float64{0, 0.25, 1, 0.1 + 0.2} {
		cmd, err := parseCPUCommand(dutyLine(d))
		if err != nil || cmd.duty != d {
			t.Errorf("parseCPUCommand(%q) = %+v, %v; want duty %v", dutyLine(d), cmd, err, d)
		}
	}
}
