package configs

import (
	"embed"
	"fmt"
)

//go:embed units/*.tmpl
var units embed.FS

// UnitTemplate returns one of the service-manager templates `chute install` renders
// (text/template): "chute.service" (systemd system unit), "chute-user.service" (systemd
// user unit), "chute.plist" (launchd).
func UnitTemplate(name string) (string, error) {
	b, err := units.ReadFile("units/" + name + ".tmpl")
	if err != nil {
		return "", fmt.Errorf("no unit template %q", name)
	}
	return string(b), nil
}
