package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	kservice "github.com/kardianos/service"
)

// windowsStopWait bounds the wait for a checkpointed stop under the Windows service
// manager, which allows a service 20 s (WaitToKillServiceTimeout's default) at shutdown.
const windowsStopWait = 15 * time.Second

// underWindowsService reports whether the Windows service manager started this process.
func underWindowsService() bool {
	return runtime.GOOS == "windows" && !kservice.Interactive()
}

// runWindowsService runs the daemon as the Windows service `chute install` created: the
// service manager's stop cancels the daemon's context, and Stop waits for the checkpointed
// stop (uploads in flight saved, they resume at the next start) up to windowsStopWait.
func runWindowsService(ctx context.Context, log *slog.Logger, run func(context.Context) error) error {
	prg := &windowsProgram{parent: ctx, run: run, log: log, stopWait: windowsStopWait, exit: os.Exit}
	m, err := newManager("windows", false, nil, prg)
	if err != nil {
		return err
	}
	return m.svc.Run()
}

// windowsProgram is the kardianos/service program of the Windows service.
type windowsProgram struct {
	parent context.Context
	run    func(context.Context) error
	log    *slog.Logger
	// stopWait bounds Stop's wait; exit ends the process when the daemon ends by itself.
	stopWait time.Duration
	exit     func(code int)

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

// Start starts the daemon and returns at once, as the service manager requires.
func (p *windowsProgram) Start(kservice.Service) error {
	ctx, cancel := context.WithCancel(p.parent)
	done := make(chan error, 1)
	p.mu.Lock()
	p.cancel, p.done = cancel, done
	p.mu.Unlock()
	go func() {
		err := p.run(ctx)
		done <- err
		if ctx.Err() == nil {
			// The daemon ended without being asked to (a bad state database, say): exit with
			// a failure so that the service manager sees it and its recovery action runs.
			p.log.Error("chute stopped on its own", "err", err)
			p.exit(1)
		}
	}()
	return nil
}

// Stop cancels the daemon and waits for its checkpointed stop.
func (p *windowsProgram) Stop(kservice.Service) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(p.stopWait):
		p.log.Warn("stop: uploads still stopping; the service manager ends chute now, they resume at the next start", "waited", p.stopWait)
		return nil
	}
}
