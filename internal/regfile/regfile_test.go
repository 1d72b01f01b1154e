package regfile

import (
	"path/filepath"
	"testing"
	"time"
)

// readCase is a path for ReadFile with a cap of 1024 bytes, and the error
// it must give: "" wants the file's content, "ok\n".
type readCase struct{ path, want string }

// testReadFile runs ReadFile on each case, each in a subtest named for the
// path's last element, and fails one that blocks.
func testReadFile(t *testing.T, cases []readCase) {
	for _, tc := range cases {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, err = ReadFile(tc.path, 1024)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile still blocks after 5 s")
			}
			switch {
			case tc.want == "" && (err != nil || string(data) != "ok\n"):
				t.Errorf("ReadFile = %q, %v; want \"ok\\n\"", data, err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("ReadFile = %d bytes, %v; want %q", len(data), err, tc.want)
			}
		})
	}
}
