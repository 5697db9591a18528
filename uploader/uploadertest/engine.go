package uploadertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// Engine plays chute's engine for one file in a provider's own tests: it keeps the last
// checkpoint saved across calls of Upload (in memory), computes the digests a DigestNeeder
// asks for once, before the first call, and keeps them for every retry. The zero value is
// ready; an Engine is safe for concurrent use.
type Engine struct {
	// OnSave, when set, is called after each checkpoint is kept, with it and the number of
	// saves so far (1 for the first).
	OnSave func(cp []byte, saves int)
	// OnProgress, when set, is told each progress report.
	OnProgress func(sent int64)

	mu      sync.Mutex
	cp      []byte
	saves   int
	digests map[uploader.Digest]string
}

// Job returns the job of the next call of Upload for f: the checkpoint saved last, and the
// digests p asks for (p nil: none).
func (e *Engine) Job(t testing.TB, p uploader.Provider, f *uploader.File) *uploader.Job {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if dn, ok := p.(uploader.DigestNeeder); ok && e.digests == nil && len(dn.NeedDigests()) > 0 {
		d, err := uploader.ComputeDigests(context.Background(), f, dn.NeedDigests())
		if err != nil {
			t.Fatalf("digests: %v", err)
		}
		e.digests = d
	}
	var cp []byte
	if len(e.cp) > 0 {
		cp = append([]byte(nil), e.cp...)
	}
	return &uploader.Job{
		File:       f,
		Checkpoint: cp,
		Digests:    e.digests,
		Save: func(ctx context.Context, b []byte) error {
			e.mu.Lock()
			e.cp = append([]byte(nil), b...)
			e.saves++
			n, fn := e.saves, e.OnSave
			e.mu.Unlock()
			if fn != nil {
				fn(b, n)
			}
			return nil
		},
		Progress: func(n int64) {
			e.mu.Lock()
			fn := e.OnProgress
			e.mu.Unlock()
			if fn != nil {
				fn(n)
			}
		},
	}
}

// Upload makes one call of p.Upload for f, bounded by a minute.
func (e *Engine) Upload(t testing.TB, p uploader.Provider, f *uploader.File) (uploader.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.Upload(ctx, e.Job(t, p, f))
}

// Checkpoint returns the checkpoint saved last (nil: none).
func (e *Engine) Checkpoint() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]byte(nil), e.cp...)
}

// SetCheckpoint replaces the checkpoint, as a test of an old or damaged one does.
func (e *Engine) SetCheckpoint(cp []byte) {
	e.mu.Lock()
	e.cp = append([]byte(nil), cp...)
	e.mu.Unlock()
}

// Saves counts the checkpoints saved.
func (e *Engine) Saves() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.saves
}
