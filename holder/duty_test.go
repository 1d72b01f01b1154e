package holder

import (
	"strings"
	"testing"
)

func TestParseCPUCommand(t *testing.T) {
	tests := []struct {
		name string
		line string
		want cpuCommand
		err  bool
	}{
		{"stop stops", "stop", cpuCommand{stop: true}, false},
		{"a duty is read", "duty 0.3", cpuCommand{duty: 0.3}, false},
		{"duty 0 is read", "duty 0", cpuCommand{duty: 0}, false},
		{"duty 1 is read", "duty 1", cpuCommand{duty: 1}, false},
		{"a duty with a trailing dot is read", "duty 1.", cpuCommand{duty: 1}, false},
		{"a duty with a leading dot is read", "duty .25", cpuCommand{duty: 0.25}, false},
		{"spaces between the words are allowed", "duty   0.5", cpuCommand{duty: 0.5}, false},
		{"a duty above 1 is refused", "duty 2", cpuCommand{}, true},
		{"a duty just above 1 is refused", "duty 1.0000001", cpuCommand{}, true},
		{"a negative duty is refused", "duty -0.1", cpuCommand{}, true},
		{"a signed duty is refused", "duty +0.1", cpuCommand{}, true},
		{"a percentage is refused", "duty 30%", cpuCommand{}, true},
		{"an exponent is refused", "duty 1e-1", cpuCommand{}, true},
		{"NaN is refused", "duty NaN", cpuCommand{}, true},
		{"infinity is refused", "duty Inf", cpuCommand{}, true},
		{"a hexadecimal float is refused", "duty 0x1p-2", cpuCommand{}, true},
		{"a word is refused", "duty x", cpuCommand{}, true},
		{"a lone dot is refused", "duty .", cpuCommand{}, true},
		{"two dots are refused", "duty 0.1.2", cpuCommand{}, true},
		{"a missing duty is refused", "duty", cpuCommand{}, true},
		{"two duties are refused", "duty 0.1 0.2", cpuCommand{}, true},
		{"an unknown command is refused", "jump", cpuCommand{}, true},
		{"the empty line is refused", "", cpuCommand{}, true},
		{"commands are case sensitive", "DUTY 0.5", cpuCommand{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUCommand(tt.line)
			if tt.err {
				if err == nil {
					t.Fatalf("parseCPUCommand(%q) = %+v, want an error", tt.line, got)
				}
				if !strings.Contains(err.Error(), `"`+tt.line+`"`) {
					t.Errorf("parseCPUCommand(%q) = %q, want the line named", tt.line, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseCPUCommand(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
			}
		})
	}
}

func TestFormatDutyIsReadBack(t *testing.T) {
	for _, d := range []float64{0, 0.3, 1, 0.125, 1e-9, 0.1 + 0.2} {
		got, err := parseDuty(formatDuty(d))
		if err != nil || got != d {
			t.Errorf("parseDuty(formatDuty(%v) = %q) = %v, %v", d, formatDuty(d), got, err)
		}
	}
}

func TestTheBurnerAnswersADutyLineWithItself(t *testing.T) {
	for _, d := range []float64{0, 0.25, 1, 0.1 + 0.2} {
		cmd, err := parseCPUCommand(dutyLine(d))
		if err != nil || cmd.duty != d {
			t.Errorf("parseCPUCommand(%q) = %+v, %v; want duty %v", dutyLine(d), cmd, err, d)
		}
	}
}
