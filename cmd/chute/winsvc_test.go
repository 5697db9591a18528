package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// The Windows service's Stop cancels the daemon and waits for its checkpointed stop, but no
// longer than the service manager allows; a daemon that ends by itself exits with a failure.
// (The program is plain Go: tested here on every platform, the service manager aside.)
func TestWindowsProgram(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var stopped atomic.Bool
	p := &windowsProgram{parent: context.Background(), log: log, stopWait: 5 * time.Second, exit: func(int) { t.Error("exit on a requested stop") },
		run: func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(100 * time.Millisecond) // the checkpointed stop
			stopped.Store(true)
			return nil
		}}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err != nil || !stopped.Load() {
		t.Fatalf("Stop returned (%v) before the daemon had stopped (%v)", err, stopped.Load())
	}

	stuck := make(chan struct{})
	defer close(stuck)
	p = &windowsProgram{parent: context.Background(), log: log, stopWait: 200 * time.Millisecond, exit: func(int) {},
		run: func(ctx context.Context) error { <-stuck; return nil }}
	p.Start(nil)
	start := time.Now()
	p.Stop(nil)
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("Stop waited %v for a daemon that does not stop, bound 200ms", waited)
	}

	exited := make(chan int, 1)
	p = &windowsProgram{parent: context.Background(), log: log, stopWait: time.Second, exit: func(c int) { exited <- c },
		run: func(ctx context.Context) error { return errors.New("state database in use") }}
	p.Start(nil)
	select {
	case c := <-exited:
		if c != 1 {
			t.Errorf("exit status %d, want 1", c)
		}
	case <-time.After(5 * time.Second):
		t.Error("a daemon that failed on its own did not end the service")
	}
}
