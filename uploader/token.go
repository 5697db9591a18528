package uploader

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Token is a credential a provider obtained: an OAuth2 access token, a session.
type Token struct {
	// Value is the credential itself (a secret).
	Value string
	// Expires is when it stops being valid; zero: it does not expire by time.
	Expires time.Time
}

// TokenSource holds one provider's credential, shared by all its concurrent uploads: it is
// fetched when first needed, renewed Margin before it expires, and renewed once when the
// server refuses it (Invalidate). Concurrent callers that find no valid token wait for one
// renewal instead of each making their own. Make one with NewTokenSource, one per Provider.
type TokenSource struct {
	fetch  func(ctx context.Context) (Token, error)
	margin time.Duration
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time

	mu      sync.Mutex
	tok     Token
	fetched time.Time // when tok was fetched
	have    bool
	renewal chan struct{} // non-nil while a fetch is in flight; closed when it ends
	err     error         // the last fetch's error, for those that waited on it
}

// NewTokenSource returns a TokenSource that gets tokens with fetch, renewing a token margin
// before its Expires. fetch runs with the context of the caller that needed the token.
func NewTokenSource(fetch func(ctx context.Context) (Token, error), margin time.Duration) *TokenSource {
	return &TokenSource{fetch: fetch, margin: margin}
}

func (s *TokenSource) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// valid tells whether the held token is good now; s.mu is held. A token that lives less
// than twice the margin is renewed half-way through its life instead, so that a short-lived
// token is not fetched again by every caller.
func (s *TokenSource) valid() bool {
	if !s.have {
		return false
	}
	if s.tok.Expires.IsZero() {
		return true
	}
	margin := min(s.margin, s.tok.Expires.Sub(s.fetched)/2)
	return s.now().Before(s.tok.Expires.Add(-margin))
}

// Token returns the held token, or gets a new one when there is none or it is about to
// expire. While one caller fetches, the others wait for its result (or for their ctx).
func (s *TokenSource) Token(ctx context.Context) (Token, error) {
	for {
		s.mu.Lock()
		if s.valid() {
			t := s.tok
			s.mu.Unlock()
			return t, nil
		}
		if wait := s.renewal; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return Token{}, ctx.Err()
			}
			s.mu.Lock()
			err := s.err
			ok := s.valid()
			s.mu.Unlock()
			if ok {
				continue
			}
			// The fetch this caller waited for failed. If it failed only because the
			// fetching caller went away, try again with this caller's own context.
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return Token{}, err
			}
			if ctx.Err() != nil {
				return Token{}, ctx.Err()
			}
			continue
		}
		done := make(chan struct{})
		s.renewal = done
		s.mu.Unlock()

		t, err := s.fetch(ctx)

		s.mu.Lock()
		s.renewal, s.err = nil, err
		if err == nil {
			s.tok, s.have, s.fetched = t, true, s.now()
		}
		s.mu.Unlock()
		close(done)
		if err != nil {
			return Token{}, err
		}
		return t, nil
	}
}

// Invalidate says the server refused old: the next Token fetches a new one. A token that was
// already replaced (another job saw the refusal first) is left alone, so that 20 jobs refused
// at once renew once.
func (s *TokenSource) Invalidate(old Token) {
	s.mu.Lock()
	if s.have && s.tok.Value == old.Value {
		s.have = false
	}
	s.mu.Unlock()
}

// Use calls fn with the token, and when refused(err) says the server refused it, invalidates
// it and calls fn once more with a renewed one. A second refusal is returned as it is.
func (s *TokenSource) Use(ctx context.Context, refused func(error) bool, fn func(ctx context.Context, t Token) error) error {
	t, err := s.Token(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx, t)
	if err == nil || !refused(err) {
		return err
	}
	s.Invalidate(t)
	if t, err = s.Token(ctx); err != nil {
		return err
	}
	return fn(ctx, t)
}
