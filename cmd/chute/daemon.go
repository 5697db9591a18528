package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
)

// serveDaemon runs d until ctx is done, as a service: it tells systemd when the daemon is
// ready, reloading and stopping, pings its watchdog, reloads the config on SIGHUP, and under
// the Windows service manager runs as a Windows service.
// ready is closed when the engine says it is ready (service.Options.Ready).
func serveDaemon(ctx context.Context, d *service.Daemon, cfg *configs.Config, log *slog.Logger, ready <-chan struct{}) error {
	hooks := hooksFrom(ctx)
	hooks.useLogger(log)
	run := func(ctx context.Context) error { return supervise(ctx, d, cfg, log, ready, hooks.reloadSignals()) }
	if underWindowsService() {
		return runWindowsService(ctx, log, run)
	}
	return run(ctx)
}

// supervise runs d and answers for it to the service manager until d.Run returns.
func supervise(ctx context.Context, d *service.Daemon, cfg *configs.Config, log *slog.Logger, ready <-chan struct{}, reloads <-chan os.Signal) error {
	n := newNotifier(log)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	var watchdog <-chan time.Time
	if every := n.watchdogEvery(); every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		watchdog = t.C
	}
	isReady, pending := false, false
	doReload := func() {
		n.reloading()
		if c := reload(ctx, d, cfg.Source, log); c != nil {
			cfg = c
		}
		n.ready(status(cfg))
	}
	for {
		select {
		case err := <-done:
			n.stopping()
			return err
		case <-ctx.Done():
			n.stopping()
			return <-done
		case <-ready:
			ready, isReady = nil, true
			n.ready(status(cfg))
			if pending {
				pending = false
				doReload()
			}
		case <-reloads:
			if !isReady {
				// A reload during the start waits for it: the engine reloads a running daemon.
				pending = true
				continue
			}
			doReload()
		case <-watchdog:
			n.watchdog()
		}
	}
}

func status(cfg *configs.Config) string {
	return fmt.Sprintf("watching %d folder(s)", len(cfg.Folders))
}

// readySignal turns the engine's Ready callback into a channel closed once.
type readySignal struct {
	once sync.Once
	ch   chan struct{}
}

func newReadySignal() *readySignal { return &readySignal{ch: make(chan struct{})} }

func (r *readySignal) fire() { r.once.Do(func() { close(r.ch) }) }
