package uploader

import (
	"fmt"
	"strings"
)

// NewType returns the Type of a provider whose options are an O: its NewOptions returns a *O
// holding defaults(), and its New hands build the options the config filled in. It states
// once what every provider's Type would otherwise repeat.
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

// CheckOptions returns the problems opts's Validate finds (when it has one) as one error
// listing them all, or nil: for a provider's New, which may be called without the config
// loader's checks.
func CheckOptions(opts any) error {
	v, ok := opts.(Validator)
	if !ok {
		return nil
	}
	errs := v.Validate()
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Key + ": " + e.Msg
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
