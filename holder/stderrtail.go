package holder

import (
	"log/slog"
	"strings"
	"sync"
)

// stderrTail logs a holder's stderr line by line and keeps its end for
// error messages.
type stderrTail struct {
	logger *slog.Logger
	kind   Kind
	mu     sync.Mutex
	pid    int
	line   []byte // the unfinished line
	tail   []byte // the end of what was written
}

const stderrTailSize = 1024

func (t *stderrTail) setPid(pid int) {
	t.mu.Lock()
	t.pid = pid
	t.mu.Unlock()
}

// Write logs every complete line of b as a warning.
func (t *stderrTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tail = append(t.tail, b...)
	if len(t.tail) > stderrTailSize {
		t.tail = t.tail[len(t.tail)-stderrTailSize:]
	}
	t.line = append(t.line, b...)
	for {
		i := strings.IndexByte(string(t.line), '\n')
		if i < 0 {
			break
		}
		t.logger.Warn("Holder said on stderr", "kind", t.kind, "pid", t.pid, "line", string(t.line[:i]))
		t.line = t.line[i+1:]
	}
	if len(t.line) > stderrTailSize {
		t.line = t.line[len(t.line)-stderrTailSize:]
	}
	return len(b), nil
}

// suffix is ": stderr: <tail>" for an error message, or "" when the holder
// wrote nothing on stderr.
func (t *stderrTail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.tail))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}
