package uploader

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// ComputeDigests reads f once and returns the digests asked for, in lower-case hex, the way
// Job.Digests holds them. The read stops when ctx ends. It reads past File.Observe: what
// observes the upload's reads does not see this pass. Each digest is computed on its own
// goroutine while the next part of the file is read, so the pass takes about as long as the
// slowest digest (md5, about 500 MiB/s), not as long as all of them one after the other.
func ComputeDigests(ctx context.Context, f *File, need []Digest) (map[Digest]string, error) {
	hashes := make(map[Digest]hash.Hash, len(need))
	var ws []hash.Hash
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
	if err := hashFile(ctx, f, ws); err != nil {
		return nil, err
	}
	out := make(map[Digest]string, len(hashes))
	for d, h := range hashes {
		out[d] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// Digest passes read the file in digestChunk pieces, digestBuffers of them in flight.
const (
	digestChunk   = 1 << 20
	digestBuffers = 4
)

// digestPiece is one piece of the file on its way to the hashes; the last hash done with it
// hands it back for the next read.
type digestPiece struct {
	buf  []byte // digestChunk long
	n    int
	left atomic.Int32
}

// hashFile feeds the whole of f to every hash in hs, each written by a goroutine of its own,
// while the next pieces are read. It returns once every goroutine has ended.
func hashFile(ctx context.Context, f *File, hs []hash.Hash) error {
	free := make(chan *digestPiece, digestBuffers)
	for range digestBuffers {
		free <- &digestPiece{buf: make([]byte, digestChunk)}
	}
	feeds := make([]chan *digestPiece, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		feeds[i] = make(chan *digestPiece, digestBuffers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range feeds[i] {
				h.Write(p.buf[:p.n])
				if p.left.Add(-1) == 0 {
					free <- p
				}
			}
		}()
	}
	err := func() error {
		for off := int64(0); off < f.Size; {
			var p *digestPiece
			select {
			case p = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := f.f.ReadAt(p.buf[:min(int64(digestChunk), f.Size-off)], off)
			off += int64(n)
			if err != nil && !(err == io.EOF && off == f.Size) {
				return fmt.Errorf("read %s: %w", f.Name, err)
			}
			p.n = n
			p.left.Store(int32(len(hs)))
			for _, feed := range feeds {
				feed <- p
			}
		}
		return nil
	}()
	for _, feed := range feeds {
		close(feed)
	}
	wg.Wait()
	return err
}
