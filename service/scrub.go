package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/uploader"
)

// scrubber removes every configured secret (options tagged `chute:"secret"`, the values of
// options tagged `chute:"secret_values"` such as tus headers, credentials in an endpoint URL)
// from text: log lines, sidecar errors, the errors kept for `chute status`. Providers redact
// what they know; this is the engine's net under them, for a server that echoes a secret
// back in a way a provider did not foresee.
type scrubber struct {
	// r replaces every form of every secret; nil when there is none. A reload swaps it.
	r atomic.Pointer[strings.Replacer]
}

func newScrubber(cfg *configs.Config) *scrubber {
	s := &scrubber{}
	s.set(cfg)
	return s
}

// set makes s scrub the secrets of cfg.
func (s *scrubber) set(cfg *configs.Config) {
	var secrets []string
	add := func(v string) { secrets = append(secrets, v) }
	add(cfg.ListenToken)
	for _, p := range cfg.Providers {
		if u, err := url.Parse(p.Endpoint); err == nil {
			if pw, ok := u.User.Password(); ok {
				add(pw)
			}
			for _, vs := range u.Query() {
				for _, v := range vs {
					add(v)
				}
			}
		}
		secrets = append(secrets, configs.Secrets(p.Options)...)
	}
	// The kit knows the forms a server echoes a secret in (escaped, the credential of an
	// Authorization value, a Basic password), longest first; a Replacer scrubs them all in
	// one pass over each line.
	forms := uploader.NewRedactor(secrets...).Secrets()
	if len(forms) == 0 {
		s.r.Store(nil)
		return
	}
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, uploader.Redacted)
	}
	s.r.Store(strings.NewReplacer(pairs...))
}

// text returns s without secrets.
func (s *scrubber) text(v string) string {
	r := s.r.Load()
	if r == nil {
		return v
	}
	return r.Replace(v)
}

// handler wraps h so that no log line carries a secret, in its message or its attributes.
func (s *scrubber) handler(h slog.Handler) slog.Handler {
	return &scrubHandler{h: h, s: s}
}

type scrubHandler struct {
	h slog.Handler
	s *scrubber
}

func (h *scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.s.text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.s.text(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]slog.Attr, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.s.text(err.Error()))
		}
		if str := fmt.Sprint(v.Any()); h.s.text(str) != str {
			return slog.String(a.Key, h.s.text(str))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.attr(a)
	}
	return &scrubHandler{h: h.h.WithAttrs(out), s: h.s}
}

func (h *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{h: h.h.WithGroup(name), s: h.s}
}
