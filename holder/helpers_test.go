package holder

import (
	"testing"
	"time"
)

// durationsCase is a case of a table test of a predicate of two durations.
type durationsCase struct {
	name string
	a, b time.Duration
	want bool
}

// testDurations runs f, named fname in failures, on each case's durations.
func testDurations(t *testing.T, fname string, f func(a, b time.Duration) bool, cases []durationsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := f(tc.a, tc.b); got != tc.want {
				t.Errorf("%s(%v, %v) = %v, want %v", fname, tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// parseCase is a case of a table test of a parser: its input, and the value
// it reads, or an error when err.
type parseCase[T comparable] struct {
	name  string
	input string
	want  T
	err   bool
}
