package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/chute-dev/chute/configs"
	"github.com/coreos/go-systemd/v22/journal"
)

// newLogger builds the daemon's logger from the config's log section. Under the journal
// (systemd connected stderr to it: JOURNAL_STREAM names stderr) lines carry no timestamp of
// chute's own, the journal has one, and start with their syslog priority, <3> to <7>, which
// journald turns into the entry's priority and strips.
func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	journald := false
	if f, ok := w.(*os.File); ok && f == os.Stderr {
		journald, _ = journal.StderrIsJournalStream()
	}
	return buildLogger(cfg.Log.Level, cfg.Log.Format, journald, w)
}

// buildLogger is newLogger with the journal decided by the caller.
func buildLogger(level, format string, journald bool, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by configs
	opts := &slog.HandlerOptions{Level: lv}
	if journald {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		pw := &priorityWriter{w: w}
		return slog.New(&journalHandler{inner: newHandler(format, pw, opts), pw: pw})
	}
	return slog.New(newHandler(format, w, opts))
}

func newHandler(format string, w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// journalHandler prefixes each line its inner handler writes with the record's priority
// (sd-daemon(3)). slog's handlers write a record in one Write call, so the prefix for the
// record being handled is set on the shared writer under its lock.
type journalHandler struct {
	inner slog.Handler
	pw    *priorityWriter
}

// priorityWriter writes each line with the priority prefix of the record being written.
type priorityWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	// One Write: the prefix and the line reach the journal's stream together.
	line := make([]byte, 0, len(p.prefix)+len(b))
	line = append(append(line, p.prefix...), b...)
	if _, err := p.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prefix = priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}

// priority maps a slog level to the sd-daemon prefix of the matching syslog priority.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>" // err
	case l >= slog.LevelWarn:
		return "<4>" // warning
	case l >= slog.LevelInfo:
		return "<6>" // info
	default:
		return "<7>" // debug
	}
}
