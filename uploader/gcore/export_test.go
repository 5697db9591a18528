package gcore

import (
	"time"

	"golang.org/x/time/rate"
)

// SetLimiter replaces p's API rate limiter, for tests.
func SetLimiter(p *Provider, l *rate.Limiter) { p.api.Pacer = l }

// SetClock replaces p's clock, for tests; call it before p is used.
func SetClock(p *Provider, now func() time.Time) { p.now = now }
