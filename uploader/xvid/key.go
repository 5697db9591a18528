package xvid

import (
	"fmt"
	"path"
	"strings"

	"github.com/chute-dev/chute/uploader"
)

// DefaultObjectKey is the object key template's default: the file's path under its watched
// folder, so that folder structure is kept and two clip.mp4 in different subfolders do not
// collide.
const DefaultObjectKey = "{path}"

// keyPlaceholders are what an object key template may hold.
var keyPlaceholders = map[string]func(f *uploader.File) string{
	// path is the file's path under the watched folder, with / between folders.
	"path": relPath,
	// dir is the folder part of path ("" for a file at the top of the folder).
	"dir": func(f *uploader.File) string {
		d := path.Dir(relPath(f))
		if d == "." {
			return ""
		}
		return d
	},
	// name is the file's base name.
	"name": func(f *uploader.File) string { return f.Name },
	// stem is the base name without its extension.
	"stem": func(f *uploader.File) string { return strings.TrimSuffix(f.Name, path.Ext(f.Name)) },
	// ext is the extension without its dot ("" when none).
	"ext": func(f *uploader.File) string { return strings.TrimPrefix(path.Ext(f.Name), ".") },
	// date is the file's modification day (UTC), YYYY-MM-DD: the same on every attempt.
	"date": func(f *uploader.File) string { return f.ModTime.UTC().Format("2006-01-02") },
}

// relPath is the file's path under its watched folder, or its name when the engine did not
// say (uploader.File.RelPath empty).
func relPath(f *uploader.File) string {
	if f.RelPath == "" {
		return f.Name
	}
	return strings.ReplaceAll(f.RelPath, "\\", "/")
}

// checkKeyTemplate reports what is wrong with an object key template, or "".
func checkKeyTemplate(tmpl string) string {
	if strings.TrimSpace(tmpl) == "" {
		return "must not be empty (default " + DefaultObjectKey + ")"
	}
	rest := tmpl
	for {
		open := strings.IndexByte(rest, '{')
		close := strings.IndexByte(rest, '}')
		switch {
		case open < 0 && close < 0:
			return ""
		case open < 0 || (close >= 0 && close < open):
			return fmt.Sprintf("%q has a } without its {", tmpl)
		case close < 0:
			return fmt.Sprintf("%q has a { without its }", tmpl)
		}
		name := rest[open+1 : close]
		if _, ok := keyPlaceholders[name]; !ok {
			return fmt.Sprintf("%q: unknown placeholder {%s}; known: {path} {dir} {name} {stem} {ext} {date}", tmpl, name)
		}
		rest = rest[close+1:]
	}
}

// objectKey fills the template (checked by checkKeyTemplate) for f: placeholders replaced,
// empty folder levels and a leading / removed.
func objectKey(tmpl string, f *uploader.File) (string, error) {
	var b strings.Builder
	rest := tmpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			break
		}
		close := strings.IndexByte(rest[open:], '}') + open
		b.WriteString(rest[:open])
		b.WriteString(keyPlaceholders[rest[open+1:close]](f))
		rest = rest[close+1:]
	}
	parts := strings.Split(b.String(), "/")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	key := strings.Join(kept, "/")
	switch {
	case key == "":
		return "", uploader.Permanentf("xvid: the object key template %q gives an empty key for %s", tmpl, f.Name)
	case len(key) > maxObjectKey:
		return "", uploader.Permanentf("xvid: the object key for %s is %d bytes long, more than S3's %d", f.Name, len(key), maxObjectKey)
	}
	return key, nil
}

// maxObjectKey leaves room under S3's 1024-byte key limit for Xvid's tmp/<pipeline_id>/ prefix.
const maxObjectKey = 1024 - len("tmp/") - 24 - 1
