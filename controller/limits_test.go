package controller

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/cgroup"
	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/logtest"
)

func TestALimitBelowTheTargetIsWarnedOnceAndItsEndSaidOnce(t *testing.T) {
	logs := new(logtest.Buffer)
	model := idleHost(8 * gib)
	cfg := modelConfig(model)
	cfg.Targets = map[host.Resource]float64{host.CPU: 0.25, host.Memory: 0.40, host.Disk: 0.25}
	// Keeping 7 of 8 GiB available caps memory at 12.5%, under its 40%.
	cfg.MemoryReserve, cfg.Logger = 7*gib, textLogger(logs)
	loop := NewLoop(cfg)
	stepTicks(loop, model, 0, 3)
	if n := strings.Count(logs.String(), "target cannot be met"); n != 1 || !strings.Contains(logs.String(), "resource=memory") || !strings.Contains(logs.String(), `by="the reserve"`) {
		t.Errorf("want one warning that the reserve keeps memory's target out of reach, got %d:\n%s", n, logs)
	}
	loop.cfg.MemoryReserve = gib
	s, _ := model.Read(simStart.Add(time.Minute))
	loop.Step(s)
	if !strings.Contains(logs.String(), "target can be met again") {
		t.Errorf("the end of the warning was not said:\n%s", logs)
	}
}

// TestHoldersArePlannedWithinTheDaemonsCgroup: inside a memory limit of 1
// GiB (100 MiB charged besides the ballast and its holders' 4 MiB each)
// and a CPU quota of half a CPU
// of 2, targets of 0.40 of 8 GiB and 0.6 of the machine are out of reach:
// ballast stays under the limit less its headroom, the burner within the
// quota less its headroom, and each is said once, with the shortfall in
// the state.
func TestHoldersArePlannedWithinTheDaemonsCgroup(t *testing.T) {
	logs := new(logtest.Buffer)
	model := idleHost(8 * gib)
	loop := inCgroup(model, cgroup.Limits{Memory: cgroup.Memory{Limit: gib}, CPUs: 0.5}, 100<<20, logs)
	loop.cfg.Targets = map[host.Resource]float64{host.CPU: 0.6, host.Memory: 0.40, host.Disk: 0.25}
	var last *State
	loop.cfg.Publish = func(s *State) { last = s }
	stepTicks(loop, model, 0, 8)
	// 1 GiB less 100 MiB less a tenth of 1 GiB, less 4 MiB for the one
	// holder of the rest.
	room := int64(gib - 100<<20 - gib/10 - 4<<20)
	if model.load.Memory > room || model.load.Memory < room-64<<20 {
		t.Errorf("ballast %d MiB; want at most, and near, the cgroup's room of %d MiB", model.load.Memory>>20, room>>20)
	}
	// Half a CPU less a tenth, of 2.
	if cpu := model.load.CPU; cpu > 0.225+1e-9 || cpu < 0.2 {
		t.Errorf("burner duty %v; want at most, and near, 0.225", cpu)
	}
	for _, want := range []string{`resource=memory`, `resource=cpu`} {
		if n := strings.Count(logs.String(), `"target cannot be met" `+want); n != 1 {
			t.Errorf("%d warnings for %s; want 1:\n%s", n, want, logs)
		}
	}
	for _, by := range []string{`by="the cgroup's memory limit"`, `by="the cgroup's CPU quota"`} {
		if !strings.Contains(logs.String(), by) {
			t.Errorf("no warning names %s:\n%s", by, logs)
		}
	}
	// Real usage 0.10 and room 0.1 of 8 GiB reach 0.20 of the 0.40; real
	// CPU 0.01 and the quota's 0.225 reach 0.235 of 0.6.
	if got := last.Resources[host.Memory].Shortfall; math.Abs(got-(0.40-0.10-float64(room)/(8*gib))) > 0.01 {
		t.Errorf("memory shortfall %v; want about %v", got, 0.40-0.10-float64(room)/(8*gib))
	}
	if got := last.Resources[host.CPU].Shortfall; math.Abs(got-(0.6-0.01-0.225)) > 0.01 {
		t.Errorf("CPU shortfall %v; want about 0.365", got)
	}
	if got := last.Resources[host.Disk].Shortfall; got != 0 {
		t.Errorf("disk shortfall %v; want 0: nothing bounds it", got)
	}
}

// TestAnUnreachableTargetIsInReachAgainOnlyAMarginAboveTheEdge: a limit
// that real usage moves about the edge (the cgroup's) says nothing more
// until it is a margin above it.
func TestAnUnreachableTargetIsInReachAgainOnlyAMarginAboveTheEdge(t *testing.T) {
	logs := new(logtest.Buffer)
	l := NewLoop(Config{Logger: textLogger(logs)})
	var c control
	for _, limit := range []float64{0.40, 0.5049, 0.5051, 0.5049, 0.5099, 0.5101, 0.4} {
		l.warnUnreachable(host.Memory, &c, 0.5, limit, byCgroup)
	}
	if warned, again := strings.Count(logs.String(), "target cannot be met"), strings.Count(logs.String(), "target can be met again"); warned != 2 || again != 1 {
		t.Errorf("%d warnings and %d ends; want 2 and 1 (in reach at 0.5101 only, out again at 0.4):\n%s", warned, again, logs)
	}
	if !strings.Contains(logs.String(), "short_by=0.1 ") {
		t.Errorf("the warning does not say by how much:\n%s", logs)
	}
	if math.Abs(c.shortfall-0.1) > 1e-12 {
		t.Errorf("shortfall %v; want 0.1", c.shortfall)
	}
}

// inCgroup is a loop on model inside a cgroup of limits, charged others
// bytes besides the model's ballast and 4 MiB for each of its holders.
func inCgroup(model *Model, limits cgroup.Limits, others int64, logs io.Writer) *Loop {
	cfg := modelConfig(model)
	cfg.Cgroup = func() (cgroup.Limits, error) {
		holders := (model.load.Memory + maxStep - 1) / maxStep
		limits.Memory.Usage = others + model.load.Memory + holders*4<<20
		return limits, nil
	}
	cfg.Logger = textLogger(logs)
	return NewLoop(cfg)
}

// TestACgroupThatLeavesLessThanTheBandStillHoldsMostOfIt: 256 MiB of a
// 24 GiB host is under 1%, the smallest change of holder load worth making
// (band); what a cgroup leaves is held all the same, not nothing.
func TestACgroupThatLeavesLessThanTheBandStillHoldsMostOfIt(t *testing.T) {
	model := idleHost(24 * gib)
	loop := inCgroup(model, cgroup.Limits{Memory: cgroup.Memory{Limit: 256 << 20}}, 10<<20, io.Discard)
	loop.cfg.Targets = map[host.Resource]float64{host.CPU: 0, host.Memory: 0.40, host.Disk: 0}
	stepTicks(loop, model, 0, 4)
	// 256 MiB less 10, less the headroom of 32, less 4 for the holder.
	if got := model.load.Memory; got < 200<<20 || got > 210<<20 {
		t.Errorf("ballast %d MiB; want the 210 MiB the cgroup leaves, or nearly", got>>20)
	}
}
