package uploader_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chute-dev/chute/uploader"
)

type typeOpts struct {
	Key   string `yaml:"key"`
	Level int    `yaml:"level"`
}

func (o typeOpts) Validate() []uploader.FieldError {
	var errs []uploader.FieldError
	if o.Key == "" {
		errs = append(errs, uploader.FieldError{Key: "key", Msg: "required"})
	}
	if o.Level < 0 {
		errs = append(errs, uploader.FieldError{Key: "level", Msg: "must not be negative"})
	}
	return errs
}

type nopProvider struct{ opts typeOpts }

func (nopProvider) Upload(context.Context, *uploader.Job) (uploader.Result, error) {
	return uploader.Result{}, nil
}

func TestNewTypeOneLineCheckOptions(t *testing.T) {
	ty := uploader.NewType("nop", "https://example.com", func() typeOpts { return typeOpts{Level: 3} },
		func(env uploader.Env, o typeOpts) (uploader.Provider, error) {
			if err := uploader.CheckOptions(o); err != nil {
				return nil, err
			}
			return nopProvider{o}, nil
		})
	if ty.Name != "nop" || ty.DefaultEndpoint != "https://example.com" {
		t.Errorf("type %+v", ty)
	}
	o, ok := ty.NewOptions().(*typeOpts)
	if !ok || o.Level != 3 {
		t.Fatalf("NewOptions gave %#v", ty.NewOptions())
	}
	o.Key = "k"
	p, err := ty.New(uploader.Env{}, o)
	if err != nil || p.(nopProvider).opts != *o {
		t.Errorf("New: %v %v", p, err)
	}
	if _, err := ty.New(uploader.Env{}, &struct{}{}); err == nil || !strings.Contains(err.Error(), "want *uploader_test.typeOpts") {
		t.Errorf("options of the wrong type: %v", err)
	}
	_, err = ty.New(uploader.Env{}, &typeOpts{Level: -1})
	if err == nil || err.Error() != "key: required; level: must not be negative" {
		t.Errorf("invalid options: %v", err)
	}
	for _, tc := range []struct {
		value  string
		secret bool
		want   string
	}{{"", false, "required"}, {" ", true, "required (or k_file)"}, {"a\nb", false, "must be one line"},
		{"s3cr3t\r", true, "must be one line (not shown: it is a secret)"}} {
		got := uploader.OneLine("k", tc.value, tc.secret)
		if len(got) != 1 || got[0].Key != "k" || got[0].Msg != tc.want {
			t.Errorf("OneLine(%q, %v) = %v, want %q", tc.value, tc.secret, got, tc.want)
		}
	}
	if got := uploader.OneLine("k", "fine value", true); got != nil {
		t.Errorf("a good value: %v", got)
	}
	if got := uploader.NotNegative("d", -1, ""); len(got) != 1 || got[0].Key != "d" || got[0].Msg != "must be positive" {
		t.Errorf("NotNegative(-1) = %v", got)
	}
	if got := uploader.NotNegative("n", int64(-5), "must not be negative (0: none)"); len(got) != 1 || got[0].Msg != "must not be negative (0: none)" {
		t.Errorf("NotNegative with a message = %v", got)
	}
	if got := uploader.NotNegative("d", 0, ""); got != nil {
		t.Errorf("NotNegative(0) = %v", got)
	}
	if got := uploader.OneOf("wait", "soon", "uploaded", "ready"); len(got) != 1 || got[0].Msg != `"soon" is not one of uploaded, ready` {
		t.Errorf("OneOf(soon) = %v", got)
	}
	if uploader.OneOf("wait", "", "uploaded") != nil || uploader.OneOf("wait", "ready", "uploaded", "ready") != nil {
		t.Error("OneOf refused the default or an allowed word")
	}
	if err := uploader.CheckOptions(struct{}{}); err != nil {
		t.Errorf("options without Validate: %v", err)
	}
}
