package winservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// event is one call to a fakeLog.
type event struct {
	kind string // Info, Warning or Error
	eid  uint32
	msg  string
}

// fakeLog records what it is asked to write, and fails with err.
type fakeLog struct {
	mu     sync.Mutex
	events []event
	err    error
}

func (l *fakeLog) add(kind string, eid uint32, msg string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, event{kind, eid, msg})
	return l.err
}

func (l *fakeLog) Info(eid uint32, msg string) error    { return l.add("Info", eid, msg) }
func (l *fakeLog) Warning(eid uint32, msg string) error { return l.add("Warning", eid, msg) }
func (l *fakeLog) Error(eid uint32, msg string) error   { return l.add("Error", eid, msg) }

func TestHandlerLevels(t *testing.T) {
	for _, tc := range []struct {
		min, level slog.Level
		want       string // "" for no event
	}{
		{slog.LevelDebug, slog.LevelDebug, "Info"},
		{slog.LevelInfo, slog.LevelDebug, ""},
		{slog.LevelInfo, slog.LevelInfo, "Info"},
		{slog.LevelInfo, slog.LevelInfo + 2, "Info"},
		{slog.LevelInfo, slog.LevelWarn, "Warning"},
		{slog.LevelError, slog.LevelWarn, ""},
		{slog.LevelInfo, slog.LevelError, "Error"},
		{slog.LevelInfo, slog.LevelError + 4, "Error"},
	} {
		var l fakeLog
		slog.New(NewHandler(&l, tc.min)).Log(context.Background(), tc.level, "m")
		var want []event
		if tc.want != "" {
			want = []event{{tc.want, eventID, "m"}}
		}
		if fmt.Sprint(l.events) != fmt.Sprint(want) {
			t.Errorf("%v at minimum %v: %v, want %v", tc.level, tc.min, l.events, want)
		}
	}
}

func TestHandlerText(t *testing.T) {
	for _, tc := range []struct {
		log  func(*slog.Logger)
		want string
	}{
		{func(l *slog.Logger) { l.Info("starting") }, "starting"},
		{func(l *slog.Logger) {
			l.Info("starting", "version", "1.0", "dry_run", false, "memory_total", int64(1<<30))
		}, "starting version=1.0 dry_run=false memory_total=1073741824"},
		{func(l *slog.Logger) { l.Error("exiting", "err", errors.New(`open C:\x: "denied"`)) },
			`exiting err="open C:\\x: \"denied\""`},
		{func(l *slog.Logger) { l.With("spec", "small").WithGroup("holder").Warn("gone", "pid", 7) },
			"gone spec=small holder.pid=7"},
		// The caller's keys named as the built-ins are kept; an empty
		// message has no leading space either.
		{func(l *slog.Logger) { l.Info("", "level", "high", "msg", "x", "time", "now") },
			"level=high msg=x time=now"},
		{func(l *slog.Logger) { l.Info("a b", "k", "") }, `a b k=""`},
	} {
		var l fakeLog
		tc.log(slog.New(NewHandler(&l, slog.LevelInfo)))
		if len(l.events) != 1 || l.events[0].msg != tc.want {
			t.Errorf("events %+v, want one with %q", l.events, tc.want)
		}
	}
}

// TestHandlerLevelUnderLoad: records logged at once from many goroutines,
// through handlers derived from one, each go to the event log at their
// own level, with their own text.
func TestHandlerLevelUnderLoad(t *testing.T) {
	var l fakeLog
	logger := slog.New(NewHandler(&l, slog.LevelInfo))
	kinds := map[slog.Level]string{slog.LevelInfo: "Info", slog.LevelWarn: "Warning", slog.LevelError: "Error"}
	byName := map[string]string{"INFO": "Info", "WARN": "Warning", "ERROR": "Error"}
	var wg sync.WaitGroup
	for level := range kinds {
		for g := range 4 {
			wg.Go(func() {
				logger := logger.With("g", g)
				for range 200 {
					logger.Log(context.Background(), level, level.String())
				}
			})
		}
	}
	wg.Wait()
	if len(l.events) != 3*4*200 {
		t.Fatalf("%d events, want %d", len(l.events), 3*4*200)
	}
	for _, e := range l.events {
		level, g, _ := strings.Cut(e.msg, " g=")
		if n, err := strconv.Atoi(g); err != nil || n < 0 || n > 3 || byName[level] != e.kind {
			t.Fatalf("event %+v: a record at one level written at another, or mangled", e)
		}
	}
}

func TestHandlerWriteError(t *testing.T) {
	l := fakeLog{err: errors.New("log full")}
	h := NewHandler(&l, slog.LevelInfo)
	if err := h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "m", 0)); !errors.Is(err, l.err) {
		t.Errorf("Handle: %v, want %v", err, l.err)
	}
}

// A service's usage error, written as to stderr, is one Error event of the
// line, without its newline.
func TestErrorWriter(t *testing.T) {
	var l fakeLog
	line := "cro-exporter: error: --interval=0s: must be positive\n"
	if n, err := fmt.Fprint(ErrorWriter(&l), line); err != nil || n != len(line) {
		t.Fatalf("Write: %d, %v; want %d, nil", n, err, len(line))
	}
	want := []event{{kind: "Error", eid: eventID, msg: strings.TrimSuffix(line, "\n")}}
	if !slices.Equal(l.events, want) {
		t.Errorf("events %+v, want %+v", l.events, want)
	}
}
