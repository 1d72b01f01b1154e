package winservice

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"golang.org/x/sys/windows/svc/eventlog"
)

// Writer is the event log a handler of NewHandler writes to: *eventlog.Log, which
// OpenLog opens, is one.
type Writer interface {
	Info(eid uint32, msg string) error
	Warning(eid uint32, msg string) error
	Error(eid uint32, msg string) error
}

// eventID is every record's event ID. The source's messages are those of
// EventCreate.exe (the MSI registers it so), whose IDs 1 to 1000 each show
// their one insertion string as it is: the message is the whole text.
const eventID = 1

// OpenLog opens the event log of the source name for writing. It succeeds
// whether or not the source is registered; unregistered, its records are
// still written, with the "cannot be found" preamble.
func OpenLog(name string) (*eventlog.Log, error) {
	return eventlog.Open(name)
}

// NewHandler returns a handler that writes each record of level or above to
// w as one event: Error and above as an Error, Warn as a Warning, Info and
// Debug as Information. Its text is the message, then the attributes as
// key=value, quoted where needed, as slog's TextHandler writes them; the
// event log records the time and the level itself.
func NewHandler(w Writer, level slog.Leveler) slog.Handler {
	out := &sink{w: w}
	text := slog.NewTextHandler(out, &slog.HandlerOptions{Level: level, ReplaceAttr: dropBuiltins})
	return &eventHandler{text: text, out: out}
}

// eventHandler renders records with a TextHandler into out, which sends each to
// the event log at its level.
type eventHandler struct {
	text slog.Handler
	out  *sink
}

func (h *eventHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.text.Enabled(ctx, level)
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	// The TextHandler writes a record in one Write, within Handle: out
	// learns its level and message under the lock, and the text rendered
	// is the attributes alone (dropBuiltins).
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.level, h.out.msg = r.Level, r.Message
	attrs := slog.NewRecord(r.Time, r.Level, "", r.PC)
	r.Attrs(func(a slog.Attr) bool {
		attrs.AddAttrs(a)
		return true
	})
	return h.text.Handle(ctx, attrs)
}

func (h *eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &eventHandler{text: h.text.WithAttrs(as), out: h.out}
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	return &eventHandler{text: h.text.WithGroup(name), out: h.out}
}

// dropBuiltins drops the time, the level and the (empty) message the
// TextHandler writes first. A caller's attribute keyed time, level or msg is
// kept unless it is of the same kind: a time, a slog.Level, an empty string.
func dropBuiltins(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if a.Value.Kind() == slog.KindTime {
			return slog.Attr{}
		}
	case slog.LevelKey:
		if _, ok := a.Value.Any().(slog.Level); ok {
			return slog.Attr{}
		}
	case slog.MessageKey:
		if a.Value.Kind() == slog.KindString && a.Value.String() == "" {
			return slog.Attr{}
		}
	}
	return a
}

// sink is where the TextHandlers of a handler and of those derived from it
// write: each Write is one record's attributes.
type sink struct {
	mu    sync.Mutex
	w     Writer
	level slog.Level // the record's being written, under mu
	msg   string     // its message, under mu
}

func (s *sink) Write(p []byte) (int, error) {
	text := s.msg
	if attrs := strings.TrimSuffix(string(p), "\n"); attrs != "" {
		if text != "" {
			text += " "
		}
		text += attrs
	}
	var err error
	switch {
	case s.level >= slog.LevelError:
		err = s.w.Error(eventID, text)
	case s.level >= slog.LevelWarn:
		err = s.w.Warning(eventID, text)
	default:
		err = s.w.Info(eventID, text)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// ErrorWriter is an io.Writer whose every write is one Error event of w:
// for what a service would write to stderr, which it has not.
func ErrorWriter(w Writer) io.Writer { return errorWriter{w} }

type errorWriter struct{ w Writer }

func (e errorWriter) Write(p []byte) (int, error) {
	if err := e.w.Error(eventID, strings.TrimSpace(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
