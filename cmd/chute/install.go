package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	kservice "github.com/kardianos/service"
)

// serviceName is the unit, Windows service and event-log source name; launchdLabel is the
// launchd job's label (launchd wants reverse-DNS names).
const (
	serviceName  = "chute"
	launchdLabel = "com.github.chute-dev.chute"
)

// manager is chute as an installed service: systemd on Linux, launchd on macOS, the service
// control manager on Windows. Unit and plist files are chute's own (configs/units) and
// written by chute: kardianos/service v1.3.0 renders its templates into a file it already
// created (a failed template leaves an empty unit behind) and its systemd unit does not fit
// chute (RestartSec=120, no Type=notify, WantedBy=multi-user.target for --user). The library
// runs the rest: the Windows service itself, start, stop, restart, status, uninstall.
type manager struct {
	goos string
	user bool
	// path is the unit or plist file; "" for the Windows service, which has none.
	path string
	svc  kservice.Service
}

// newManager returns the service manager of goos for a system or --user service.
// prg is the program a Windows service runs (nil: none, for commands that control it).
func newManager(goos string, user bool, cfg *kservice.Config, prg kservice.Interface) (*manager, error) {
	m := &manager{goos: goos, user: user}
	if cfg == nil {
		cfg = &kservice.Config{}
	}
	cfg.Name = serviceName
	cfg.DisplayName = "chute"
	cfg.Description = "chute watch-folder upload daemon"
	if cfg.Option == nil {
		cfg.Option = kservice.KeyValue{}
	}
	cfg.Option["UserService"] = user
	var sys kservice.System
	switch goos {
	case "linux":
		// Always systemd, whatever PID 1 is: the library picks SysV when PID 1 is not
		// systemd (containers, CI), and chute ships systemd units only.
		for _, s := range kservice.AvailableSystems() {
			if s.String() == "linux-systemd" {
				sys = s
			}
		}
		home, err := os.UserHomeDir()
		switch {
		case !user:
			m.path = "/etc/systemd/system/" + serviceName + ".service"
		case err != nil:
			return nil, fmt.Errorf("user service: %w", err)
		default:
			// The library's place for user units, so that its Uninstall removes this file.
			m.path = filepath.Join(home, ".config", "systemd", "user", serviceName+".service")
		}
	case "darwin":
		sys = kservice.ChosenSystem()
		cfg.Name = launchdLabel
		if user {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("user service: %w", err)
			}
			m.path = filepath.Join(home, "Library", "LaunchAgents", launchdLabel+".plist")
		} else {
			m.path = filepath.Join("/Library/LaunchDaemons", launchdLabel+".plist")
		}
	case "windows":
		if user {
			return nil, &exitError{code: 2, msg: "Windows has no per-user services: install without --user (as an administrator)"}
		}
		sys = kservice.ChosenSystem()
		cfg.Option["StartType"] = "automatic"
		cfg.Option["OnFailure"] = "restart"
		cfg.Option["OnFailureDelayDuration"] = "5s"
		cfg.Option["OnFailureResetPeriod"] = 600
	default:
		return nil, &exitError{code: 2, msg: fmt.Sprintf("chute cannot install a service on %s: run `chute run` under your service manager", goos)}
	}
	if sys == nil {
		return nil, fmt.Errorf("no service manager found for %s", goos)
	}
	if prg == nil {
		prg = noProgram{}
	}
	svc, err := sys.New(prg, cfg)
	if err != nil {
		return nil, err
	}
	m.svc = svc
	return m, nil
}

// noProgram is the service program for commands that control the service from outside.
type noProgram struct{}

func (noProgram) Start(kservice.Service) error { return nil }
func (noProgram) Stop(kservice.Service) error  { return nil }

// kind names the service for messages.
func (m *manager) kind() string {
	switch {
	case m.goos == "windows":
		return "Windows service"
	case m.goos == "darwin" && m.user:
		return "launchd agent"
	case m.goos == "darwin":
		return "launchd daemon"
	case m.user:
		return "systemd user service"
	default:
		return "systemd service"
	}
}

// render returns the unit (or plist, or for Windows a description) for spec.
func (m *manager) render(spec unitSpec) (string, error) {
	switch m.goos {
	case "linux":
		return renderSystemd(spec)
	case "darwin":
		logPath := "/Library/Logs/chute.log"
		if m.user {
			logPath = filepath.Join(filepath.Dir(filepath.Dir(m.path)), "Logs", "chute.log")
		}
		return renderLaunchd(spec, launchdLabel, logPath)
	default:
		return fmt.Sprintf("Windows service %q (chute watch-folder upload daemon)\ncommand: %q %s\nstart: automatic; on failure: restart after 5s\nlogs: the Windows event log (Application, source %q)\n",
			serviceName, spec.Exe, strings.Join(quoteAll(spec.args()), " "), serviceName), nil
	}
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = fmt.Sprintf("%q", a)
	}
	return out
}

