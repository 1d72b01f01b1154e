package host

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/procfs"

	"github.com/cro-exporter/cro-exporter/internal/linux"
)

// cpuRow is one cpuN line of /proc/stat, in ticks. Signed, so that a test
// can move a counter backwards.
type cpuRow struct {
	User, Nice, System, Idle, Iowait, IRQ, SoftIRQ, Steal, Guest, GuestNice int64
}

func (a cpuRow) plus(b cpuRow) cpuRow {
	return cpuRow{
		a.User + b.User, a.Nice + b.Nice, a.System + b.System, a.Idle + b.Idle, a.Iowait + b.Iowait,
		a.IRQ + b.IRQ, a.SoftIRQ + b.SoftIRQ, a.Steal + b.Steal, a.Guest + b.Guest, a.GuestNice + b.GuestNice,
	}
}

func (a cpuRow) String() string {
	return fmt.Sprintf("%d %d %d %d %d %d %d %d %d %d", a.User, a.Nice, a.System, a.Idle, a.Iowait,
		a.IRQ, a.SoftIRQ, a.Steal, a.Guest, a.GuestNice)
}

// small8gCPUs are the cpuN lines of fixtures/small-8g/stat.
var small8gCPUs = []cpuRow{
	{2893417, 1204, 812356, 21567820, 41233, 0, 38211, 96420, 0, 0},
	{2871055, 988, 806412, 21604391, 39876, 0, 21877, 95113, 0, 0},
}

// statFile renders a /proc/stat with an aggregate cpu line summed from rows,
// as the kernel does.
func statFile(rows []cpuRow) string {
	var sum cpuRow
	var b strings.Builder
	for i, row := range rows {
		sum = sum.plus(row)
		fmt.Fprintf(&b, "cpu%d %s\n", i, row)
	}
	return fmt.Sprintf("cpu  %s\n%sbtime 1795531000\n", sum, b.String())
}

// advance adds deltas, one per CPU, to rows.
func advance(rows []cpuRow, deltas ...cpuRow) []cpuRow {
	out := make([]cpuRow, len(rows))
	for i := range rows {
		out[i] = rows[i].plus(deltas[i])
	}
	return out
}

// sinceBoot is small-8g's busy fraction since boot, as its first Read gives it
// (see TestReadGivesTheFixtureHostsExactSample).
const sinceBoot = 7637053.0 / 50890373.0

// busyFractionSteps are later /proc/stat files of small-8g and the CPU each
// Read of them gives. 15 s on 2 CPUs is 3000 ticks.
var busyFractionSteps = []struct {
	name  string
	steps [][]cpuRow // the cpuN lines of each later /proc/stat
	want  []float64  // the CPU of each later Read
}{
	{
		name: "a 15 s interval with 800 busy ticks of 3000 reports 800/3000",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{User: 350, System: 80, SoftIRQ: 5, Steal: 20, Idle: 1020, Iowait: 25},
			cpuRow{User: 250, System: 70, SoftIRQ: 5, Steal: 20, Idle: 1130, Iowait: 25},
		)},
		want: []float64{800.0 / 3000.0},
	},
	{
		name: "nice and SCHED_IDLE time counts as busy",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{Nice: 1500},
			cpuRow{Nice: 600, Idle: 900},
		)},
		want: []float64{2100.0 / 3000.0},
	},
	{
		name: "steal counts as busy and iowait as idle",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{Steal: 300, Iowait: 1200},
			cpuRow{Steal: 300, Iowait: 1200},
		)},
		want: []float64{600.0 / 3000.0},
	},
	{
		name: "guest time counts once, inside user",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{User: 900, Guest: 600, Idle: 600},
			cpuRow{User: 300, GuestNice: 300, Nice: 300, Idle: 900},
		)},
		want: []float64{1500.0 / 3000.0},
	},
	{
		name: "an all idle interval reports 0",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{Idle: 1500}, cpuRow{Idle: 1500},
		)},
		want: []float64{0},
	},
	{
		name: "an all busy interval reports 1",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{User: 1500}, cpuRow{System: 1500},
		)},
		want: []float64{1},
	},
	{
		name: "iowait stepping back so busy exceeds total clamps at 1",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{User: 1500, Iowait: -40}, cpuRow{User: 1500, Iowait: -40},
		)},
		want: []float64{1},
	},
	{
		name: "busy counters going backwards keep the last value, then measure from there",
		steps: [][]cpuRow{
			advance(small8gCPUs, cpuRow{User: -1000, Idle: 1500}, cpuRow{Idle: 1500}),
			advance(small8gCPUs, cpuRow{User: -1000 + 300, Idle: 1500 + 1200}, cpuRow{Idle: 1500 + 1500}),
		},
		want: []float64{sinceBoot, 300.0 / 3000.0},
	},
	{
		name: "all counters going backwards keep the last value",
		steps: [][]cpuRow{advance(small8gCPUs,
			cpuRow{User: -10, Idle: -10}, cpuRow{Idle: -10},
		)},
		want: []float64{sinceBoot},
	},
	{
		name: "an unchanged stat after an interval keeps the interval's value",
		steps: [][]cpuRow{
			advance(small8gCPUs, cpuRow{User: 750, Idle: 750}, cpuRow{Idle: 1500}),
			advance(small8gCPUs, cpuRow{User: 750, Idle: 750}, cpuRow{Idle: 1500}),
		},
		want: []float64{750.0 / 3000.0, 750.0 / 3000.0},
	},
}

