package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// processHooks is what main hands down to the daemon it runs: the SIGHUP channel (main
// catches SIGHUP from its first instruction, so that it never kills chute), and a place for
// the daemon's logger, so that main's own lines ("stopping", the exit error) come out in the
// log's format: JSON in JSON mode, with priorities under the journal.
type processHooks struct {
	reloads <-chan os.Signal
	stderr  io.Writer

	mu  sync.Mutex
	log *slog.Logger
}

type hooksKey struct{}

func withHooks(ctx context.Context, h *processHooks) context.Context {
	return context.WithValue(ctx, hooksKey{}, h)
}

// hooksFrom returns main's hooks, or nil when run was called without them (tests).
func hooksFrom(ctx context.Context) *processHooks {
	h, _ := ctx.Value(hooksKey{}).(*processHooks)
	return h
}

// reloadSignals is the SIGHUP channel; nil (never ready) without hooks.
func (h *processHooks) reloadSignals() <-chan os.Signal {
	if h == nil {
		return nil
	}
	return h.reloads
}

// useLogger makes main's lines go through the daemon's logger.
func (h *processHooks) useLogger(l *slog.Logger) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.log = l
	h.mu.Unlock()
}

// say writes one of main's lines: through the daemon's logger once there is one, else as
// plain "chute: ..." text on stderr.
func (h *processHooks) say(level slog.Level, msg string) {
	h.mu.Lock()
	l := h.log
	h.mu.Unlock()
	if l != nil {
		l.Log(context.Background(), level, msg)
		return
	}
	fmt.Fprintln(h.stderr, "chute:", msg)
}
