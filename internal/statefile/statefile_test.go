package statefile

import (
	"strings"
	"testing"
)

func TestDecodeIsStrict(t *testing.T) {
	type file struct {
		Version int `json:"version"`
		Value   int `json:"value"`
	}
	var f file
	if err := Decode([]byte(`{"version":1,"value":7}`), 1, &f); err != nil || f.Value != 7 {
		t.Errorf("a good file: %+v, %v", f, err)
	}
	for in, want := range map[string]string{
		`{"version":2,"value":7}`: "version 2, want 1",
		`{"version":1,"valeu":7}`: "valeu",
		`{"version":1,`:           "parsing JSON",
	} {
		if err := Decode([]byte(in), 1, &file{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %q", in, err, want)
		}
	}
}