func TestReadGivesTheBusyFractionBetweenTwoStats(t *testing.T) {
	for _, tt := range busyFractionSteps {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyFixtureTree(t, "small-8g")
			r, first := firstRead(t, dir, "/")
			if first.CPU != sinceBoot {
				t.Fatalf("first Read: CPU = %v, want %v", first.CPU, sinceBoot)
			}
			var got []float64
			for i, rows := range tt.steps {
				writeTreeFile(t, filepath.Join(dir, "stat"), statFile(rows))
				s, err := r.Read(readAt.Add(time.Duration(i+1) * 15 * time.Second))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, s.CPU)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CPU of later Reads mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBusyFractionIsNeverNaNOrOutOfRange(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur cpuTicks
		last      float64
		want      float64
	}{
		{"the first read measures since boot", cpuTicks{}, cpuTicks{busy: 25, idle: 75}, 0, 0.25},
		{"nothing elapsed keeps the last value", cpuTicks{10, 30}, cpuTicks{10, 30}, 0.4, 0.4},
		{"nothing ever counted keeps 0", cpuTicks{}, cpuTicks{}, 0, 0},
		{"busy going backwards keeps the last value", cpuTicks{10, 30}, cpuTicks{9, 40}, 0.4, 0.4},
		{"total going backwards keeps the last value", cpuTicks{10, 30}, cpuTicks{11, 20}, 0.4, 0.4},
		{"idle going backwards clamps at 1", cpuTicks{10, 30}, cpuTicks{20, 29}, 0.4, 1},
		{"a plain interval is busy/total", cpuTicks{10, 30}, cpuTicks{13, 39}, 0.4, 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := busyFraction(tt.prev, tt.cur, tt.last); got != tt.want {
				t.Errorf("busyFraction(%v, %v, %v) = %v, want %v", tt.prev, tt.cur, tt.last, got, tt.want)
			}
		})
	}
}

// ticksOf sums a /proc/stat cpu line as procfs parses it into busy and idle
// ticks: the reference parseStat must agree with (procstat_test.go). guest and guest_nice are left
// out: the kernel already counts them in user and nice. procfs divides the
// counters by USER_HZ; multiplying back gives the kernel's integers.
func ticksOf(s procfs.CPUStat) cpuTicks {
	t := func(seconds float64) uint64 {
		if !(seconds > 0) {
			return 0
		}
		return uint64(math.Round(seconds * linux.UserHZ))
	}
	return cpuTicks{
		busy: t(s.User) + t(s.Nice) + t(s.System) + t(s.IRQ) + t(s.SoftIRQ) + t(s.Steal),
		idle: t(s.Idle) + t(s.Iowait),
	}
}

func TestTicksOfCountsGuestTimeOnce(t *testing.T) {
	// procfs gives seconds (ticks / 100).
	s := procfs.CPUStat{
		User: 12.34, Nice: 0.56, System: 7.89, Idle: 100.01, Iowait: 0.99,
		IRQ: 0.1, SoftIRQ: 0.2, Steal: 0.3, Guest: 5.55, GuestNice: 0.44,
	}
	want := cpuTicks{busy: 1234 + 56 + 789 + 10 + 20 + 30, idle: 10001 + 99}
	if got := ticksOf(s); got != want {
		t.Errorf("ticksOf() = %+v, want %+v", got, want)
	}
}
