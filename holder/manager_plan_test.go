package holder

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMemoryChunks(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name         string
		total, chunk int64
		want         []int64
	}{
		{"nothing is no holder", 0, 32 * mib, nil},
		{"less than a chunk is one holder", 5 * mib, 32 * mib, []int64{5 * mib}},
		{"a whole chunk is one holder", 32 * mib, 32 * mib, []int64{32 * mib}},
		{"80 MiB in 32 MiB chunks is two full chunks and the rest", 80 * mib, 32 * mib, []int64{32 * mib, 32 * mib, 16 * mib}},
		{"3 GiB in 1 GiB chunks is three", 3 << 30, 1 << 30, []int64{1 << 30, 1 << 30, 1 << 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, memoryChunks(tc.total, tc.chunk)); diff != "" {
				t.Errorf("memoryChunks(%d, %d) (-want +got):\n%s", tc.total, tc.chunk, diff)
			}
		})
	}
}

func TestReconcileChunks(t *testing.T) {
	for _, tc := range []struct {
		name       string
		have, want []int64
		stop       []int
		start      []int64
	}{
		{"nothing to do", []int64{32, 32, 16}, []int64{32, 32, 16}, nil, nil},
		{"starts what is missing", []int64{32}, []int64{32, 32, 16}, nil, []int64{32, 16}},
		{"stops everything for zero", []int64{32, 32, 16}, nil, []int{2, 1, 0}, nil},
		{"replaces the remainder when it changes", []int64{32, 16}, []int64{32, 20}, []int{1}, []int64{20}},
		{"shrinking stops the newest full chunk and the remainder", []int64{32, 32, 16}, []int64{32, 8}, []int{2, 1}, []int64{8}},
		{"keeps the oldest of equal holders", []int64{16, 32, 16}, []int64{32, 16}, []int{2}, nil},
		{"growing past a chunk keeps the remainder's size when it reappears", []int64{32, 16}, []int64{32, 32, 16}, nil, []int64{32}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop, start := reconcileChunks(tc.have, tc.want)
			if diff := cmp.Diff(tc.stop, stop); diff != "" {
				t.Errorf("stop (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.start, start); diff != "" {
				t.Errorf("start (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDesiredCheckRejectsWhatIsNoLoad(t *testing.T) {
	for _, d := range []Load{
		{CPU: -0.1}, {CPU: 1.01}, {CPU: math.NaN()}, {CPU: math.Inf(1)},
		{Memory: -1}, {Disk: -1},
	} {
		if err := d.check(); err == nil {
			t.Errorf("%+v passed the check", d)
		}
	}
	for _, d := range []Load{{}, {CPU: 1, Memory: 1 << 40, Disk: 1 << 40}, {CPU: 0.001}} {
		if err := d.check(); err != nil {
			t.Errorf("%+v: %v", d, err)
		}
	}
}