// install writes the unit file (never leaving a partial or broken one) and registers it.
func (m *manager) install(ctx context.Context, text string, stdout io.Writer) error {
	if m.goos == "windows" {
		if err := m.svc.Install(); err != nil {
			return fmt.Errorf("install the Windows service: %w", err)
		}
		fmt.Fprintf(stdout, "installed the Windows service %q; start it with `chute start`\n", serviceName)
		return nil
	}
	old, err := os.ReadFile(m.path)
	existed := err == nil
	replaced := existed && !bytes.Equal(old, []byte(text))
	if existed && !replaced {
		fmt.Fprintf(stdout, "%s is up to date\n", m.path)
	} else {
		if err := writeFileAtomic(m.path, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", m.path, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", m.path)
	}
	if m.goos == "linux" {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			fmt.Fprintln(stdout, "note: systemd does not seem to be running here (no /run/systemd/system)")
		}
		for _, args := range [][]string{{"daemon-reload"}, {"enable", serviceName + ".service"}} {
			if err := m.systemctl(ctx, args...); err != nil {
				return fmt.Errorf("the unit is in place, but %w", err)
			}
		}
	}
	start := "chute start"
	if m.user {
		start += " --user"
	}
	if replaced {
		fmt.Fprintf(stdout, "the %s was already installed: `chute restart%s` applies the new unit\n", m.kind(), strings.TrimPrefix(start, "chute start"))
		return nil
	}
	fmt.Fprintf(stdout, "installed the %s; start it with `%s`\n", m.kind(), start)
	return nil
}

// systemctl runs systemctl (found on PATH) for this kind of service.
func (m *manager) systemctl(ctx context.Context, args ...string) error {
	if m.user {
		args = append([]string{"--user"}, args...)
	}
	// daemon-reload and enable are quick; a systemd that does not answer is not waited for.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// installed reports whether the service is installed, without asking the service manager
// when there is no unit file.
func (m *manager) installed() bool {
	if m.path != "" {
		_, err := os.Stat(m.path)
		return err == nil
	}
	_, err := m.svc.Status()
	return !errors.Is(err, kservice.ErrNotInstalled)
}

// state is a one-line description of the service for `chute status`.
func (m *manager) state() string {
	if !m.installed() {
		return ""
	}
	where := m.kind()
	if m.path != "" {
		where += " " + m.path
	}
	st, err := m.svc.Status()
	switch {
	case err != nil:
		return fmt.Sprintf("%s: %v", where, err)
	case st == kservice.StatusRunning:
		return where + ": running"
	case st == kservice.StatusStopped:
		return where + ": stopped"
	default:
		return where + ": state unknown"
	}
}

// writeFileAtomic writes data to a temporary file beside path (a name no service manager
// loads), syncs it, reads it back to compare, and renames it onto path: path is either the
// old file or the whole new one, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	back, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("%s reads back different from what was written", tmp)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// executable is the chute binary a service runs: this one, symlinks resolved.
func executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the chute binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return exe, nil
}

func cmdInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("install", stderr)
	user := fs.Bool("user", false, "a per-user service instead of the system one")
	print := fs.Bool("print", false, "print the unit that would be installed, install nothing")
	exeFlag := fs.String("exe", "", "the chute binary the service runs (default: this one)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	path, err := defaultLookup().installConfig(*cfgPath, *user)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path, stderr)
	if err != nil {
		return err
	}
	exe := *exeFlag
	if exe == "" {
		if exe, err = executable(); err != nil {
			return err
		}
	} else if exe, err = filepath.Abs(exe); err != nil {
		return err
	}
	spec := newUnitSpec(cfg, exe, *user)
	m, err := newManager(runtime.GOOS, *user, &kservice.Config{Executable: exe, Arguments: spec.args()}, nil)
	if err != nil {
		return err
	}
	text, err := m.render(spec)
	if err != nil {
		return err
	}
	if *print {
		_, err := io.WriteString(stdout, text)
		return err
	}
	if runtime.GOOS != "windows" && !*user && os.Geteuid() != 0 {
		return &exitError{code: 1, msg: "installing the system service needs root: sudo chute install, or chute install --user for a per-user service"}
	}
	for _, p := range spec.Writable {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(stderr, "note: %s does not exist yet: create it before the service starts, the service may not create it\n", p)
		}
	}
	return m.install(ctx, text, stdout)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("chute "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// cmdControl runs uninstall, start, stop and restart.
func cmdControl(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(action, stderr)
	user := fs.Bool("user", false, "the per-user service instead of the system one")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	m, err := newManager(runtime.GOOS, *user, nil, nil)
	if err != nil {
		return err
	}
	if !m.installed() {
		hint := "chute install"
		if *user {
			hint += " --user"
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%s: the %s is not installed (`%s` installs it)", action, m.kind(), hint)}
	}
	var do func() error
	switch action {
	case "uninstall":
		do = func() error {
			if st, err := m.svc.Status(); err == nil && st == kservice.StatusRunning {
				if err := m.svc.Stop(); err != nil {
					return fmt.Errorf("stop: %w", err)
				}
			}
			return m.svc.Uninstall()
		}
	case "start":
		do = m.svc.Start
	case "stop":
		do = m.svc.Stop
	case "restart":
		do = m.svc.Restart
	}
	if err := do(); err != nil {
		return fmt.Errorf("%s the %s: %w", action, m.kind(), err)
	}
	past := map[string]string{"uninstall": "uninstalled", "start": "started", "stop": "stopped", "restart": "restarted"}[action]
	fmt.Fprintf(stdout, "%s the %s\n", past, m.kind())
	return nil
}

// serviceStates describes the installed services for `chute status`, one line each.
func serviceStates() []string {
	var lines []string
	for _, user := range []bool{false, true} {
		if runtime.GOOS == "windows" && user {
			continue
		}
		m, err := newManager(runtime.GOOS, user, nil, nil)
		if err != nil {
			continue
		}
		if s := m.state(); s != "" {
			lines = append(lines, "service: "+s)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "service: not installed (`chute install` or `chute install --user`)")
	}
	return lines
}
