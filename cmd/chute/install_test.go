package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chute-dev/chute/configs"
	kservice "github.com/kardianos/service"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenConfig is a config with what the units are built from: a plain folder, one with a
// space, a % and a $ in its name moving its files elsewhere, and a state database outside
// the service's state directory.
func goldenConfig() *configs.Config {
	return &configs.Config{
		Source: "/etc/chute/chute.yaml",
		State:  "/srv/chute-state/state.db",
		Folders: []*configs.Folder{
			{Path: "/srv/drop/tus"},
			{Path: "/srv/drop/my 100% $video", After: configs.AfterMove, MoveTo: "/srv/uploaded"},
		},
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run Golden -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

// The generated units, byte for byte; .ci/verify-units has systemd check them.
func TestUnitsGolden(t *testing.T) {
	sys, err := renderSystemd(newUnitSpec(goldenConfig(), "/usr/local/bin/chute", false))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "chute.service.golden", sys)

	ucfg := goldenConfig()
	ucfg.Source, ucfg.State = "/home/ann/.config/chute/chute.yaml", "/home/ann/.local/state/chute/state.db"
	user, err := renderSystemd(newUnitSpec(ucfg, "/home/ann/bin/chute", true))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "chute-user.service.golden", user)

	plist, err := renderLaunchd(newUnitSpec(ucfg, "/usr/local/bin/chute", true), launchdLabel, "/Users/ann/Library/Logs/chute.log")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "chute.plist.golden", plist)

	// What the v1.3.0 pitfalls were about.
	for _, want := range []string{"Type=notify", "Restart=on-failure", "RestartSec=5s", "After=network-online.target", "Wants=network-online.target",
		"StateDirectory=chute", "TimeoutStopSec=2min", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
		"ReadWritePaths=-/srv/drop/tus\n", `ReadWritePaths="-/srv/drop/my 100%% $video"`, "ReadWritePaths=-/srv/uploaded\n", "ReadWritePaths=-/srv/chute-state\n",
		"ExecStart=/usr/local/bin/chute run --config /etc/chute/chute.yaml\n", "WantedBy=multi-user.target"} {
		if !strings.Contains(sys, want) {
			t.Errorf("system unit lacks %q", want)
		}
	}
	if !strings.Contains(user, "WantedBy=default.target") || strings.Contains(user, "multi-user.target") {
		t.Error("the user unit must be wanted by default.target, which a user manager reaches")
	}
	for _, bad := range []string{"RestartSec=120", "StartLimitInterval=5\n"} {
		if strings.Contains(sys+user, bad) {
			t.Errorf("unit has the library's %q", bad)
		}
	}
	// A folder in /tmp would be hidden by a private /tmp.
	tmpCfg := goldenConfig()
	tmpCfg.Folders[0].Path = "/tmp/drop"
	if tmpUnit, err := renderSystemd(newUnitSpec(tmpCfg, "/usr/local/bin/chute", false)); err != nil || strings.Contains(tmpUnit, "PrivateTmp=yes") {
		t.Errorf("a folder in /tmp with PrivateTmp=yes (%v)", err)
	}
	// The default state directory is the unit's StateDirectory: no extra writable path.
	cfg := goldenConfig()
	cfg.State = "/var/lib/chute/state.db"
	if spec := newUnitSpec(cfg, "/usr/local/bin/chute", false); strings.Contains(strings.Join(spec.Writable, " "), "/var/lib/chute") {
		t.Errorf("writable paths %q repeat the state directory", spec.Writable)
	}
}

func TestSystemdWord(t *testing.T) {
	for _, c := range []struct {
		in      string
		command bool
		want    string
	}{
		{"/usr/bin/chute", true, "/usr/bin/chute"},
		{"/a b/chute", true, `"/a b/chute"`},
		{`/a"b\c`, true, `"/a\"b\\c"`},
		{"/100%/$HOME", true, "/100%%/$$HOME"},
		{"-/100%/$HOME", false, "-/100%%/$HOME"},
		{"/x;y", false, `"/x;y"`},
		{"", true, `""`},
	} {
		got, err := systemdWord(c.in, c.command)
		if err != nil || got != c.want {
			t.Errorf("systemdWord(%q, %v) = %q, %v; want %q", c.in, c.command, got, err, c.want)
		}
	}
	if _, err := systemdWord("/a\nb", true); err == nil {
		t.Error("a newline in a path was accepted")
	}
}

