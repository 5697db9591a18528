package configs

import (
	"os"
	"path/filepath"
	"runtime"
)

// DefaultStatePath returns where the state database lives when the config does not say:
//
//   - Linux and other Unix, as root: /var/lib/chute/state.db
//   - Linux and other Unix, as a user: $XDG_STATE_HOME/chute/state.db, else
//     ~/.local/state/chute/state.db
//   - macOS: ~/Library/Application Support/chute/state.db
//   - Windows: %LOCALAPPDATA%\chute\state.db
func DefaultStatePath() string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = ""
	}
	return statePath(runtime.GOOS, os.Geteuid() == 0, os.Getenv, home)
}

// statePath is DefaultStatePath for a given platform, user and environment; home is ""
// when unknown.
func statePath(goos string, root bool, getenv func(string) string, home string) string {
	switch goos {
	case "windows":
		dir := getenv("LOCALAPPDATA")
		if dir == "" {
			dir = programData(getenv)
		}
		return filepath.Join(dir, "chute", "state.db")
	case "darwin", "ios":
		if home == "" {
			return "/Library/Application Support/chute/state.db"
		}
		return filepath.Join(home, "Library", "Application Support", "chute", "state.db")
	}
	const system = "/var/lib/chute/state.db"
	if root {
		return system
	}
	if dir := getenv("XDG_STATE_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "chute", "state.db")
	}
	if home == "" {
		return system
	}
	return filepath.Join(home, ".local", "state", "chute", "state.db")
}

// DefaultConfigPath returns the config file used when neither --config nor $CHUTE_CONFIG
// is given: /etc/chute/chute.yaml for the system service (%ProgramData%\chute\chute.yaml
// on Windows, which has no /etc), os.UserConfigDir()/chute/chute.yaml for a per-user one.
// When the user config dir is unknown the system path is returned.
func DefaultConfigPath(user bool) string {
	dir := ""
	if user {
		if d, err := os.UserConfigDir(); err == nil {
			dir = d
		}
	}
	return configPath(runtime.GOOS, dir, os.Getenv)
}

// configPath is DefaultConfigPath for a given platform; userDir is the user config dir,
// or "" for the system config.
func configPath(goos, userDir string, getenv func(string) string) string {
	if userDir != "" {
		return filepath.Join(userDir, "chute", "chute.yaml")
	}
	if goos == "windows" {
		return filepath.Join(programData(getenv), "chute", "chute.yaml")
	}
	return "/etc/chute/chute.yaml"
}

// programData returns Windows' %ProgramData%.
func programData(getenv func(string) string) string {
	if dir := getenv("ProgramData"); dir != "" {
		return dir
	}
	return `C:\ProgramData`
}

// Locate returns the config file to use: flagValue (--config) when set, else
// $CHUTE_CONFIG, else DefaultConfigPath(user). getenv nil means os.Getenv.
func Locate(flagValue string, getenv func(string) string, user bool) string {
	if flagValue != "" {
		return flagValue
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv("CHUTE_CONFIG"); v != "" {
		return v
	}
	return DefaultConfigPath(user)
}
