package service

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/chute-dev/chute/uploader"
)

// The digest is the file's SHA-256 however a provider reads it: in one pass, resumed from an
// offset, in two passes, or not at all.
func TestDigestMatchesTheFile(t *testing.T) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i*7 + i/1000)
	}
	path := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	reads := map[string]func(f *uploader.File){
		"one pass":   func(f *uploader.File) { io.Copy(io.Discard, f.Section(0)) },
		"resumed":    func(f *uploader.File) { io.Copy(io.Discard, f.Section(1<<20+5)) },
		"two passes": func(f *uploader.File) { io.Copy(io.Discard, f.Section(0)); io.Copy(io.Discard, f.Section(0)) },
		"cut and again": func(f *uploader.File) {
			io.CopyN(io.Discard, f.Section(0), 1<<20)
			io.Copy(io.Discard, f.Section(1<<19))
		},
		"none": func(f *uploader.File) {},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			f, err := uploader.OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d := newDigest()
			f.Observe(d.see)
			read(f)
			got, err := d.finish(f)
			if err != nil || got != want {
				t.Fatalf("digest %s (%v), want %s", got, err, want)
			}
		})
	}
}
