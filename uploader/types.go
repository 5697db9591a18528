package uploader

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// NewType returns the Type of a provider whose options struct is O: NewOptions hands the
// config loader a *O filled with defaults(), and New calls build with the filled-in value.
// It is the registry boilerplate every provider package would otherwise write again.
func NewType[O any](name, defaultEndpoint string, defaults func() O, build func(env Env, opts O) (Provider, error)) Type {
	return Type{
		Name:            name,
		DefaultEndpoint: defaultEndpoint,
		NewOptions: func() any {
			o := defaults()
			return &o
		},
		New: func(env Env, options any) (Provider, error) {
			o, ok := options.(*O)
			if !ok {
				var want *O
				return nil, fmt.Errorf("%s: options are %T, want %T", name, options, want)
			}
			return build(env, *o)
		},
	}
}

// OptionsError joins what an options struct's Validate found into one error for a
// provider's New ("gcore: wait: ...; priority: ..."), or returns nil when errs is empty.
// (The config loader reports the same problems one by one, with their lines.)
func OptionsError(provider string, errs []FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", provider, joinFieldErrors(errs))
}

// joinFieldErrors renders problems as "key: msg; key: msg".
func joinFieldErrors(errs []FieldError) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Key + ": " + e.Msg
	}
	return strings.Join(msgs, "; ")
}

// EndpointURL is the start of a provider's New: it checks that the environment has an HTTP
// client and returns the configured endpoint, or def when none is configured, parsed. def ""
// makes the endpoint required. Errors start with provider.
func (e Env) EndpointURL(provider, def string) (*url.URL, error) {
	if e.Client == nil {
		return nil, fmt.Errorf("%s: no HTTP client", provider)
	}
	raw := e.Endpoint
	if raw == "" {
		raw = def
	}
	if raw == "" {
		return nil, errors.New(provider + ": endpoint is required")
	}
	u, err := ParseEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", provider, err)
	}
	return u, nil
}

// OneLine checks a required one-line option (a login, a key, a password): it returns the
// problem of a missing value or of one holding a line break, or nil. A secret's message says
// that `<key>_file` also works, and never shows the value.
func OneLine(key, value string, secret bool) []FieldError {
	switch {
	case strings.TrimSpace(value) == "" && secret:
		return []FieldError{{Key: key, Msg: "required (or " + key + "_file)"}}
	case strings.TrimSpace(value) == "":
		return []FieldError{{Key: key, Msg: "required"}}
	case strings.ContainsAny(value, "\r\n\x00") && secret:
		return []FieldError{{Key: key, Msg: "must be one line (not shown: it is a secret)"}}
	case strings.ContainsAny(value, "\r\n\x00"):
		return []FieldError{{Key: key, Msg: "must be one line"}}
	}
	return nil
}

// NotNegative checks an option where 0 stands for a default or for "none" (a duration, a
// size): a negative v gets msg, or "must be positive" when msg is ""; otherwise nil.
func NotNegative[N ~int | ~int64](key string, v N, msg string) []FieldError {
	if v >= 0 {
		return nil
	}
	if msg == "" {
		msg = "must be positive"
	}
	return []FieldError{{Key: key, Msg: msg}}
}

// OneOf checks an option that takes one of a few words: "" (the default) or one of
// allowed, else the problem naming them.
func OneOf(key, value string, allowed ...string) []FieldError {
	if value == "" || slices.Contains(allowed, value) {
		return nil
	}
	return []FieldError{{Key: key, Msg: fmt.Sprintf("%q is not one of %s", value, strings.Join(allowed, ", "))}}
}

// CheckOptions returns the problems opts's Validate finds (when it has one) as one error
// listing them all, or nil: for a provider's New, which may be called without the config
// loader's checks.
func CheckOptions(opts any) error {
	v, ok := opts.(Validator)
	if !ok {
		return nil
	}
	if errs := v.Validate(); len(errs) > 0 {
		return errors.New(joinFieldErrors(errs))
	}
	return nil
}
