package uploader

import (
	"context"
	"errors"
	"time"

	"golang.org/x/time/rate"
)

// ErrMaxWait is what Poller.Until returns when MaxWait has passed before the check was done.
var ErrMaxWait = errors.New("gave up waiting: the maximum wait has passed")

// Poller asks a remote status again and again until it is final: every job's one poll loop.
// The zero value polls every second, without end but the context's.
type Poller struct {
	// Floor is the least time between the starts of two checks (default 1s): never undercut,
	// whatever the limiter or the backoff say.
	Floor time.Duration
	// Cap is the longest pause the backoff grows to (default Floor: a fixed interval).
	Cap time.Duration
	// Factor multiplies the pause after every check that was not done (default 1.5 when
	// Cap > Floor).
	Factor float64
	// MaxWait bounds the whole wait, counted from Until's since (0: no bound).
	MaxWait time.Duration
	// Limiter, when set, is waited on before each check: one shared by every job of a
	// provider keeps their polls together under the API's rate.
	Limiter *rate.Limiter
	// Now is the clock (default time.Now), for tests of MaxWait.
	Now func() time.Time
}

// Until calls check until it reports done or fails, pausing between calls as p says, and
// returns check's error, ctx's, or ErrMaxWait once MaxWait has passed since since (the zero
// time: since now). A provider that resumes a wait passes the time the wait first began, kept
// in its checkpoint, so that a restart does not start MaxWait again.
func (p Poller) Until(ctx context.Context, since time.Time, check func(ctx context.Context) (done bool, err error)) error {
	now := p.Now
	if now == nil {
		now = time.Now
	}
	floor := p.Floor
	if floor <= 0 {
		floor = time.Second
	}
	limit := max(p.Cap, floor)
	factor := p.Factor
	if factor <= 1 {
		factor = 1.5
	}
	if since.IsZero() {
		since = now()
	}
	pause := floor
	var last time.Time // when the previous check started (by the monotonic clock)
	for {
		if !last.IsZero() {
			wait := pause
			if p.MaxWait > 0 {
				// One last check at the deadline rather than a sleep past it.
				if left := p.MaxWait - now().Sub(since); left < wait {
					wait = max(left, floor)
				}
			}
			if err := Sleep(ctx, wait-time.Since(last)); err != nil {
				return err
			}
			pause = max(floor, min(time.Duration(float64(pause)*factor), limit))
		}
		if p.Limiter != nil {
			if err := p.Limiter.Wait(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return TransientError(err)
			}
		}
		last = time.Now()
		done, err := check(ctx)
		if err != nil || done {
			return err
		}
		if p.MaxWait > 0 && now().Sub(since) >= p.MaxWait {
			return ErrMaxWait
		}
	}
}

// Sleep waits d (nothing when d <= 0) or until ctx ends, and returns ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
