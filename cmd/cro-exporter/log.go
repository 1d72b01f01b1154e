package main

import (
	"io"
	"log/slog"

	"github.com/lmittmann/tint"
)

// newLogger logs at level through handler, or, nil, to w in format "json"
// or "text"; text is coloured only when w is a terminal, so journald and
// files get plain lines.
func newLogger(w io.Writer, level, format string, handler func(slog.Level) slog.Handler) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // kong's enum already checked it
	if handler != nil {
		return slog.New(handler(l))
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: l, NoColor: !isTerminal(w)}))
}
