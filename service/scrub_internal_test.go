package service

import (
	"strings"
	"testing"

	"github.com/chute-dev/chute/configs"
)

type secretOpts struct {
	Key     string            `chute:"secret"`
	Headers map[string]string `chute:"secret_values"`
	Plain   string
}

// A reload's new secrets are scrubbed, in the forms a server echoes them in; the old ones
// are no longer needed.
func TestScrubberFollowsReload(t *testing.T) {
	cfg := func(key, header string) *configs.Config {
		return &configs.Config{Providers: map[string]*configs.Provider{"p": {
			Endpoint: "https://u:endpoint-pw@host/files/?key=query-secret",
			Options:  &secretOpts{Key: key, Headers: map[string]string{"Authorization": header}, Plain: "visible"},
		}}}
	}
	s := newScrubber(cfg("first-key", "Bearer first-token"))
	if got := s.text("first-key first-token endpoint-pw query-secret visible"); strings.Count(got, "[REDACTED]") != 4 || !strings.Contains(got, "visible") {
		t.Fatalf("scrubbed: %q", got)
	}
	s.set(cfg("second-key", "Bearer second/token"))
	if got := s.text("second-key second%2Ftoken"); strings.Contains(got, "second") {
		t.Fatalf("a reloaded secret shows: %q", got)
	}
}
