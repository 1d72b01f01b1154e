package holder

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFillNames(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		wantN      int
		wantOK     bool
	}{
		{name: "a six digit name is a fill file", file: "fill-000001", wantN: 1, wantOK: true},
		{name: "the highest number is a fill file", file: "fill-999999", wantN: 999999, wantOK: true},
		{name: "five digits are not a fill file", file: "fill-00001"},
		{name: "seven digits are not a fill file", file: "fill-0000001"},
		{name: "a temporary suffix is not a fill file", file: "fill-000001.tmp"},
		{name: "a sign is not a digit", file: "fill-+00001"},
		{name: "another prefix is not a fill file", file: "FILL-000001"},
		{name: "an empty name is not a fill file", file: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := parseFillName(tc.file)
			if diff := cmp.Diff([2]any{tc.wantN, tc.wantOK}, [2]any{n, ok}); diff != "" {
				t.Errorf("parseFillName(%q) (-want +got):\n%s", tc.file, diff)
			}
			if ok && fillName(n) != tc.file {
				t.Errorf("fillName(%d) = %q, want %q", n, fillName(n), tc.file)
			}
		})
	}
}

// fillMiB is a mebibyte, for test sizes.
const fillMiB = 1 << 20

func TestPlanFill(t *testing.T) {
	const mib = fillMiB
	files := func(sizes ...int64) []fillFile {
		var fs []fillFile
		for i, s := range sizes {
			fs = append(fs, fillFile{name: fillName(i + 1), num: i + 1, size: s, alloc: s})
		}
		return fs
	}
	for _, tc := range []struct {
		name     string
		files    []fillFile
		total    int64
		wantKeep []int64
		wantAdd  []int64
	}{
		{name: "nothing stays nothing", total: 0, wantKeep: []int64{}},
		{name: "growing from nothing adds full files and a partial last one", total: 5 * mib, wantKeep: []int64{}, wantAdd: []int64{2 * mib, 2 * mib, mib}},
		{name: "a total that is a whole number of files adds no empty file", files: files(2 * mib), total: 4 * mib, wantKeep: []int64{2 * mib}, wantAdd: []int64{2 * mib}},
		{name: "growing extends the partial last file before adding", files: files(2*mib, mib), total: 6 * mib, wantKeep: []int64{2 * mib, 2 * mib}, wantAdd: []int64{2 * mib}},
		{name: "shrinking removes the highest files and truncates the last one kept", files: files(2*mib, 2*mib, mib), total: 3 * mib, wantKeep: []int64{2 * mib, mib, 0}},
		{name: "shrinking to zero removes every file", files: files(2*mib, mib), total: 0, wantKeep: []int64{0, 0}},
		{name: "an unchanged total keeps every length", files: files(2*mib, mib), total: 3 * mib, wantKeep: []int64{2 * mib, mib}},
		{name: "a file longer than the limit is cut to it", files: files(1 << 30), total: 3 * mib, wantKeep: []int64{2 * mib}, wantAdd: []int64{mib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep, add := planFill(tc.files, tc.total, 2*mib)
			if diff := cmp.Diff(tc.wantKeep, keep); diff != "" {
				t.Errorf("keep (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAdd, add); diff != "" {
				t.Errorf("add (-want +got):\n%s", diff)
			}
		})
	}
}
