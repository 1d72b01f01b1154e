package holder

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCheckMemorySize(t *testing.T) {
	tests := []struct {
		name string
		size int64
		ok   bool
	}{
		{"one byte is held", 1, true},
		{"one page is held", 4096, true},
		{"the largest chunk is held", MaxChunk, true},
		{"zero is refused", 0, false},
		{"a negative size is refused", -1, false},
		{"one byte over the largest chunk is refused", MaxChunk + 1, false},
		{"2 GiB is refused", 2 << 30, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckMemorySize(tt.size)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckMemorySize(%d) = %v, want ok=%v", tt.size, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "1GiB") {
				t.Errorf("CheckMemorySize(%d) = %q, want the limit named", tt.size, err)
			}
		})
	}
}

func TestAwaitStop(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // "" for a clean stop
	}{
		{"stop ends the hold", "stop\n", ""},
		{"stop without a newline ends the hold", "stop", ""},
		{"stop with surrounding space ends the hold", "  stop \t\n", ""},
		{"the end of input ends the hold", "", ""},
		{"lines after stop are not read", "stop\ngarbage\n", ""},
		{"an unknown line is an error naming it", "jump\n", `"jump"`},
		{"an empty line is an error", "\nstop\n", `""`},
		{"stop with more words is an error", "stop now\n", `"stop now"`},
		{"stop is case sensitive", "STOP\n", `"STOP"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := awaitStop(strings.NewReader(tt.input))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("awaitStop(%q) = %v, want nil", tt.input, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("awaitStop(%q) = %v, want an error containing %s", tt.input, err, tt.wantErr)
			}
		})
	}
}

func TestReadCommandsReportsAReadError(t *testing.T) {
	broken := errors.New("pipe broke")
	err := awaitStop(iotest.ErrReader(broken))
	if !errors.Is(err, broken) {
		t.Fatalf("awaitStop(broken reader) = %v, want it to wrap %v", err, broken)
	}
}
