package uploader

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"runtime/debug"
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
	// A file cut short leaves the last mapped page's tail reading as zeros, and one written
	// to meanwhile has other bytes: a digest is only of the file as it was opened.
	if st, err := f.f.Stat(); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name, err)
	} else if st.Size() != f.Size || !st.ModTime().Equal(f.ModTime) {
		return nil, fmt.Errorf("read %s: %w", f.Name, ErrChangedWhileRead)
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
	own    []byte // digestChunk long, made when first needed: where a piece that cannot be mapped is read
	buf    []byte // the piece: own, or the file's pages mapped (mapped true)
	mapped bool
	left   atomic.Int32
}

// done releases the piece's mapping, if it has one.
func (p *digestPiece) done() {
	if p.mapped {
		unmapWindow(p.buf)
		p.buf, p.mapped = nil, false
	}
}

// hashFile feeds the whole of f to every hash in hs, each written by a goroutine of its own,
// while the next pieces are read. Where it can (mapWindow) it hashes the file's pages in the
// page cache where they are, rather than a copy: that copy is a tenth of a large file's hash
// time, and the hash is what a large upload waits for. It returns once every goroutine has
// ended.
func hashFile(ctx context.Context, f *File, hs []hash.Hash) error {
	free := make(chan *digestPiece, digestBuffers)
	for range digestBuffers {
		free <- &digestPiece{}
	}
	feeds := make([]chan *digestPiece, len(hs))
	faults := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		feeds[i] = make(chan *digestPiece, digestBuffers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A mapped page of a file cut short under the hash faults (SIGBUS): that is an
			// error of this pass, not a crash of the daemon.
			debug.SetPanicOnFault(true)
			for p := range feeds[i] {
				if faults[i] == nil {
					faults[i] = guardedWrite(h, p.buf)
				}
				if p.left.Add(-1) == 0 {
					p.done()
					free <- p
				}
				// A hash is all CPU: let the goroutines waiting for a core (an upload's,
				// whose socket has room again) have it between pieces.
				runtime.Gosched()
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
				free <- p
				return err
			}
			want := int(min(int64(digestChunk), f.Size-off))
			if b, ok := mapWindow(f.f, off, want); ok {
				p.buf, p.mapped = b, true
				off += int64(want)
			} else {
				if p.own == nil {
					p.own = make([]byte, digestChunk)
				}
				n, err := f.f.ReadAt(p.own[:want], off)
				off += int64(n)
				if err != nil && !(err == io.EOF && off == f.Size) {
					free <- p
					return fmt.Errorf("read %s: %w", f.Name, err)
				}
				p.buf = p.own[:n]
			}
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
	wg.Wait() // every mapped piece was released by the last hash done with it
	if err != nil {
		return err
	}
	for _, ferr := range faults {
		if ferr != nil {
			return fmt.Errorf("read %s: %w", f.Name, ferr)
		}
	}
	return nil
}

// ErrChangedWhileRead says a file's size or mtime changed while chute read it whole (for a
// digest): what was read is not the file as it was opened.
var ErrChangedWhileRead = errors.New("the file changed while it was read")

// errFileShrank is a fault on a mapped page: the file was cut short while it was hashed.
var errFileShrank = errors.New("the file was cut short while it was read")

// guardedWrite writes b to h, turning a fault on its pages into errFileShrank.
func guardedWrite(h hash.Hash, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (%v)", errFileShrank, r)
		}
	}()
	h.Write(b)
	return nil
}
