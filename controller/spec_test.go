package controller

import (
	"math"
	"testing"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const gib = 1 << 30

// gibs is x GiB in bytes, rounded down as the kernel counts whole bytes.
func gibs(x float64) uint64 {
	return uint64(x * gib)
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		memTotal float64 // GiB
		want     Spec
		nominal  uint64 // the memory the host was sold with, as MemTotal tells
	}{
		{"a 2 GB host is small", 1.9, Spec{"small", 0.25}, gibs(1.9)},
		{"an 8 GB cloud host showing 7.6 GiB is small", 7.6, Spec{"small", 0.25}, 8 * gib},
		{"a host showing 7.25 GiB, within 10% of 8, counts as 8", 7.25, Spec{"small", 0.25}, 8 * gib},
		{"an 8 GiB host is small", 8.0, Spec{"small", 0.25}, 8 * gib},
		{"a 12 GB host showing 11.7 GiB is medium at 31.9%", 11.7, Spec{"medium", 0.25 + 3.7/8*0.15}, gibs(11.7)},
		{"a host just under 90% of 16 GiB is medium near 37%", 14.39, Spec{"medium", 0.25 + 6.39/8*0.15}, gibs(14.39)},
		{"a host showing 14.5 GiB, within 10% of 16, counts as 16", 14.5, Spec{"large", 0.40}, 16 * gib},
		{"a 16 GB cloud host showing 15.4 GiB is large", 15.4, Spec{"large", 0.40}, 16 * gib},
		{"a 24 GB host showing 23.4 GiB is large", 23.4, Spec{"large", 0.40}, gibs(23.4)},
		{"no memory at all is small", 0, Spec{"small", 0.25}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(gibs(tc.memTotal))
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(0, 1e-6)); diff != "" {
				t.Errorf("Classify(%v GiB) (-want +got):\n%s", tc.memTotal, diff)
			}
			if got := nominal(gibs(tc.memTotal)); got != tc.nominal {
				t.Errorf("nominal(%v GiB) = %v GiB, want %v", tc.memTotal, float64(got)/gib, float64(tc.nominal)/gib)
			}
		})
	}
}

func TestClassifyOneByteAcrossEachBoundary(t *testing.T) {
	for _, tc := range []struct {
		name     string
		memTotal uint64
		want     string
	}{
		{"one byte under 90% of 8 GiB is small, as itself", 8*gib - 8*gib/10 - 1, "small"},
		{"one byte over 8 GiB is medium", 8*gib + 1, "medium"},
		{"one byte under 90% of 16 GiB is medium", 16*gib - 16*gib/10 - 1, "medium"},
		{"90% of 16 GiB, rounded up to a byte, is large", 16*gib - 16*gib/10, "large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.memTotal).Name; got != tc.want {
				t.Errorf("Classify(%d) = %s, want %s", tc.memTotal, got, tc.want)
			}
		})
	}
}

// targetsCase is a call of Targets and what it returns.
type targetsCase struct {
	name      string
	spec      Spec
	overrides map[host.Resource]float64
	ceiling   float64
	want      map[host.Resource]float64
	wantErr   string
}

// checkTargets calls Targets for each case.
func checkTargets(t *testing.T, cases []targetsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Targets(tc.spec, tc.overrides, tc.ceiling)
			var gotErr string
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	medium := Classify(gibs(11.7))
	checkTargets(t, []targetsCase{
		{
			name:    "every resource takes the spec's target",
			spec:    medium,
			ceiling: 0.9,
			want:    map[host.Resource]float64{host.CPU: medium.Target, host.Memory: medium.Target, host.Disk: medium.Target},
		},
		{
			name:      "an override replaces its resource's target only",
			spec:      medium,
			overrides: map[host.Resource]float64{host.Disk: 0.5},
			ceiling:   0.9,
			want:      map[host.Resource]float64{host.CPU: medium.Target, host.Memory: medium.Target, host.Disk: 0.5},
		},
		{
			name:      "an override may be 0 or equal the ceiling",
			spec:      medium,
			overrides: map[host.Resource]float64{host.CPU: 0, host.Memory: 0.9},
			ceiling:   0.9,
			want:      map[host.Resource]float64{host.CPU: 0, host.Memory: 0.9, host.Disk: medium.Target},
		},
		{
			name:      "a default target above the ceiling is capped at it",
			spec:      Classify(32 * gib),
			overrides: map[host.Resource]float64{host.Disk: 0.1},
			ceiling:   0.3,
			want:      map[host.Resource]float64{host.CPU: 0.3, host.Memory: 0.3, host.Disk: 0.1},
		},
	})
}

func TestTargetsRejectsOverridesAndCeilingsOutOfBounds(t *testing.T) {
	medium := Classify(gibs(11.7))
	checkTargets(t, []targetsCase{
		{
			name:      "an override above the ceiling is an error naming both",
			spec:      medium,
			overrides: map[host.Resource]float64{host.Memory: 0.95},
			ceiling:   0.9,
			wantErr:   "--target.memory=0.95 is above --ceiling=0.90",
		},
		{
			name:      "an override just above the ceiling shows the digits that make it so",
			spec:      medium,
			overrides: map[host.Resource]float64{host.CPU: 0.901},
			ceiling:   0.9,
			wantErr:   "--target.cpu=0.901 is above --ceiling=0.90",
		},
		{
			name:      "of several bad overrides the first by name is reported",
			spec:      medium,
			overrides: map[host.Resource]float64{host.Memory: 0.95, host.CPU: 0.99, host.Disk: 0.97},
			ceiling:   0.9,
			wantErr:   "--target.cpu=0.99 is above --ceiling=0.90",
		},
		{
			name:      "an override above 1 is not a ratio",
			spec:      medium,
			overrides: map[host.Resource]float64{host.Disk: 40},
			ceiling:   1,
			wantErr:   "--target.disk=40.00 is not a ratio between 0 and 1",
		},
		{
			name:      "a negative override is not a ratio",
			spec:      medium,
			overrides: map[host.Resource]float64{host.Disk: -0.1},
			ceiling:   0.9,
			wantErr:   "--target.disk=-0.10 is not a ratio between 0 and 1",
		},
		{
			name:      "a NaN override is not a ratio",
			spec:      medium,
			overrides: map[host.Resource]float64{host.CPU: math.NaN()},
			ceiling:   0.9,
			wantErr:   "--target.cpu=NaN is not a ratio between 0 and 1",
		},
		{
			name:    "a ceiling above 1 is not a ratio",
			spec:    medium,
			ceiling: 1.5,
			wantErr: "--ceiling=1.50 is not a ratio between 0 and 1",
		},
		{
			name:      "an override of an unknown resource is an error",
			spec:      medium,
			overrides: map[host.Resource]float64{"gpu": 0.5},
			ceiling:   0.9,
			wantErr:   "--target.gpu: unknown resource",
		},
	})
}
