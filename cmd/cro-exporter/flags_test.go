package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRatioSizeAndDurationParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		into interface{ UnmarshalText([]byte) error }
		want any // a value, or "error"
	}{
		{"0.4", new(Ratio), Ratio(0.4)},
		{"40%", new(Ratio), Ratio(0.4)},
		{"0", new(Ratio), Ratio(0)},
		{"100%", new(Ratio), Ratio(1)},
		{"150%", new(Ratio), "error"},
		{"-0.1", new(Ratio), "error"},
		{"NaN", new(Ratio), "error"},
		{"", new(Ratio), "error"},
		{"512MiB", new(Size), Size(512 << 20)},
		{"512MB", new(Size), Size(512 << 20)},
		{"1GiB", new(Size), Size(1 << 30)},
		{"1.5GB", new(Size), Size(3 << 29)},
		{"4096", new(Size), Size(4096)},
		{"-1GiB", new(Size), "error"},
		{"1 GiB", new(Size), "error"},
		{"1Gi", new(Size), "error"},
		{"lots", new(Size), "error"},
		{"15s", new(Duration), Duration(15 * time.Second)},
		{"30d", new(Duration), Duration(30 * 24 * time.Hour)},
		{"1h30m", new(Duration), Duration(90 * time.Minute)},
		{"0", new(Duration), "error"},
		{"-1d", new(Duration), "error"},
		{"15", new(Duration), "error"},
	} {
		err := tc.into.UnmarshalText([]byte(tc.in))
		if tc.want == "error" {
			if err == nil || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("%T %q: error %v, want one quoting the input", tc.into, tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%T %q: %v", tc.into, tc.in, err)
			continue
		}
		var got any
		switch v := tc.into.(type) {
		case *Ratio:
			got = *v
		case *Size:
			got = *v
		case *Duration:
			got = *v
		}
		if got != tc.want {
			t.Errorf("%T %q = %v, want %v", tc.into, tc.in, got, tc.want)
		}
	}
}

func TestSizeStringReadsLikeItsInput(t *testing.T) {
	for in, want := range map[Size]string{1 << 30: "1GiB", 512 << 20: "512MiB", 3 << 29: "1.50GiB", 8160437862: "7.60GiB", 100: "100B"} {
		if got := in.String(); got != want {
			t.Errorf("Size(%d) = %q, want %q", int64(in), got, want)
		}
	}
}

func TestUsageNamesEachResourceAndKeepsTheOthersIdle(t *testing.T) {
	var u Usage
	if err := u.UnmarshalText([]byte("cpu=0.3,disk=50%")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Usage{0.3, idleUsage[1], 0.5}, u); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"gpu=0.1", "cpu=2", "cpu", "cpu=0.1,,"} {
		if err := u.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseTrace(t *testing.T) {
	rows, err := parseTrace(strings.NewReader("seconds,cpu,memory,disk\n0,0.1,0.2,0.3\n\n# a comment\n3600, 10%, 0.25, 0.3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{0, Usage{0.1, 0.2, 0.3}}, {time.Hour, Usage{0.1, 0.25, 0.3}}}
	if diff := cmp.Diff(want, rows, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	at := real(rows)
	for elapsed, want := range map[time.Duration]float64{0: 0.2, 59 * time.Minute: 0.2, time.Hour: 0.25, 99 * time.Hour: 0.25} {
		if got := at(elapsed)[1]; got != want {
			t.Errorf("memory at %v = %v, want %v", elapsed, got, want)
		}
	}
	for name, tc := range map[string]struct{ in, want string }{
		"too few fields":         {"0,0.1,0.2\n", "line 1"},
		"a bad ratio":            {"0,0.1,0.2,0.3\n60,0.1,2,0.3\n", "line 2: memory"},
		"time going backwards":   {"0,0.1,0.2,0.3\n60,0.1,0.2,0.3\n30,0.1,0.2,0.3\n", "line 3"},
		"a bad time after a row": {"0,0.1,0.2,0.3\nsoon,0.1,0.2,0.3\n", "line 2"},
		"no rows":                {"seconds,cpu,memory,disk\n", "no rows"},
	} {
		if _, err := parseTrace(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", name, err, tc.want)
		}
	}
}
