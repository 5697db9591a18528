package gcore

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chute-dev/chute/uploader"
)

func TestReadError(t *testing.T) {
	cases := map[string]string{
		`{"errors":{"name":["can't be blank"],"origin_url":["is invalid","must be https"]}}`: "name: can't be blank; origin_url: is invalid, must be https",
		`{"error":"Invalid API key."}`:                               "Invalid API key.",
		`{"detail":"Authentication credentials were not provided."}`: "Authentication credentials were not provided.",
		"<html>502 Bad Gateway</html>":                               "default",
	}
	for body, want := range cases {
		f := uploader.Fault{Message: "default"}
		readError(&uploader.Answer{Status: 422, Body: []byte(body)}, &f)
		if f.Message != want {
			t.Errorf("readError(%s) = %q, want %q", body, f.Message, want)
		}
	}
	f := uploader.Fault{}
	readError(&uploader.Answer{Status: 422, Body: []byte(`{"error":"` + strings.Repeat("é", 400) + `"}`)}, &f)
	if len(f.Message) > 310 || !strings.HasSuffix(f.Message, "…") {
		t.Errorf("long message kept as %d bytes", len(f.Message))
	}
}

func TestActiveServers(t *testing.T) {
	no := false
	list := []uploadServer{
		{Role: "upload", Hostname: "old.example.com", Active: false},
		{Role: "transcoder", Hostname: "t.example.com", Active: true},
		{Role: "upload", Hostname: "a.example.com", Active: true},
		{Role: "upload", Hostname: "127.0.0.1:8080", Active: true, SSL: &no},
		{Role: "upload", Hostname: "a.example.com", Active: true},
		{Role: "upload", Hostname: "evil.example.com/path", Active: true},
		{Role: "upload", Hostname: "", Active: true},
	}
	want := []string{"https://a.example.com/upload/", "http://127.0.0.1:8080/upload/"}
	if got := activeServers(list); !reflect.DeepEqual(got, want) {
		t.Errorf("activeServers = %q, want %q", got, want)
	}
}

func TestDecodeCreated(t *testing.T) {
	for _, raw := range []string{`{"id":7,"client_id":2}`, ` [{"id":7,"client_id":2}]`} {
		v, err := decodeCreated(json.RawMessage(raw))
		if err != nil || v.ID != 7 || v.ClientID != 2 {
			t.Errorf("decodeCreated(%s) = %+v, %v", raw, v, err)
		}
	}
	for _, raw := range []string{`[]`, `{}`, `"x"`, `{"id":"7"}`} {
		if _, err := decodeCreated(json.RawMessage(raw)); err == nil {
			t.Errorf("decodeCreated(%s) took it", raw)
		}
	}
}

func TestTokenRefused(t *testing.T) {
	mk := func(code int, body string) error {
		return uploader.TransientError(&uploader.StatusError{StatusCode: code, Body: body})
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{mk(500, "token invalid (null)"), true},
		{mk(500, "token video (1) does not match this video (2)"), true},
		{mk(500, "Token expired"), true},
		{mk(500, "internal error"), false},
		{mk(429, "token bucket empty"), false},
		{errors.New("token"), false},
	} {
		if got := tokenRefused(tc.err); got != tc.want {
			t.Errorf("tokenRefused(%v) = %v", tc.err, got)
		}
	}
}
