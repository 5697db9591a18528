package uploadertest

import (
	"strings"
	"testing"

	"github.com/chute-dev/chute/uploader"
)

// WantError fails t unless err has class c, its message holds every part, and it does not
// show secret (a provider's key or password; "" checks none): the check a provider's tests
// make of every failed upload.
func WantError(t testing.TB, err error, c uploader.Class, secret string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("upload succeeded; want a %v error", c)
	}
	t.Logf("error (%v): %v", ClassOf(err), err)
	if got := ClassOf(err); got != c {
		t.Fatalf("error classed %v, want %v: %v", got, c, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error shows a secret: %v", err)
	}
}

// ClassOf is err's class, without Classify's delay.
func ClassOf(err error) uploader.Class {
	c, _ := uploader.Classify(err)
	return c
}
