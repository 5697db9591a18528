package uploader

import (
	"mime"
	"path/filepath"
	"strings"
)

// videoTypes covers what watch folders hold; Go's built-in MIME table lacks most video types
// and a minimal machine may have no /etc/mime.types.
var videoTypes = map[string]string{
	".mp4": "video/mp4", ".m4v": "video/x-m4v", ".mov": "video/quicktime", ".webm": "video/webm",
	".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".wmv": "video/x-ms-wmv",
	".flv": "video/x-flv", ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".ts": "video/mp2t",
	".3gp": "video/3gpp", ".ogv": "video/ogg", ".gif": "image/gif", ".mp3": "audio/mpeg",
	".m4a": "audio/mp4", ".wav": "audio/wav", ".zip": "application/zip",
}

// ContentType returns the MIME type for a file name, from its extension;
// application/octet-stream when unknown.
func ContentType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if t, ok := videoTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
