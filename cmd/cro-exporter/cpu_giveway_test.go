package main

// The CPU burner of the live daemon: what it adds to the host, as
// /proc/stat counts it, is what the daemon counts as holder load, and it
// gives the CPUs to busy loops, as real work would take them, and comes
// back after. The host is made as daemon_test.go's lifecycle tests make
// theirs.

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestTheBurnerIsCountedAndGivesWayToBusyLoops(t *testing.T) {
	testCPUGiveWay(t, newHost(t))
}

// burnerShare is the share of the machine h's burners took over d: their
// CPU time, from /proc/<pid>/stat, over d on every CPU. The daemon may stop
// a burner and start another meanwhile (it stops one that real work leaves
// no room for): one that ended counts for nothing more, one that started
// counts whole.
func burnerShare(h *testHost, d time.Duration) float64 {
	before := map[int]proc{}
	for _, p := range ofKind(h.holders(), "cpu") {
		before[p.pid] = p
	}
	time.Sleep(d)
	var cpu float64
	for _, p := range ofKind(h.holders(), "cpu") {
		cpu += p.cpu
		if b, ok := before[p.pid]; ok && b.start == p.start {
			cpu -= b.cpu
		}
	}
	return cpu / d.Seconds() / float64(runtime.NumCPU())
}

// testCPUGiveWay starts h's daemon with a CPU target a few points above
// the host's usage and memory and disk at 0, then checks its burner three
// ways: its share of the machine from /proc matches the holder load the
// daemon exports; against a busy loop on every CPU it keeps under 2% of
// the machine; and it is back within 10 s of their end.
func testCPUGiveWay(t *testing.T, h *testHost) {
	target := cpuTarget(t)
	if target == 0 {
		t.Fatal("the host's CPU is too busy for a burner (see the log)")
	}
	e := h.start("--target.cpu="+ratioFlag(target), "--target.memory=0", "--target.disk=0")
	logOnFailure(t, e)
	// The daemon rightly runs no burner while other work on this shared
	// host meets the target: wait for a quiet moment, three times at most.
	for i := 0; ; i++ {
		if _, ok := findBurner(h, 10*time.Second); ok {
			break
		}
		if i == 2 {
			t.Fatalf("no burner within 10 s of a quiet host, three times:\n%s", e.metrics(t))
		}
		quietCPU(t, target-0.02)
	}
	time.Sleep(2 * time.Second) // past its start and the daemon's first ticks

	// Counted: the daemon's holder load is what Linux sees it burn, over
	// rounds of 3 s, one of three within 0.02 of the machine.
	var rounds []string
	for range 3 {
		share := burnerShare(h, 3*time.Second)
		counted := value(e.metrics(t), `cro_holder_usage_ratio{resource="cpu"}`)
		rounds = append(rounds, fmt.Sprintf("burner %.4f, counted %.4f", share, counted))
		if share > 0.005 && counted > share-0.02 && counted < share+0.02 {
			break
		}
		if len(rounds) == 3 {
			t.Fatalf("the daemon's cro_holder_usage_ratio{resource=\"cpu\"} is not what the burner burns, per /proc: %v", rounds)
		}
	}
	t.Logf("burner counted: %v", rounds)

	// A busy loop on every CPU, at normal priority, for 6 s at most.
	ncpu := runtime.NumCPU()
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true) })
	runtime.GOMAXPROCS(ncpu + 1) // the test's own goroutine keeps a P
	for range ncpu {
		go func() {
			x := 1.0
			for deadline := time.Now().Add(6 * time.Second); !stop.Load() && time.Now().Before(deadline); {
				x = x*1.0000001 + 1e-9
			}
			_ = x
		}()
	}
	time.Sleep(time.Second) // the burner's first backing off
	if share := burnerShare(h, 3*time.Second); share > 0.02 {
		t.Errorf("against %d busy loops the burner kept %.4f of the machine, want under 0.02", ncpu, share)
	} else {
		t.Logf("against %d busy loops the burner kept %.4f of the machine", ncpu, share)
	}
	stop.Store(true)

	start := time.Now()
	for {
		if share := burnerShare(h, time.Second); share > 0.005 {
			t.Logf("back at %.4f of the machine %v after the busy loops stopped", share, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the burner is not back 10 s after the busy loops stopped")
		}
	}
}
