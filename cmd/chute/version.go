package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func cmdVersion(stdout io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	writeVersion(stdout, version, bi)
	return nil
}

// writeVersion prints the version chute was built as: the -X main.version stamp, the module
// version (a tag when built with `go install ...@vX`, "(devel)" from a checkout) and the VCS
// revision, which Go records only when the build ran in a checkout with -buildvcs on.
func writeVersion(w io.Writer, stamp string, bi *debug.BuildInfo) {
	module := "unknown"
	if bi != nil && bi.Main.Version != "" {
		module = bi.Main.Version
	}
	// A release build is stamped; otherwise the module version is the best name there is.
	name := stamp
	if name == "dev" && module != "unknown" && module != "(devel)" {
		name = module
	}
	fmt.Fprintf(w, "chute %s\n", name)
	fmt.Fprintf(w, "module: %s\n", module)
	settings := map[string]string{}
	if bi != nil {
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += " (modified)"
		}
		fmt.Fprintf(w, "revision: %s\n", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(w, "commit time: %s\n", t)
		}
	} else {
		fmt.Fprintln(w, "revision: unknown (built without VCS information, e.g. with -buildvcs=false or outside a git checkout)")
	}
	fmt.Fprintf(w, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
