package controller

import (
	"math"
	"testing"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

const tau30d = 15 * 24 * time.Hour

func TestSetpoint(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		avg, weight, target, limit float64
		want                       float64
	}{
		{"a fresh average asks for target plus margin", 0, 0, 0.25, 0.9, 0.255},
		{"an average at target plus margin asks for the same", 0.255, 1, 0.25, 0.9, 0.255},
		{"a full average far below target asks for the ceiling", 0.05, 1, 0.40, 0.9, 0.9},
		{"an average far above target asks for nothing", 0.6, 1, 0.25, 0.9, 0},
		{"a setpoint is never above the limit", 0.2, 0.5, 0.25, 0.22, 0.22},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := setpoint(tc.avg, tc.weight, tc.target, tc.limit, horizon, tau30d); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("setpoint = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetpointBringsTheAverageToTargetAtTheHorizon(t *testing.T) {
	a := NewAverages(30*24*time.Hour, 2*time.Minute)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Ten days at 25% leave the average a little under target plus margin.
	for ti := time.Duration(0); ti <= 10*24*time.Hour; ti += time.Minute {
		a.update("cpu", start.Add(ti), 0.25)
	}
	s := a.Setpoint("cpu", 0.25, 0.9)
	if s <= 0.255 || s >= 0.9 {
		t.Fatalf("setpoint %v, want between target+margin and the ceiling", s)
	}
	for ti := time.Minute; ti <= horizon; ti += time.Minute {
		a.update("cpu", start.Add(10*24*time.Hour+ti), s)
	}
	if got := a.Value("cpu"); math.Abs(got-0.255) > 1e-4 {
		t.Errorf("average after holding the setpoint for the horizon = %v, want 0.255", got)
	}
}

func TestHolderLoad(t *testing.T) {
	for _, tc := range []struct {
		name                                        string
		setpoint, smooth, real, now, limit, maxGrow float64
		want                                        float64
	}{
		{"holders fill the gap between real usage and the setpoint", 0.255, 0.05, 0.05, 0, 0.9, 1, 0.205},
		{"holders follow smoothed real usage, not one tick's noise", 0.255, 0.05, 0.08, 0, 0.9, 1, 0.205},
		{"real usage at the setpoint needs no holders", 0.255, 0.255, 0.255, 0.1, 0.9, 1, 0},
		{"real usage above the setpoint stops every holder at once, smoothed or not", 0.255, 0.06, 0.5, 0.2, 0.9, 1, 0},
		{"a change under the band waits", 0.255, 0.05, 0.05, 0.2, 0.9, 1, 0.2},
		{"a change over the band is made", 0.255, 0.05, 0.05, 0.19, 0.9, 1, 0.205},
		{"growth is limited per step", 0.9, 0, 0, 0.1, 0.9, 0.125, 0.225},
		{"holders never push total usage over the limit", 0.9, 0.3, 0.3, 0, 0.6, 1, 0.3},
		{"holders over the limit shrink at once, even by less than the band", 0.5, 0.3, 0.3, 0.305, 0.6, 1, 0.2},
		{"no room under the limit means no holders", 0.5, 0.7, 0.7, 0.1, 0.6, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holderLoad(tc.setpoint, tc.smooth, tc.real, tc.now, tc.limit, tc.maxGrow); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("holderLoad = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecisions(t *testing.T) {
	const tick = 15 * time.Second
	burst := smooth(0.05, 0.05+giveWay, false, tick)
	for _, tc := range []struct {
		name string
		r    host.Resource
		in   inputs
		want decision
	}{
		{"a CPU burst counts in the plan only up to the give-way threshold", host.CPU,
			inputs{setpoint: 0.255, limit: 0.9, real: 0.5, smooth: 0.05, started: true, interval: tick, held: 0.2, step: 1},
			decision{smooth: burst, started: true, load: 0.2}},
		{"a CPU figure since boot neither plans nor starts the level", host.CPU,
			inputs{setpoint: 0.255, limit: 0.9, real: 0.6, sinceBoot: true, interval: tick, step: 1},
			decision{}},
		{"the first current CPU figure starts the level and plans", host.CPU,
			inputs{setpoint: 0.255, limit: 0.9, real: 0.01, interval: tick, step: 1},
			decision{smooth: 0.01, started: true, load: 0.245}},
		{"CPU holders stop when smoothed real usage meets the setpoint", host.CPU,
			inputs{setpoint: 0.255, limit: 0.9, real: 0.3, smooth: 0.3, started: true, interval: tick, held: 0.1, step: 1},
			decision{smooth: 0.3, started: true, release: ReasonRealUsage, released: true}},
		{"memory grows toward the setpoint by a step at most", host.Memory,
			inputs{setpoint: 0.5, limit: 0.85, reserved: true, real: 0.1, smooth: 0.1, started: true, interval: tick, held: 0.1, step: 0.125},
			decision{smooth: 0.1, started: true, load: 0.225}},
		{"memory does not grow while held off", host.Memory,
			inputs{setpoint: 0.5, limit: 0.85, reserved: true, real: 0.1, smooth: 0.1, started: true, interval: tick, held: 0.1, step: 0.125, heldOff: true},
			decision{smooth: 0.1, started: true, load: 0.1}},
		{"memory held off still gives way to real usage", host.Memory,
			inputs{setpoint: 0.5, limit: 0.85, reserved: true, real: 0.6, smooth: 0.6, started: true, interval: tick, held: 0.2, step: 0.125, heldOff: true},
			decision{smooth: 0.6, started: true, release: ReasonRealUsage, released: true}},
		{"memory over its reserve is short and holds off", host.Memory,
			inputs{setpoint: 0.5, limit: 0.85, reserved: true, real: 0.7, smooth: 0.7, started: true, interval: tick, held: 0.3, step: 0.125},
			decision{smooth: 0.7, started: true, release: ReasonReserve, released: true, short: true, holdOff: true}},
		{"memory over the ceiling is short without a hold-off", host.Memory,
			inputs{setpoint: 0.5, limit: 0.85, real: 0.7, smooth: 0.7, started: true, interval: tick, held: 0.3, step: 0.125},
			decision{smooth: 0.7, started: true, release: ReasonRealUsage, released: true, short: true}},
		{"disk fill fills the gap", host.Disk,
			inputs{setpoint: 0.255, limit: 0.9, real: 0.1, smooth: 0.1, started: true, interval: tick, step: 1},
			decision{smooth: 0.1, started: true, load: 0.155}},
		{"the hold-off is memory's alone", host.Disk,
			inputs{setpoint: 0.255, limit: 0.9, real: 0.1, smooth: 0.1, started: true, interval: tick, step: 1, heldOff: true},
			decision{smooth: 0.1, started: true, load: 0.155}},
		{"disk fill over its reserve shrinks at once and is never short", host.Disk,
			inputs{setpoint: 0.6, limit: 0.8, reserved: true, real: 0.5, smooth: 0.5, started: true, interval: tick, held: 0.4, step: 1},
			decision{smooth: 0.5, started: true, load: 0.1, release: ReasonReserve, released: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := laws[tc.r](tc.in)
			if math.Abs(got.load-tc.want.load) > 1e-9 || math.Abs(got.smooth-tc.want.smooth) > 1e-9 {
				t.Errorf("load %v, smooth %v; want %v, %v", got.load, got.smooth, tc.want.load, tc.want.smooth)
			}
			got.load, got.smooth = tc.want.load, tc.want.smooth
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWithinTheCgroupsRoom(t *testing.T) {
	for _, tc := range []struct {
		name           string
		load, now      float64
		memory         bool
		want           float64
		short, release bool
	}{
		{"a load within the room stands", 0.05, 0.02, true, 0.05, false, false},
		{"a load over it comes down to it", 0.5, 0, true, 0.1, false, false},
		{"a room that moves by less than half of it moves nothing", 0.5, 0.095, true, 0.095, false, false},
		{"ballast over the room is short: whole chunks go", 0.5, 0.12, true, 0.1, true, true},
		{"a burner over the quota comes down to it", 0.5, 0.12, false, 0.1, false, true},
	} {
		d := decision{load: tc.load}.within(0.1, tc.now, tc.memory)
		if math.Abs(d.load-tc.want) > 1e-12 || d.short != tc.short || d.released != tc.release {
			t.Errorf("%s: %+v; want load %v, short %v, released %v", tc.name, d, tc.want, tc.short, tc.release)
		}
	}
}

func TestHoldOffDoublesOnlyForReleasesSoonAfterTheLast(t *testing.T) {
	at := func(d time.Duration) time.Time { return simStart.Add(d) }
	for _, tc := range []struct {
		name    string
		before  holdOff
		release time.Duration
		want    time.Duration
	}{
		{"a first release holds for five minutes", holdOff{}, 0, 5 * time.Minute},
		{"a release during the hold-off extends it without doubling",
			holdOff{until: at(5 * time.Minute), length: 5 * time.Minute}, 2 * time.Minute, 5 * time.Minute},
		{"a release within an hour after it doubles it",
			holdOff{until: at(5 * time.Minute), length: 5 * time.Minute}, 50 * time.Minute, 10 * time.Minute},
		{"doubling stops at four hours",
			holdOff{until: at(3 * time.Hour), length: 3 * time.Hour}, 3*time.Hour + time.Minute, 4 * time.Hour},
		{"a release long after starts afresh",
			holdOff{until: at(time.Hour), length: time.Hour}, 3 * time.Hour, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.before.after(at(tc.release))
			if got.length != tc.want || !got.until.Equal(at(tc.release).Add(tc.want)) {
				t.Errorf("after a release at %v: hold-off %v until %v, want %v from the release", tc.release, got.length, got.until.Sub(simStart), tc.want)
			}
		})
	}
}
