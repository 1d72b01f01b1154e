package controller

import (
	"maps"
	"testing"

	"github.com/cro-exporter/cro-exporter/internal/host"
)

func TestATargetGivenWinsOverThePresets(t *testing.T) {
	oracle := Presets["oracle-always-free"]
	for _, tc := range []struct {
		name        string
		preset      Preset
		given, want map[host.Resource]float64
	}{
		{"no preset, none given", Presets["default"], nil, map[host.Resource]float64{}},
		{"no preset", Presets["default"], map[host.Resource]float64{host.CPU: 0.3}, map[host.Resource]float64{host.CPU: 0.3}},
		{"the preset's", oracle, nil, map[host.Resource]float64{host.CPU: 0.2, host.Memory: 0, host.Disk: 0}},
		{"one given", oracle, map[host.Resource]float64{host.Memory: 0.25}, map[host.Resource]float64{host.CPU: 0.2, host.Memory: 0.25, host.Disk: 0}},
	} {
		if got := tc.preset.WithTargets(tc.given, 2); !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if oracle.Targets[host.Memory] != 0 {
		t.Errorf("WithTargets changed the preset's table: %v", oracle.Targets)
	}
}
