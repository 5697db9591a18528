package uploadertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// Checkpoints keeps one file's checkpoint across calls of Upload, as chute's engine does: for
// a provider's own tests of what it does when resumed. The zero value is ready to use.
type Checkpoints struct {
	// OnSave, when set (before the first Job), is called after every save with the new
	// checkpoint: a test stops or delays an upload at a step with it.
	OnSave func(cp []byte)

	mu sync.Mutex
	cp []byte
}

// Job returns a job for f that starts from the last checkpoint saved and saves into c.
func (c *Checkpoints) Job(f *uploader.File) *uploader.Job {
	return &uploader.Job{
		File:       f,
		Checkpoint: c.Last(),
		Save: func(ctx context.Context, b []byte) error {
			c.mu.Lock()
			c.cp = append([]byte(nil), b...)
			c.mu.Unlock()
			if c.OnSave != nil {
				c.OnSave(b)
			}
			return nil
		},
	}
}

// Upload runs one attempt of p for f, from the last checkpoint, within a minute.
func (c *Checkpoints) Upload(t testing.TB, p uploader.Provider, f *uploader.File) (uploader.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.Upload(ctx, c.Job(f))
}

// Last is the checkpoint saved last (nil: none).
func (c *Checkpoints) Last() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cp) == 0 {
		return nil
	}
	return append([]byte(nil), c.cp...)
}

// NewClient returns a provider's HTTP client for a test, its idle connections closed when the
// test ends.
func NewClient(t testing.TB) *uploader.Client {
	c := uploader.NewClient(uploader.ClientOptions{})
	t.Cleanup(c.CloseIdle)
	return c
}
