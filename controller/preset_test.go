package controller

import (
	"maps"
	"testing"

	"github.com/cro-exporter/cro-exporter/collector"
)

func TestATargetGivenWinsOverThePresets(t *testing.T) {
	oracle := Presets["oracle-always-free"]
	for _, tc := range []struct {
		name        string
		preset      Preset
		given, want map[collector.Resource]float64
	}{
		{"no preset, none given", Presets["default"], nil, map[collector.Resource]float64{}},
		{"no preset", Presets["default"], map[collector.Resource]float64{collector.CPU: 0.3}, map[collector.Resource]float64{collector.CPU: 0.3}},
		{"the preset's", oracle, nil, map[collector.Resource]float64{collector.CPU: 0.2, collector.Memory: 0.2, collector.Disk: 0}},
		{"one given", oracle, map[collector.Resource]float64{collector.Memory: 0.25}, map[collector.Resource]float64{collector.CPU: 0.2, collector.Memory: 0.25, collector.Disk: 0}},
	} {
		if got := tc.preset.WithTargets(tc.given); !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if oracle.Targets[collector.Memory] != 0.2 {
		t.Errorf("WithTargets changed the preset's table: %v", oracle.Targets)
	}
}
