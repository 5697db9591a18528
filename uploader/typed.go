package uploader

import (
	"errors"
	"fmt"
	"strings"
)

// TypeOf returns the Type of a provider whose options are an O: NewOptions hands the config
// loader a *O holding defaults(), and New calls build with the filled-in value. It is the
// glue every provider's Type() would otherwise write out.
func TypeOf[O any](name, defaultEndpoint string, defaults func() O, build func(env Env, opts O) (Provider, error)) Type {
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

// OptionsError is what a provider's New returns for options its Validate refused: nil for
// no problems, else one error naming every key and what is wrong with it.
func OptionsError(provider string, errs []FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Key + ": " + e.Msg
	}
	return fmt.Errorf("%s: %s", provider, strings.Join(msgs, "; "))
}

// BaseURL returns the provider's endpoint, def when none is configured, checked to be an
// absolute http(s) URL and without a trailing slash, so that API paths are appended to it. It
// also checks that the environment has a Client.
func (e Env) BaseURL(provider, def string) (string, error) {
	if e.Client == nil {
		return "", fmt.Errorf("%s: no HTTP client", provider)
	}
	endpoint := e.Endpoint
	if endpoint == "" {
		endpoint = def
	}
	if endpoint == "" {
		return "", errors.New(provider + ": no endpoint configured")
	}
	if _, err := ParseEndpoint(endpoint); err != nil {
		return "", fmt.Errorf("%s: %w", provider, err)
	}
	return strings.TrimRight(endpoint, "/"), nil
}
