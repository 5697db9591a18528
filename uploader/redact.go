package uploader

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Redacted stands in a message where a secret was.
const Redacted = "[REDACTED]"

// minSecret is the shortest secret hidden: shorter ones would blank every match of a common
// word in a message, and guard nothing.
const minSecret = 3

// Redactor hides a provider's secrets (API keys, tokens, passwords, header values) in text,
// together with what URLs carry credentials in: their userinfo and query values. It is the one
// place messages are scrubbed: Client.Send passes every error through the Request's Redactor,
// and a provider passes what it builds itself through Error or String. A nil *Redactor still
// scrubs URLs. A Redactor is immutable, so one is shared by every job of a provider; With
// extends it with a job's own secrets (an upload token, a signed URL).
type Redactor struct {
	secrets []string // longest first, so that a secret inside another is not half-hidden
}

// NewRedactor returns a Redactor that hides secrets. Besides each value as given, it hides
// the forms a server may echo it in: URL-escaped, JSON-escaped, and for an Authorization
// value ("Bearer t0k", "Basic dTpwdw==") its credential part and the decoded password.
// Secrets shorter than 3 characters are ignored.
func NewRedactor(secrets ...string) *Redactor {
	return (*Redactor)(nil).With(secrets...)
}

// With returns a Redactor that hides secrets besides those r hides. r is not changed.
func (r *Redactor) With(secrets ...string) *Redactor {
	seen := make(map[string]bool)
	var out []string
	add := func(s string) {
		if len(s) >= minSecret && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if r != nil {
		for _, s := range r.secrets {
			add(s)
		}
	}
	for _, s := range secrets {
		for _, v := range secretForms(strings.TrimSpace(s)) {
			add(v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return &Redactor{secrets: out}
}

// secretForms lists s and the forms of it a server may echo.
func secretForms(s string) []string {
	if s == "" {
		return nil
	}
	bases := []string{s}
	if scheme, cred, ok := strings.Cut(s, " "); ok && !strings.ContainsAny(scheme, "=:/") {
		cred = strings.TrimSpace(cred)
		bases = append(bases, cred)
		if strings.EqualFold(scheme, "basic") {
			if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
				bases = append(bases, string(dec))
				if _, pw, ok := strings.Cut(string(dec), ":"); ok {
					bases = append(bases, pw)
				}
			}
		}
	}
	var forms []string
	for _, b := range bases {
		forms = append(forms, b, url.QueryEscape(b), url.PathEscape(b))
		if j, err := json.Marshal(b); err == nil {
			forms = append(forms, strings.Trim(string(j), `"`))
		}
	}
	return forms
}

// Secrets lists the values r hides, for a provider that hands them on (e.g. to a tus.Client).
func (r *Redactor) Secrets() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.secrets...)
}

var (
	// userinfoRE matches the credentials of a URL's authority: "scheme://user:pw@".
	userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@"'<>]+@`)
	// queryValueRE matches a query value: "?key=value" or "&key=value", also in a relative
	// URL such as a Location header's "/files/u1?token=...".
	queryValueRE = regexp.MustCompile(`([?&][^=\s&#"'<>?]+=)[^&\s#"'<>]*[^&\s#"'<>:,.;)\]]`)
)

// String returns s with every secret, every URL's userinfo and every query value replaced.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, sec := range r.secrets {
			if strings.Contains(s, sec) {
				s = strings.ReplaceAll(s, sec, Redacted)
			}
		}
	}
	s = userinfoRE.ReplaceAllString(s, "${1}"+Redacted+"@")
	return queryValueRE.ReplaceAllStringFunc(s, func(m string) string {
		name, value, _ := strings.Cut(m, "=")
		if value == Redacted || value == "REDACTED" { // already hidden (RedactURL's word)
			return m
		}
		return name + "=" + Redacted
	})
}

// Error returns err with its message passed through String; it unwraps to err, so that its
// class and type still read (errors.As finds the original, unredacted values: Client.Send
// redacts the fields of the *StatusError it makes as well).
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.String(msg)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// redactedError shows a scrubbed message and unwraps to the original error.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
