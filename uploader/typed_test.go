package uploader

import (
	"context"
	"strings"
	"testing"
)

type typedOpts struct {
	Key  string
	Wait string
}

type typedProvider struct{ opts typedOpts }

func (p *typedProvider) Upload(context.Context, *Job) (Result, error) { return Result{}, nil }

func TestTypeOf(t *testing.T) {
	ty := TypeOf("demo", "https://api.example.com", func() typedOpts { return typedOpts{Wait: "ready"} },
		func(env Env, o typedOpts) (Provider, error) { return &typedProvider{o}, nil })
	if ty.Name != "demo" || ty.DefaultEndpoint != "https://api.example.com" {
		t.Fatalf("type %+v", ty)
	}
	o, ok := ty.NewOptions().(*typedOpts)
	if !ok || o.Wait != "ready" {
		t.Fatalf("NewOptions gave %#v, want *typedOpts with the defaults", ty.NewOptions())
	}
	o.Key = "k"
	p, err := ty.New(Env{}, o)
	if err != nil || p.(*typedProvider).opts != (typedOpts{Key: "k", Wait: "ready"}) {
		t.Fatalf("New: %v %+v", err, p)
	}
	if _, err := ty.New(Env{}, &struct{}{}); err == nil || !strings.Contains(err.Error(), "*uploader.typedOpts") {
		t.Errorf("New with the wrong options type: %v", err)
	}
}

func TestOptionsError(t *testing.T) {
	if err := OptionsError("x", nil); err != nil {
		t.Errorf("no problems gave %v", err)
	}
	err := OptionsError("xvid", []FieldError{{Key: "a", Msg: "required"}, {Key: "b", Msg: "bad"}})
	if err == nil || err.Error() != "xvid: a: required; b: bad" {
		t.Errorf("got %v", err)
	}
}

func TestEnvBaseURL(t *testing.T) {
	c := NewClient(ClientOptions{})
	for _, tc := range []struct{ endpoint, def, want, err string }{
		{"", "https://api.example.com/", "https://api.example.com", ""},
		{"http://127.0.0.1:8080/base/", "https://x", "http://127.0.0.1:8080/base", ""},
		{"ftp://h", "", "", "not an http(s) URL"},
		{"ftp://user:pw@h/?key=s3cr3t", "", "", "not an http(s) URL"},
		{"", "", "", "no endpoint"},
	} {
		got, err := Env{Endpoint: tc.endpoint, Client: c}.BaseURL("p", tc.def)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %q %v, want %q", tc.endpoint, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.endpoint, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "s3cr3t"):
			t.Errorf("the error shows a credential: %v", err)
		}
	}
	if _, err := (Env{Endpoint: "https://h"}).BaseURL("p", ""); err == nil {
		t.Error("no client: no error")
	}
}
