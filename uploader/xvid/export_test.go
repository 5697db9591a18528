package xvid

import "time"

// SetClock makes p and its token source read the time from now.
func SetClock(p *Provider, now func() time.Time) {
	p.now = now
	p.tokens.Now = now
}
