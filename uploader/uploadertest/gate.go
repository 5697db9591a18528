package uploadertest

import (
	"context"
	"sync"
)

// Gate holds an emulator's requests while it is stalled: the Stall knob of the suite's
// Harness. The zero value is not stalled.
type Gate struct {
	mu     sync.Mutex
	closed chan struct{} // non-nil while stalled; closed to release the waiters
}

// Stall holds every request that waits on the gate until Stall(false).
func (g *Gate) Stall(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case on && g.closed == nil:
		g.closed = make(chan struct{})
	case !on && g.closed != nil:
		close(g.closed)
		g.closed = nil
	}
}

// Wait returns true once the gate is not stalled, false if ctx ends first (the client left).
func (g *Gate) Wait(ctx context.Context) bool {
	g.mu.Lock()
	c := g.closed
	g.mu.Unlock()
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	case <-ctx.Done():
		return false
	}
}
