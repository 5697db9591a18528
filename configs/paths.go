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
	switch runtime.GOOS {
	case "windows":
		dir := os.Getenv("LOCALAPPDATA")
		if dir == "" {
			dir = programData()
		}
		return filepath.Join(dir, "chute", "state.db")
	case "darwin", "ios":
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, "Library", "Application Support", "chute", "state.db")
		}
		return "/Library/Application Support/chute/state.db"
	}
	const system = "/var/lib/chute/state.db"
	if os.Geteuid() == 0 {
		return system
	}
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "chute", "state.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "chute", "state.db")
	}
	return system
}

// DefaultConfigPath returns the config file used when neither --config nor $CHUTE_CONFIG
// is given: /etc/chute/chute.yaml for the system service (%ProgramData%\chute\chute.yaml
// on Windows, which has no /etc), os.UserConfigDir()/chute/chute.yaml for a per-user one.
// When the user config dir is unknown the system path is returned.
func DefaultConfigPath(user bool) string {
	if user {
		if dir, err := os.UserConfigDir(); err == nil {
			return filepath.Join(dir, "chute", "chute.yaml")
		}
	}
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "chute", "chute.yaml")
	}
	return "/etc/chute/chute.yaml"
}

// programData returns Windows' %ProgramData%.
func programData() string {
	if dir := os.Getenv("ProgramData"); dir != "" {
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
