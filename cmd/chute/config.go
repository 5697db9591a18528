package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/chute-dev/chute/configs"
)

// configLookup is where a command's config comes from when the user did not name one.
type configLookup struct {
	getenv func(string) string
	// exists reports whether a candidate file is there (os.Stat in real use).
	exists func(string) bool
	// system is true for root: only the system service's config is looked for.
	system bool
	// userPath and systemPath are the two defaults (configs.DefaultConfigPath).
	userPath, systemPath string
}

func defaultLookup() configLookup {
	return configLookup{
		getenv: os.Getenv,
		exists: func(p string) bool {
			_, err := os.Stat(p)
			return !errors.Is(err, fs.ErrNotExist)
		},
		// Windows has no euid (-1): a user there looks at both places, as on Unix.
		system:     runtime.GOOS != "windows" && os.Geteuid() == 0,
		userPath:   configs.DefaultConfigPath(true),
		systemPath: configs.DefaultConfigPath(false),
	}
}

// find returns the config file to use: --config, else $CHUTE_CONFIG, else for root the
// system service's config, for anyone else the user's config or, when that does not exist,
// the system one. A file that is not there is an error saying where chute looked and how to
// point it at a config.
func (l configLookup) find(flagValue string) (string, error) {
	named := func(path, how string) (string, error) {
		if !l.exists(path) {
			return "", &exitError{code: 2, msg: fmt.Sprintf("config %s (%s) does not exist", path, how)}
		}
		return path, nil
	}
	if flagValue != "" {
		return named(flagValue, "from --config")
	}
	if v := l.getenv("CHUTE_CONFIG"); v != "" {
		return named(v, "from $CHUTE_CONFIG")
	}
	tried := []string{l.systemPath}
	if !l.system && l.userPath != l.systemPath {
		tried = []string{l.userPath, l.systemPath}
	}
	for _, p := range tried {
		if l.exists(p) {
			return p, nil
		}
	}
	return "", &exitError{code: 2, msg: fmt.Sprintf("no config file: looked for %s (--config and $CHUTE_CONFIG are not set).\n"+
		"Write one there (README.md has the reference, `chute check` validates it), or point chute at one with --config FILE or CHUTE_CONFIG=FILE.",
		strings.Join(tried, " and "))}
}

// installConfig returns the config an installed service is given: --config, else
// $CHUTE_CONFIG, else the default for the kind of service (the user's config dir for
// --user, /etc/chute/chute.yaml for the system). It must exist: the unit is built from it.
func (l configLookup) installConfig(flagValue string, user bool) (string, error) {
	if flagValue != "" || l.getenv("CHUTE_CONFIG") != "" {
		return l.find(flagValue)
	}
	p := l.systemPath
	how := "the system service's config"
	if user {
		p, how = l.userPath, "the user service's config"
	}
	if !l.exists(p) {
		return "", &exitError{code: 2, msg: fmt.Sprintf("config %s (%s) does not exist: write it first (`chute check --config %s` validates it), or name another with --config FILE", p, how, p)}
	}
	return p, nil
}

// configHint names the default configs for the usage text.
func configHint() string {
	l := defaultLookup()
	if l.system || l.userPath == l.systemPath {
		return l.systemPath
	}
	return l.userPath + ", else " + l.systemPath
}

// readConfig loads and validates the config file at path with the providers this build
// knows; an invalid config is a configs.Problems.
func readConfig(path string) (*configs.Config, error) {
	reg := registry()
	return configs.Load(path, configs.Options{Types: func(name string) (configs.TypeInfo, bool) {
		t, ok := reg.Lookup(name)
		if !ok {
			return configs.TypeInfo{}, false
		}
		return configs.TypeInfo{NewOptions: t.NewOptions, EndpointRequired: t.DefaultEndpoint == ""}, true
	}})
}
