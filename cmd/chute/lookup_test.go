package main

import (
	"bytes"
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func TestConfigLookup(t *testing.T) {
	const user, system = "/home/ann/.config/chute/chute.yaml", "/etc/chute/chute.yaml"
	lookup := func(root bool, env string, files ...string) configLookup {
		have := map[string]bool{}
		for _, f := range files {
			have[f] = true
		}
		return configLookup{
			getenv: func(k string) string {
				if k == "CHUTE_CONFIG" {
					return env
				}
				return ""
			},
			exists:   func(p string) bool { return have[p] },
			system:   root,
			userPath: user, systemPath: system,
		}
	}
	for _, c := range []struct {
		name     string
		l        configLookup
		flag     string
		want     string
		wantErr  []string
		wantCode int
	}{
		{name: "flag first", l: lookup(false, "/env.yaml", "/flag.yaml", "/env.yaml", user), flag: "/flag.yaml", want: "/flag.yaml"},
		{name: "then $CHUTE_CONFIG", l: lookup(false, "/env.yaml", "/env.yaml", user), want: "/env.yaml"},
		{name: "a user's own config", l: lookup(false, "", user, system), want: user},
		{name: "a user falls back to the system's", l: lookup(false, "", system), want: system},
		{name: "root: the system service's", l: lookup(true, "", user, system), want: system},
		{name: "root never reads a user's", l: lookup(true, "", user), wantErr: []string{system, "--config FILE", "CHUTE_CONFIG"}},
		{name: "nothing anywhere", l: lookup(false, ""), wantErr: []string{user + " and " + system, "--config FILE", "CHUTE_CONFIG=FILE"}},
		{name: "a missing --config", l: lookup(false, "", user), flag: "/nope.yaml", wantErr: []string{"/nope.yaml (from --config) does not exist"}},
		{name: "a missing $CHUTE_CONFIG", l: lookup(false, "/nope.yaml", user), wantErr: []string{"/nope.yaml (from $CHUTE_CONFIG)"}},
	} {
		got, err := c.l.find(c.flag)
		if c.wantErr == nil {
			if err != nil || got != c.want {
				t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
			}
			continue
		}
		if err == nil || exitStatus(err) != 2 {
			t.Errorf("%s: %q, %v; want an exit-2 error", c.name, got, err)
			continue
		}
		for _, w := range c.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
	}
	// install: the default of the kind of service, never the other one.
	if p, err := lookup(false, "", user, system).installConfig("", false); err != nil || p != system {
		t.Errorf("system install config: %q %v", p, err)
	}
	if p, err := lookup(false, "", system).installConfig("", true); err == nil || !strings.Contains(err.Error(), user) {
		t.Errorf("user install without a user config: %q %v", p, err)
	}
	if p, err := lookup(false, "/env.yaml", "/env.yaml").installConfig("", true); err != nil || p != "/env.yaml" {
		t.Errorf("install with $CHUTE_CONFIG: %q %v", p, err)
	}
}

func TestVersion(t *testing.T) {
	var b bytes.Buffer
	writeVersion(&b, "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}})
	for _, want := range []string{"chute v1.2.3\n", "module: v1.2.3\n", "revision: 0123abcd (modified)\n", "commit time: 2026-11-30T10:00:00Z\n", "go: go"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, b.String())
		}
	}
	// -buildvcs=false (as CI builds) or no build info at all: said, not an error.
	for _, bi := range []*debug.BuildInfo{{Main: debug.Module{Version: "(devel)"}}, nil} {
		b.Reset()
		writeVersion(&b, "1.0.0", bi)
		if !strings.HasPrefix(b.String(), "chute 1.0.0\n") || !strings.Contains(b.String(), "revision: unknown (built without VCS information") {
			t.Errorf("version without VCS info:\n%s", b.String())
		}
	}
}

// Under the journal each level has its syslog priority and attributes and groups survive.
func TestJournalPriorities(t *testing.T) {
	var b bytes.Buffer
	log := buildLogger("debug", "text", true, &b).With("provider", "own").WithGroup("g")
	ctx := context.Background()
	log.Log(ctx, slog.LevelDebug, "d")
	log.Info("i", "k", 1)
	log.Warn("w")
	log.Error("e")
	want := "<7>level=DEBUG msg=d provider=own\n" +
		"<6>level=INFO msg=i provider=own g.k=1\n" +
		"<4>level=WARN msg=w provider=own\n" +
		"<3>level=ERROR msg=e provider=own\n"
	if b.String() != want {
		t.Errorf("journal lines:\n%s\nwant:\n%s", b.String(), want)
	}
}
