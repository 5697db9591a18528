package service

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// outageAfter is how many transient failures in a row, across a provider's jobs, make it
// "down": then its queued files wait, unharmed, while one probe at a time tests it.
const outageAfter = 3

// gate holds back every worker of one provider while the provider is paused: rate-limited
// (the account was told to wait) or down (unreachable, or failing every request). It is the
// one mechanism for both. A wait behind the gate is never an attempt of the job.
type gate struct {
	log   *slog.Logger // the provider's
	mu    sync.Mutex
	until time.Time
	kind  string // "rate-limited" or "unreachable" while paused
	why   string
	wake  chan struct{} // closed when the pause changes

	// Outage tracking: consecutive transient failures and the jobs they came from.
	fails     int
	failJobs  map[uint64]bool
	connOnly  bool // every one of those failures was a connection error
	down      bool
	downSince time.Time
	probe     time.Duration // the wait before the next probe while down
	probing   bool          // a probe is running
	min, max  time.Duration
	// onPause, when set, is told each time the provider is paused anew, with the reason
	// ("rate_limited" or "unreachable"), for metrics; it is called with the gate's lock held.
	onPause func(reason string)
}

func newGate(min, max time.Duration, log *slog.Logger) *gate {
	return &gate{log: log, wake: make(chan struct{}), failJobs: make(map[uint64]bool), connOnly: true, min: min, max: max}
}

func (g *gate) changed() {
	close(g.wake)
	g.wake = make(chan struct{})
}

// wait returns once a worker may take a job, or ctx's error.
func (g *gate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		now := time.Now()
		blocked := now.Before(g.until) || (g.down && g.probing)
		wake := g.wake
		left := g.until.Sub(now)
		g.mu.Unlock()
		if !blocked {
			return nil
		}
		var timer <-chan time.Time
		if left > 0 {
			t := time.NewTimer(left)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer:
		}
	}
}

// enter lets a worker run a job unless the provider is paused; while it is down, only one
// job (the probe) runs at a time.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Now().Before(g.until) || (g.down && g.probing) {
		return false
	}
	if g.down {
		g.probing = true
	}
	return true
}

// leave ends a job entered with enter.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.probing {
		g.probing = false
		g.changed()
	}
}

// succeeded records an upload that worked: the provider is up.
func (g *gate) succeeded() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fails, g.connOnly = 0, true
	clear(g.failJobs)
	if g.down {
		g.log.Info("provider is back; its queued files go on", "down_for", time.Since(g.downSince).Round(time.Second).String())
		g.down, g.until, g.kind, g.why = false, time.Time{}, "", ""
		g.changed()
	}
}

// failed records a transient failure and reports whether the provider is down, in which
// case the job waits with it instead of using up an attempt. A provider is down after
// outageAfter failures in a row that came from two jobs or more (one file can be at fault,
// two cannot both be) or were all connection errors (nothing answered at all).
func (g *gate) failed(job uint64, connection bool, why string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if g.down {
		g.probe = min(g.probe*2, g.max)
		g.until, g.why = now.Add(g.probe), why
		if now.Sub(g.downSince) > 5*time.Minute {
			g.log.Warn("provider still unreachable; its files keep waiting", "down_for", now.Sub(g.downSince).Round(time.Second).String(), "next_probe_in", g.probe.Round(time.Second).String(), "err", why)
		}
		g.changed()
		return true
	}
	g.fails++
	g.failJobs[job] = true
	g.connOnly = g.connOnly && connection
	if g.fails < outageAfter || (len(g.failJobs) < 2 && !g.connOnly) {
		return false
	}
	g.down, g.downSince, g.probe = true, now, max(g.min, time.Second)
	g.until, g.kind, g.why = now.Add(g.probe), "unreachable", why
	if g.onPause != nil {
		g.onPause("unreachable")
	}
	g.log.Warn("provider is unreachable or failing every request; its files wait while chute probes it", "failures", g.fails, "err", why)
	g.changed()
	return true
}

// rateLimited pauses every job of the provider for wait.
func (g *gate) rateLimited(wait time.Duration, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	until := time.Now().Add(wait)
	if g.onPause != nil && !time.Now().Before(g.until) {
		g.onPause(reasonRateLimited) // a new pause, not one made longer
	}
	if until.After(g.until) {
		g.until = until
	}
	if !g.down {
		g.kind = "rate-limited"
	}
	g.why = why
	g.log.Warn("provider is rate-limited; every one of its jobs waits", "wait", wait.Round(time.Second).String(), "until", g.until.Format(time.TimeOnly), "err", why)
	g.changed()
}

// paused says whether, why and until when the provider is paused, for status.
func (g *gate) paused() (kind, why string, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return "unreachable", g.why, g.until
	}
	if time.Now().Before(g.until) {
		return g.kind, g.why, g.until
	}
	return "", "", time.Time{}
}
