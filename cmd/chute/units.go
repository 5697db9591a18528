package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/chute-dev/chute/configs"
)

// unitSpec is what a service unit is built from.
type unitSpec struct {
	// User is a per-user service (`--user`).
	User bool
	// Exe is the absolute path of the chute binary the service runs.
	Exe string
	// Config is the absolute path of the config it runs with.
	Config string
	// Writable are the paths the service writes besides its state directory: the watched
	// folders (sidecars, after: delete), the move_to folders and the state database's folder.
	Writable []string
}

// args is the service's command line after the binary.
func (s unitSpec) args() []string { return []string{"run", "--config", s.Config} }

// newUnitSpec builds the spec for cfg; systemState is the state directory systemd gives
// the system service (StateDirectory=chute), already writable.
func newUnitSpec(cfg *configs.Config, exe string, user bool) unitSpec {
	spec := unitSpec{User: user, Exe: exe, Config: cfg.Source}
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			spec.Writable = append(spec.Writable, p)
		}
	}
	for _, f := range cfg.Folders {
		add(f.Path)
		add(f.MoveTo)
	}
	if dir := filepath.Dir(cfg.State); user || !within(dir, "/var/lib/chute") {
		add(dir)
	}
	return spec
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// renderSystemd renders chute's systemd unit (system or user) for spec.
func renderSystemd(spec unitSpec) (string, error) {
	name := "chute.service"
	if spec.User {
		name = "chute-user.service"
	}
	var words []string
	for _, a := range append([]string{spec.Exe}, spec.args()...) {
		w, err := systemdWord(a, true)
		if err != nil {
			return "", err
		}
		words = append(words, w)
	}
	data := struct {
		ExecStart      string
		ReadWritePaths []string
		PrivateTmp     bool
	}{ExecStart: strings.Join(words, " "), PrivateTmp: true}
	// A private /tmp would hide a folder, the config or chute itself kept in /tmp.
	for _, p := range append([]string{spec.Exe, spec.Config}, spec.Writable...) {
		if within(p, "/tmp") || within(p, "/var/tmp") {
			data.PrivateTmp = false
		}
	}
	for _, p := range spec.Writable {
		// "-": a folder that does not exist yet (a move_to) does not stop the service from
		// starting; chute reports it itself.
		w, err := systemdWord("-"+p, false)
		if err != nil {
			return "", err
		}
		data.ReadWritePaths = append(data.ReadWritePaths, w)
	}
	text, err := render(name, data)
	if err != nil {
		return "", err
	}
	if err := checkUnit(text, spec.Exe); err != nil {
		return "", err
	}
	return text, nil
}

// renderLaunchd renders chute's launchd plist for spec.
func renderLaunchd(spec unitSpec, label, logPath string) (string, error) {
	data := struct {
		User           bool
		Label, LogPath string
		Args           []string
	}{spec.User, label, logPath, append([]string{spec.Exe}, spec.args()...)}
	text, err := render("chute.plist", data)
	if err != nil {
		return "", err
	}
	// A plist that does not parse as XML is never written.
	d := xml.NewDecoder(strings.NewReader(text))
	d.Strict = true
	for {
		if _, err := d.Token(); err != nil {
			if errors.Is(err, io.EOF) {
				return text, nil
			}
			return "", fmt.Errorf("launchd plist: %w", err)
		}
	}
}

func render(name string, data any) (string, error) {
	src, err := configs.UnitTemplate(name)
	if err != nil {
		return "", err
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"xml": func(s string) (string, error) {
			var b bytes.Buffer
			err := xml.EscapeText(&b, []byte(s))
			return b.String(), err
		},
	}).Parse(src)
	if err != nil {
		return "", fmt.Errorf("unit template %s: %w", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("unit template %s: %w", name, err)
	}
	return b.String(), nil
}

// systemdWord quotes one word of a unit setting: specifiers (%) are doubled, and in a
// command line so is $ (variable expansion); a word with blanks, quotes or backslashes is
// double-quoted with C escapes. Control characters cannot be written safely: an error.
func systemdWord(s string, command bool) (string, error) {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("path %q has a control character: systemd cannot be given it", s)
		}
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if command {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s, nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

// checkUnit is the verification before a unit is written: sections and settings only, the
// three sections chute's units have, and an ExecStart that runs exe.
func checkUnit(text, exe string) error {
	sections := map[string]bool{}
	section := ""
	execStart := ""
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line
			sections[section] = true
		case section != "" && strings.Contains(line, "="):
			if k, v, _ := strings.Cut(line, "="); k == "ExecStart" && section == "[Service]" {
				execStart = v
			}
		default:
			return fmt.Errorf("unit line %d is not a setting: %q", i+1, line)
		}
	}
	for _, s := range []string{"[Unit]", "[Service]", "[Install]"} {
		if !sections[s] {
			return fmt.Errorf("unit has no %s section", s)
		}
	}
	if execStart == "" {
		return errors.New("unit has no ExecStart")
	}
	if w, _ := systemdWord(exe, true); !strings.HasPrefix(execStart, w+" ") {
		return fmt.Errorf("unit's ExecStart %q does not run %s", execStart, exe)
	}
	return nil
}
