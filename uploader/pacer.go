package uploader

import "golang.org/x/time/rate"

// NewPacer returns a limiter that spaces a provider's API calls to its rate limit (perSecond,
// with bursts of burst). One is shared by every job of a provider; call Wait(ctx) before each
// API request.
func NewPacer(perSecond float64, burst int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}
