package store

import (
	"strings"
	"unicode/utf8"
)

// DisplayPath returns p for status output, logs and messages: unchanged when it is valid UTF-8,
// otherwise with each byte that is not part of a valid UTF-8 sequence shown as \xNN (a Latin-1
// "caf\xe9.bin"). Paths are bytes; the store keeps them exactly and only their display is
// escaped, so never use the result to open a file.
func DisplayPath(p string) string {
	if utf8.ValidString(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && n == 1 {
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[p[i]>>4])
			b.WriteByte(hex[p[i]&0xf])
		} else {
			b.WriteString(p[i : i+n])
		}
		i += n
	}
	return b.String()
}
