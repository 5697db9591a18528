package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
)

// serveDaemon runs d until ctx is done, as a service: it tells systemd when the daemon is
// ready, reloading and stopping, pings its watchdog, reloads the config on SIGHUP, and under
// the Windows service manager runs as a Windows service.
func serveDaemon(ctx context.Context, d *service.Daemon, cfg *configs.Config, log *slog.Logger) error {
	hooks := hooksFrom(ctx)
	hooks.useLogger(log)
	run := func(ctx context.Context) error { return supervise(ctx, d, cfg, log, hooks.reloadSignals()) }
	if underWindowsService() {
		return runWindowsService(ctx, log, run)
	}
	return run(ctx)
}

// supervise runs d and answers for it to the service manager until d.Run returns.
func supervise(ctx context.Context, d *service.Daemon, cfg *configs.Config, log *slog.Logger, reloads <-chan os.Signal) error {
	n := newNotifier(log)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	// lead: switch to Options.Ready. Until the engine calls back once the watches exist and
	// the database is open, ready is when its control socket answers, which it opens after
	// the database and the watcher, just before the watches are added.
	ready := listening(runCtx, service.ControlSocket(cfg.State))

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

// listening returns a channel closed once a Unix socket at path accepts a connection (a
// stale socket file refuses it), or never if ctx ends first.
func listening(ctx context.Context, path string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var dl net.Dialer
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := dl.DialContext(dctx, "unix", path)
			cancel()
			if err == nil {
				c.Close()
				close(ch)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ch
}
