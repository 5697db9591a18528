package gcore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/chute-dev/chute/uploader"
)

// maxURLFile is the largest *.url file read: one URL, or a Windows Internet Shortcut.
const maxURLFile = 4 << 10

// isURLFile tells whether name is a *.url file, which asks Gcore to copy a video from a URL.
func isURLFile(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".url")
}

// readOrigin reads the URL a *.url file holds: its content is one https URL, or a Windows
// Internet Shortcut ("[InternetShortcut]" with a "URL=" line), which is what dragging a link
// from a browser into a folder makes.
func readOrigin(f *uploader.File) (string, error) {
	if f.Size > maxURLFile {
		return "", uploader.Permanentf("gcore: %s is %d bytes: a .url file holds one https URL (at most %d bytes)", f.Name, f.Size, maxURLFile)
	}
	buf := make([]byte, f.Size)
	if n, err := f.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		return "", fmt.Errorf("gcore: read %s: %w", f.Name, err)
	}
	text := strings.TrimSpace(strings.TrimPrefix(string(buf), "\ufeff"))
	if first, _, _ := strings.Cut(text, "\n"); strings.EqualFold(strings.TrimSpace(first), "[InternetShortcut]") {
		text = ""
		sc := bufio.NewScanner(strings.NewReader(string(buf)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && strings.EqualFold(k, "URL") {
				text = strings.TrimSpace(v)
				break
			}
		}
	}
	if text == "" {
		return "", uploader.Permanentf("gcore: %s holds no URL: a .url file holds the https URL of a video file for Gcore to copy", f.Name)
	}
	if strings.ContainsAny(text, " \t\r\n") {
		return "", uploader.Permanentf("gcore: %s holds more than one URL: a .url file holds exactly one https URL", f.Name)
	}
	if err := checkOrigin(text); err != nil {
		return "", uploader.Permanentf("gcore: %s: %w", f.Name, err)
	}
	return text, nil
}

// checkOrigin refuses what Gcore refuses to copy: anything but an https URL of an original
// file, such as an HLS or DASH playlist. The URL is shown without its query, where signed
// links keep their credentials.
func checkOrigin(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%q is not a URL: give the https URL of a video file", uploader.RedactURL(raw))
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return fmt.Errorf("%s is not an https URL: Gcore copies only from https URLs", uploader.RedactURL(raw))
	}
	p := strings.ToLower(u.Path)
	if strings.HasSuffix(p, ".m3u8") || strings.HasSuffix(p, ".mpd") {
		return fmt.Errorf("%s is an HLS or DASH playlist: Gcore copies only an original video file (such as .mp4), not HLS or DASH", uploader.RedactURL(raw))
	}
	return nil
}
