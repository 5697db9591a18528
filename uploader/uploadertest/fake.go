package uploadertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/chute-dev/chute/uploader"
)

// Fake is a provider whose behaviour is its function fields, for the engine's tests: rate
// limits, attempts, digests and after-actions are tested without a server in the way. The
// zero value reads the whole file (so that what observes the upload's reads sees every byte),
// reports progress and succeeds. Fake is safe for concurrent use.
type Fake struct {
	// UploadFunc, when set, is Upload's behaviour; call is the 1-based number of this call.
	UploadFunc func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error)
	// CheckFunc, when set, is Check's behaviour (nil: nil).
	CheckFunc func(ctx context.Context) error
	// Digests is what NeedDigests returns: the digests the engine must fill in (nil: none).
	Digests []uploader.Digest

	mu    sync.Mutex
	calls []FakeCall
}

// FakeCall is what one Upload call was given.
type FakeCall struct {
	// Name and Size are the job's file's.
	Name string
	Size int64
	// Checkpoint is the checkpoint the call started from.
	Checkpoint []byte
	// Digests are the job's digests when the call started.
	Digests map[uploader.Digest]string
}

var (
	_ uploader.Provider     = (*Fake)(nil)
	_ uploader.Checker      = (*Fake)(nil)
	_ uploader.DigestNeeder = (*Fake)(nil)
)

// Upload records the call and runs UploadFunc, or ReadAll.
func (f *Fake) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, FakeCall{
		Name:       job.File.Name,
		Size:       job.File.Size,
		Checkpoint: append([]byte(nil), job.Checkpoint...),
		Digests:    maps.Clone(job.Digests),
	})
	n := len(f.calls)
	f.mu.Unlock()
	if f.UploadFunc != nil {
		return f.UploadFunc(ctx, job, n)
	}
	return ReadAll(ctx, job)
}

// ReadAll is the Fake's default upload: it reads the whole file from the start, reporting
// progress, and returns a result named after it (fake:<name>).
func ReadAll(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	buf := make([]byte, 256<<10)
	r := job.File.Section(0)
	var sent int64
	for {
		if err := ctx.Err(); err != nil {
			return uploader.Result{}, err
		}
		n, err := r.Read(buf)
		sent += int64(n)
		if n > 0 {
			job.ReportProgress(sent)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return uploader.Result{}, fmt.Errorf("fake: read %s: %w", job.File.Name, err)
		}
	}
	return uploader.Result{ID: job.File.Name, URL: "fake:" + job.File.Name}, nil
}

// Check runs CheckFunc.
func (f *Fake) Check(ctx context.Context) error {
	if f.CheckFunc != nil {
		return f.CheckFunc(ctx)
	}
	return nil
}

// NeedDigests returns f.Digests.
func (f *Fake) NeedDigests() []uploader.Digest { return f.Digests }

// Calls returns the Upload calls so far, in order.
func (f *Fake) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakeCall(nil), f.calls...)
}

// FakeType is a provider type named name whose every New returns f, for a registry in tests.
func FakeType(name string, f *Fake) uploader.Type {
	return uploader.Type{
		Name:       name,
		NewOptions: func() any { return &struct{}{} },
		New:        func(uploader.Env, any) (uploader.Provider, error) { return f, nil },
	}
}
