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
// journald turns into the entry's priority and strips. Under the Windows service manager,
// which has no stderr, they go to the Windows event log.
func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	if underWindowsService() {
		if l, err := eventLogger(cfg.Log.Level, cfg.Log.Format); err == nil {
			return l
		}
	}
	journald := false
	if f, ok := w.(*os.File); ok && f == os.Stderr {
		journald, _ = journal.StderrIsJournalStream()
	}
	return buildLogger(cfg.Log.Level, cfg.Log.Format, journald, w)
}

// handlerOptions are slog's options for a level name; noTime drops slog's timestamp where
// the log's sink (the journal, the event log) has its own.
func handlerOptions(level string, noTime bool) *slog.HandlerOptions {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by configs
	opts := &slog.HandlerOptions{Level: lv}
	if noTime {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return opts
}

// buildLogger is newLogger with the journal decided by the caller.
func buildLogger(level, format string, journald bool, w io.Writer) *slog.Logger {
	opts := handlerOptions(level, journald)
	if !journald {
		return slog.New(newHandler(format, w, opts))
	}
	return slog.New(newLineHandler(format, opts, func(l slog.Level, line []byte) error {
		// One Write: the prefix and the line reach the journal's stream together.
		b := make([]byte, 0, 3+len(line))
		b = append(append(b, priority(l)...), line...)
		_, err := w.Write(b)
		return err
	}))
}

func newHandler(format string, w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// lineHandler formats records with slog's text or JSON handler and hands each line, with
// its record's level, to a sink. slog's handlers write a record in one Write call, so the
// level of the record being written is set on the shared writer under its lock.
type lineHandler struct {
	inner slog.Handler
	lw    *lineWriter
}

type lineWriter struct {
	mu    sync.Mutex
	level slog.Level
	sink  func(slog.Level, []byte) error
}

func newLineHandler(format string, opts *slog.HandlerOptions, sink func(slog.Level, []byte) error) *lineHandler {
	lw := &lineWriter{sink: sink}
	return &lineHandler{inner: newHandler(format, lw, opts), lw: lw}
}

func (w *lineWriter) Write(b []byte) (int, error) {
	if err := w.sink(w.level, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (h *lineHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *lineHandler) Handle(ctx context.Context, r slog.Record) error {
	h.lw.mu.Lock()
	defer h.lw.mu.Unlock()
	h.lw.level = r.Level
	return h.inner.Handle(ctx, r)
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{inner: h.inner.WithAttrs(as), lw: h.lw}
}

func (h *lineHandler) WithGroup(name string) slog.Handler {
	return &lineHandler{inner: h.inner.WithGroup(name), lw: h.lw}
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
