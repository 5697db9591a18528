package uploadgig

import (
	"encoding/json"
	"net/url"
	"testing"
)

// A Slug decodes back to the exact name, and is plain ASCII on the wire.
func TestSlugRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"clip.mp4", "clip.mp4"},
		{"holiday clip.mp4", "holiday clip.mp4"},
		{"%41.mp4", "%2541.mp4"},
		{"100%", "100%25"},
		{`"q" 'x' -a+b.mp4`, `"q" 'x' -a+b.mp4`},
		{"ü.mp4", "%C3%BC.mp4"},
		{"日本", "%E6%97%A5%E6%9C%AC"},
		{"a\tb\x7f", "a%09b%7F"},
	} {
		got := slug(tc.name)
		if got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.name, got, tc.want)
		}
		back, err := url.PathUnescape(got)
		if err != nil || back != tc.name {
			t.Errorf("slug(%q) = %q decodes to %q (%v)", tc.name, got, back, err)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] >= 0x7f {
				t.Errorf("slug(%q) has byte %#x", tc.name, got[i])
			}
		}
	}
}

func TestLoose(t *testing.T) {
	for in, want := range map[string]loose{`"1"`: "1", `1`: "1", `-3`: "-3", `"-3"`: "-3", `10240`: "10240",
		`"10240"`: "10240", `" 5 "`: "5", `1.5e3`: "1.5e3", `null`: ""} {
		var l loose
		if err := json.Unmarshal([]byte(in), &l); err != nil || l != want {
			t.Errorf("%s read as %q (%v), want %q", in, l, err, want)
		}
	}
	for _, in := range []string{`true`, `{}`, `[1]`} {
		var l loose
		if err := json.Unmarshal([]byte(in), &l); err == nil {
			t.Errorf("%s read as %q", in, l)
		}
	}
}

func TestSpaceLeft(t *testing.T) {
	for _, tc := range []struct {
		cmbs loose
		mb   float64
		ok   bool
	}{{"10240", 10240, true}, {"0", 0, true}, {"-5", 0, true}, {"12.5", 12.5, true}, {"", 0, false}, {"lots", 0, false}, {"NaN", 0, false}} {
		mb, ok := spaceLeft(tc.cmbs)
		if mb != tc.mb || ok != tc.ok {
			t.Errorf("spaceLeft(%q) = %v, %v", tc.cmbs, mb, ok)
		}
	}
	if !fits(1<<20, 1) || fits(1<<20+1, 1) || !fits(0, 0) || fits(1, 0) {
		t.Error("fits reads MB other than as 1,048,576 bytes")
	}
}

func TestDecodeAnswer(t *testing.T) {
	ok := `{"0":{"ok":true,"message":"Uploaded was successful","url":"https://uploadgig.com/file/download/abc/a.mp4","id":"abcdefghijklmnop","file_name":"a.mp4","size":12}}`
	a, err := decodeAnswer([]byte(ok))
	if err != nil || !a.OK || a.ID != "abcdefghijklmnop" || a.Size != "12" || a.FileName != "a.mp4" {
		t.Errorf("%+v %v", a, err)
	}
	a, err = decodeAnswer([]byte(`[{"ok":false,"message":" Invalid identity provided "}]`))
	if err != nil || a.OK || a.Message != msgInvalidIdentity {
		t.Errorf("%+v %v", a, err)
	}
	for _, bad := range []string{`{"1":{}}`, `[]`, `"ok"`, ``, `<html>`} {
		if _, err := decodeAnswer([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