func TestCheckUnit(t *testing.T) {
	good, err := renderSystemd(newUnitSpec(goldenConfig(), "/usr/local/bin/chute", false))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"empty":         "",
		"no install":    strings.Replace(good, "[Install]", "", 1),
		"other program": strings.Replace(good, "ExecStart=/usr/local/bin/chute", "ExecStart=/bin/true", 1),
		"not a setting": good + "garbage line\n",
		"template left": strings.Replace(good, "Type=notify", "{{Type}}", 1),
		"no exec start": strings.Replace(good, "ExecStart=", "#ExecStart=", 1),
	} {
		if err := checkUnit(text, "/usr/local/bin/chute"); err == nil {
			t.Errorf("%s: checkUnit accepted it", name)
		}
	}
	if err := checkUnit(good, "/usr/local/bin/chute"); err != nil {
		t.Errorf("the real unit: %v", err)
	}
}

// fakeSystemctl puts a systemctl on PATH that logs its arguments and answers is-active and
// list-unit-files as systemd would for an installed, active unit. It is the only stub: the
// real systemctl must not run here (no systemd manager on this machine, and a real one
// would be changed).
func fakeSystemctl(t *testing.T) (calls func() string) {
	t.Helper()
	bin := t.TempDir()
	log := filepath.Join(bin, "calls")
	script := `#!/bin/sh
echo "$*" >> "` + log + `"
case "$*" in
  *is-active*) echo active ;;
  *list-unit-files*) echo "chute.service enabled" ;;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() string {
		b, _ := os.ReadFile(log)
		return string(b)
	}
}

// chute install --user writes its unit into $HOME through the library's systemd path (not
// SysV, which the library would pick here, PID 1 not being systemd), enables it, status
// shows it, and uninstall removes it.
func TestInstallUserService(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd is Linux only")
	}
	calls := fakeSystemctl(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := t.TempDir()
	inbox := filepath.Join(dir, "inbox")
	os.MkdirAll(inbox, 0o755)
	cfg := writeConfig(t, dir, "state: "+dir+"/state.db\nproviders:\n  own: {type: tus, endpoint: \"http://127.0.0.1:1/files/\"}\nfolders:\n  - {path: "+inbox+", provider: own}\n")

	m, err := newManager("linux", true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.svc.Platform() != "linux-systemd" {
		t.Fatalf("service platform %q, want linux-systemd (the library chose %v here)", m.svc.Platform(), kservice.ChosenSystem())
	}
	unit := filepath.Join(home, ".config", "systemd", "user", "chute.service")
	if m.path != unit {
		t.Fatalf("unit path %s, want %s", m.path, unit)
	}

	out, errOut, err := runCLI(t, "install", "--user", "--config", cfg, "--exe", chuteBin)
	if err != nil {
		t.Fatalf("install: %v\n%s%s", err, out, errOut)
	}
	got, err := os.ReadFile(unit)
	if err != nil {
		t.Fatalf("no unit written: %v", err)
	}
	loaded, err := readConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := renderSystemd(newUnitSpec(loaded, chuteBin, true))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("unit written:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(string(got), "ExecStart="+chuteBin+" run --config "+cfg+"\n") || !strings.Contains(string(got), "WantedBy=default.target") {
		t.Errorf("unit does not run this config as a user service:\n%s", got)
	}
	if c := calls(); !strings.Contains(c, "--user daemon-reload\n") || !strings.Contains(c, "--user enable chute.service\n") {
		t.Errorf("systemctl calls:\n%s", c)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(unit), ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// Again: nothing changes, no "Init already exists".
	if out, _, err := runCLI(t, "install", "--user", "--config", cfg, "--exe", chuteBin); err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("second install: %v %s", err, out)
	}

	out, _, err = runCLI(t, "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "service: systemd user service "+unit+": running") {
		t.Errorf("status: %v\n%s", err, out)
	}

	if out, _, err := runCLI(t, "uninstall", "--user"); err != nil {
		t.Fatalf("uninstall: %v %s", err, out)
	}
	if _, err := os.Stat(unit); !os.IsNotExist(err) {
		t.Errorf("unit still there after uninstall: %v", err)
	}
	if c := calls(); !strings.Contains(c, "disable --user chute.service\n") || !strings.Contains(c, "stop --user chute.service\n") {
		t.Errorf("uninstall's systemctl calls:\n%s", c)
	}
	if _, _, err := runCLI(t, "uninstall", "--user"); err == nil {
		t.Error("uninstall of what is not installed succeeded")
	}
	out, _, _ = runCLI(t, "status", "--config", cfg)
	if !strings.Contains(out, "service: not installed") {
		t.Errorf("status after uninstall:\n%s", out)
	}
}

// --print installs nothing; a config chute cannot write a unit for leaves no file.
func TestInstallPrintAndRefusals(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd is Linux only")
	}
	calls := fakeSystemctl(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "in\tbox"), 0o755)
	os.MkdirAll(filepath.Join(dir, "inbox"), 0o755)
	good := writeConfig(t, dir, "state: "+dir+"/state.db\nproviders:\n  own: {type: tus, endpoint: \"http://127.0.0.1:1/files/\"}\nfolders:\n  - {path: "+dir+"/inbox, provider: own}\n")
	out, errOut, err := runCLI(t, "install", "--print", "--user", "--config", good)
	if err != nil || !strings.HasPrefix(out, "# chute") || !strings.Contains(out, "[Service]") {
		t.Fatalf("--print: %v\n%s%s", err, out, errOut)
	}
	unit := filepath.Join(home, ".config", "systemd", "user", "chute.service")
	if _, err := os.Stat(unit); !os.IsNotExist(err) || calls() != "" {
		t.Fatalf("--print installed something: %v, systemctl %q", err, calls())
	}

	// A folder with a tab in its name cannot be put in a unit: no file, no systemctl.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("state: "+dir+"/state.db\nproviders:\n  own: {type: tus, endpoint: \"http://127.0.0.1:1/files/\"}\nfolders:\n  - {path: \"in\\tbox\", provider: own}\n"), 0o644)
	if _, _, err := runCLI(t, "install", "--user", "--config", bad, "--exe", chuteBin); err == nil {
		t.Fatal("install with an unwritable folder name succeeded")
	}
	if _, err := os.Stat(unit); !os.IsNotExist(err) || calls() != "" {
		t.Fatalf("a failed install left %v, systemctl %q", err, calls())
	}
	if entries, _ := os.ReadDir(filepath.Dir(unit)); len(entries) > 0 {
		t.Errorf("a failed install left files: %v", entries)
	}

	// No config where the user service's would be: the message says where and what to do.
	t.Setenv("CHUTE_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "cfg"))
	_, _, err = runCLI(t, "install", "--user")
	if exitStatus(err) != 2 || !strings.Contains(err.Error(), filepath.Join(home, "cfg", "chute", "chute.yaml")) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("install --user without a config: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "chute.service")
	for _, text := range []string{"first\n", "second, longer than the first\n"} {
		if err := writeFileAtomic(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != text {
			t.Fatalf("file holds %q, want %q", got, text)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("files beside the unit: %v", entries)
	}
	// A directory that cannot be written keeps the old file whole.
	if os.Geteuid() != 0 {
		os.Chmod(filepath.Dir(p), 0o555)
		defer os.Chmod(filepath.Dir(p), 0o755)
		if err := writeFileAtomic(p, []byte("third"), 0o644); err == nil {
			t.Error("write into a read-only directory succeeded")
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, []byte("second, longer than the first\n")) {
			t.Errorf("old file damaged: %q", got)
		}
	}
}
