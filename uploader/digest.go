package uploader

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// ComputeDigests reads f once and returns the digests asked for, in lower-case hex, the way
// Job.Digests holds them. The read stops when ctx ends. It reads past File.Observe: what
// observes the upload's reads does not see this pass.
func ComputeDigests(ctx context.Context, f *File, need []Digest) (map[Digest]string, error) {
	hashes := make(map[Digest]hash.Hash, len(need))
	var ws []io.Writer
	for _, d := range need {
		if _, dup := hashes[d]; dup {
			continue
		}
		var h hash.Hash
		switch d {
		case MD5:
			h = md5.New()
		case SHA256:
			h = sha256.New()
		default:
			return nil, fmt.Errorf("digest %q is not one chute computes", d)
		}
		hashes[d] = h
		ws = append(ws, h)
	}
	if len(ws) == 0 {
		return map[Digest]string{}, nil
	}
	buf := make([]byte, 256<<10)
	w := io.MultiWriter(ws...)
	for off := int64(0); off < f.Size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := f.f.ReadAt(buf[:min(int64(len(buf)), f.Size-off)], off)
		w.Write(buf[:n])
		off += int64(n)
		if err != nil && !(err == io.EOF && off == f.Size) {
			return nil, fmt.Errorf("read %s: %w", f.Name, err)
		}
	}
	out := make(map[Digest]string, len(hashes))
	for d, h := range hashes {
		out[d] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}
