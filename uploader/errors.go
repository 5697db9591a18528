package uploader

import (
	"errors"
	"fmt"
	"time"
)

// Class says what the engine does with a failed upload.
type Class int

const (
	// Transient errors (network faults, 5xx) are retried with exponential backoff.
	Transient Class = iota
	// Permanent errors (bad credentials, rejected input, file too large) end the job: a failed
	// sidecar is written with the error's message.
	Permanent
	// RetryAfter errors (429, Retry-After) are retried once the given time has passed. The
	// wait is not a failed attempt: it does not use up max_attempts.
	RetryAfter
	// RateLimited errors say the whole account is rate-limited (UploadGig's code "-3",
	// RedGIFs' 429 with error.delay): the engine pauses every job of the provider until the
	// given time has passed, and the wait is not a failed attempt.
	RateLimited
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case RetryAfter:
		return "retry-after"
	case RateLimited:
		return "rate-limited"
	default:
		return "transient"
	}
}

// Error is an error with a class. Providers wrap their errors in one; an unwrapped error is
// transient, unless it is a context error.
type Error struct {
	Class Class
	// After is how long to wait before the next attempt, for RetryAfter (0: the engine's backoff).
	After time.Duration
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// PermanentError marks err as permanent: retrying cannot help, the user must act.
func PermanentError(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: Permanent, Err: err}
}

// Permanentf is PermanentError(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return PermanentError(fmt.Errorf(format, args...))
}

// TransientError marks err as transient, overriding a class it may carry.
func TransientError(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: Transient, Err: err}
}

// RetryAfterError asks for a retry once after has passed.
func RetryAfterError(after time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: RetryAfter, After: after, Err: err}
}

// RateLimitError says the provider's account is rate-limited: every job of the provider waits
// until after has passed (0: the engine's backoff).
func RateLimitError(after time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: RateLimited, After: after, Err: err}
}

// Classify returns the class of err and, for RetryAfter and RateLimited, the wait it asks for. An error with no
// class is transient.
func Classify(err error) (Class, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Class, e.After
	}
	return Transient, 0
}

// IsPermanent reports whether err is classed permanent.
func IsPermanent(err error) bool {
	c, _ := Classify(err)
	return c == Permanent
}
