// Package uploadertest is the conformance suite every provider runs against its emulator, as
// rclone's fstests and restic's backend suite do: each provider's test is a few lines that
// fill in a Harness and call Run.
package uploadertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chute-dev/chute/uploader"
)

// Stats are the emulator's counters.
type Stats struct {
	// Created counts remote objects created: uploads, video entities, tickets; whatever a
	// repeated step would make twice.
	Created int
	// BytesReceived counts file bytes the server accepted into uploads.
	BytesReceived int64
}

// Harness connects the suite to one provider and its emulator.
type Harness struct {
	// NewProvider returns a provider pointed at the emulator, using client.
	NewProvider func(t testing.TB, client *uploader.Client) uploader.Provider
	// NewBadAuthProvider returns a provider whose credentials the emulator refuses.
	NewBadAuthProvider func(t testing.TB, client *uploader.Client) uploader.Provider
	// Secret is a credential NewProvider uses; it must never appear in an error.
	Secret string
	// Stored opens the bytes the emulator holds for a finished upload.
	Stored func(t testing.TB, res uploader.Result) (io.ReadCloser, error)
	// Stats reads the emulator's counters.
	Stats func() Stats
	// FailNext makes the emulator answer the next n API requests with status, with a
	// Retry-After of retryAfter when it is > 0.
	FailNext func(n int, status int, retryAfter time.Duration)
	// Listener is the emulator's upload listener, for cutting connections mid-upload.
	Listener *Listener
	// Stall makes the emulator hold every request without answering until called with false.
	Stall func(on bool)
	// Resumable says an interrupted upload continues where the server stopped. A provider
	// that cannot resume (UploadGig) leaves it false: a cut upload is then re-sent whole,
	// exactly once, and the emulator still stores one file.
	Resumable bool
	// RateLimit, when set, makes the emulator answer the next request with the service's own
	// account-wide rate-limit answer (UploadGig's code "-3", RedGIFs' 429 with error.delay),
	// asking for a wait of after. The upload must then fail RateLimited, asking for after.
	RateLimit func(after time.Duration)
	// AccountRateLimit says a 429 limits the provider's whole account (RedGIFs): it must be
	// classed RateLimited, with the wait asked for, rather than RetryAfter.
	AccountRateLimit bool
}

// Sizes are the file sizes every provider must deliver byte for byte.
var Sizes = []int64{0, 1 << 10, 20 << 20}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Run("Sizes", func(t *testing.T) { testSizes(t, h) })
	t.Run("ResumeAfterCancel", func(t *testing.T) { testResume(t, h) })
	t.Run("TransientStatus", func(t *testing.T) { testTransient(t, h, 503, 0) })
	t.Run("RetryAfter", func(t *testing.T) { testTransient(t, h, 429, 2*time.Second) })
	t.Run("ConnectionCut", func(t *testing.T) { testCut(t, h) })
	t.Run("RateLimited", func(t *testing.T) { testRateLimited(t, h) })
	t.Run("BadCredentials", func(t *testing.T) { testBadAuth(t, h) })
	t.Run("CancelReturnsPromptly", func(t *testing.T) { testCancel(t, h) })
}

// attempt is the calls of Upload for one file, as the engine makes them, with what the
// suite checks: the bytes the server held at the first save, the first progress reported.
type attempt struct {
	Engine
	mu sync.Mutex
	// receivedAtFirstSave is Stats().BytesReceived when the first checkpoint was saved.
	receivedAtFirstSave int64
	firstProgress       int64
	sawProgress         bool
	// sent is the most progress the current call reported: what it sent at least.
	sent int64
}

// sentLast is the most progress the last call reported.
func (a *attempt) sentLast() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent
}

func (a *attempt) job(t testing.TB, h Harness, p uploader.Provider, f *uploader.File, progress func(int64)) *uploader.Job {
	t.Helper()
	a.mu.Lock()
	a.sawProgress, a.sent = false, 0
	a.mu.Unlock()
	a.OnSave = func(_ []byte, saves int) {
		if saves == 1 {
			got := h.Stats().BytesReceived
			a.mu.Lock()
			a.receivedAtFirstSave = got
			a.mu.Unlock()
		}
	}
	a.OnProgress = func(n int64) {
		a.mu.Lock()
		if !a.sawProgress {
			a.sawProgress = true
			a.firstProgress = n
		}
		a.sent = max(a.sent, n)
		a.mu.Unlock()
		if progress != nil {
			progress(n)
		}
	}
	return a.Job(t, p, f)
}

// until retries Upload the way the engine does (transient and retry-after errors again, with
// the saved checkpoint) until it succeeds or fails for good.
func (a *attempt) until(t testing.TB, h Harness, p uploader.Provider, f *uploader.File, maxTries int) (uploader.Result, error) {
	var err error
	for i := 0; i < maxTries; i++ {
		var res uploader.Result
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err = p.Upload(ctx, a.job(t, h, p, f, nil))
		cancel()
		if err == nil {
			return res, nil
		}
		if uploader.IsPermanent(err) {
			return res, err
		}
	}
	return uploader.Result{}, err
}

func newClient(t testing.TB) *uploader.Client {
	c := uploader.NewClient(uploader.ClientOptions{})
	t.Cleanup(c.CloseIdle)
	return c
}

// MakeFile writes a file of size random bytes in dir and returns its path.
func MakeFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// OpenFile opens path for upload and closes it when the test ends.
func OpenFile(t testing.TB, path string) *uploader.File {
	t.Helper()
	f, err := uploader.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// SameBytes fails t unless what the emulator stored for res equals the file at path.
func SameBytes(t testing.TB, h Harness, res uploader.Result, path string) {
	t.Helper()
	rc, err := h.Stored(t, res)
	if err != nil {
		t.Fatalf("the emulator has nothing stored for %+v: %v", res, err)
	}
	defer rc.Close()
	got := sha256.New()
	n, err := io.Copy(got, rc)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, _ := io.Copy(want, f)
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("stored bytes differ from the file: stored %d bytes, file has %d", n, m)
	}
}

func leakCheck(t *testing.T, client *uploader.Client) {
	// The emulator's own goroutines (server connections) are not the provider's.
	opts := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("net/http.(*conn).serve")}
	t.Cleanup(func() {
		client.CloseIdle()
		if err := goleak.Find(opts...); err != nil {
			t.Errorf("goroutines left behind: %v", err)
		}
	})
}

func testSizes(t *testing.T, h Harness) {
	client := newClient(t)
	leakCheck(t, client)
	p := h.NewProvider(t, client)
	dir := t.TempDir()
	for _, size := range Sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := MakeFile(t, dir, fmt.Sprintf("clip %d ünï'\".mp4", size), size)
			before := h.Stats()
			var a attempt
			res, err := p.Upload(context.Background(), a.job(t, h, p, OpenFile(t, path), nil))
			if err != nil {
				t.Fatalf("upload of %d bytes: %v", size, err)
			}
			if res.ID == "" || res.URL == "" {
				t.Fatalf("result lacks an id or url: %+v", res)
			}
			SameBytes(t, h, res, path)
			after := h.Stats()
			if got := after.Created - before.Created; got < 1 {
				t.Fatalf("emulator counts %d objects created for one file", got)
			}
			if got := after.BytesReceived - before.BytesReceived; got != size {
				t.Fatalf("emulator received %d bytes for a %d-byte file", got, size)
			}
			if a.Saves() > 0 && a.receivedAtFirstSave != before.BytesReceived {
				t.Fatalf("first checkpoint saved after %d bytes were sent: it must come before", a.receivedAtFirstSave-before.BytesReceived)
			}
		})
	}
}

// setup makes a provider with a client of its own (checked for leaked goroutines), runs one
// clean upload to learn how many objects one file makes (per), and opens a new file of size
// bytes to upload; before is the counters then.
func setup(t *testing.T, h Harness, name string, size int64) (p uploader.Provider, path string, f *uploader.File, before Stats, per int) {
	t.Helper()
	client := newClient(t)
	leakCheck(t, client)
	p = h.NewProvider(t, client)
	dir := t.TempDir()
	per = created(t, h, p, dir)
	path = MakeFile(t, dir, name, size)
	return p, path, OpenFile(t, path), h.Stats(), per
}

// settled returns the emulator's counters once they stop moving: after a cancel or a cut,
// the server may still be reading what was in flight.
func settled(h Harness) Stats {
	last := h.Stats()
	for range 40 {
		time.Sleep(50 * time.Millisecond)
		now := h.Stats()
		if now == last {
			break
		}
		last = now
	}
	return last
}

// created runs one clean upload and returns how many objects the emulator counts for it, so
// that tests with faults can demand no more than that.
func created(t *testing.T, h Harness, p uploader.Provider, dir string) int {
	path := MakeFile(t, dir, "baseline.mp4", 1<<10)
	before := h.Stats().Created
	var a attempt
	if _, err := a.until(t, h, p, OpenFile(t, path), 1); err != nil {
		t.Fatalf("baseline upload: %v", err)
	}
	return h.Stats().Created - before
}

func testResume(t *testing.T, h Harness) {
	const size = 64 << 20
	p, path, f, before, per := setup(t, h, "big.mp4", size)

	var a attempt
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := p.Upload(ctx, a.job(t, h, p, f, func(n int64) {
		if n >= size/2 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("upload cancelled half-way returned %v, want context.Canceled", err)
	}
	if h.Resumable && a.Checkpoint() == nil {
		t.Fatal("no checkpoint was saved before the upload was cancelled")
	}
	mid, sent := settled(h), a.sentLast()
	if mid.BytesReceived-before.BytesReceived >= size {
		t.Fatal("the whole file arrived before the cancel: the test proves nothing")
	}
	after, done := finish(t, h, &a, p, f, path, "the cancel", before, mid, sent, per)
	if done {
		return
	}
	if a.firstProgress == 0 && mid.BytesReceived > before.BytesReceived {
		t.Errorf("resume started from 0 though the server held %d bytes", mid.BytesReceived-before.BytesReceived)
	}
	if got := after.BytesReceived - before.BytesReceived; got > size+size/20 {
		t.Errorf("server received %d bytes for a %d-byte file (%.2fx): resume re-sent what it had", got, size, float64(got)/size)
	}
}

// finish retries an interrupted upload (after what) to its end and checks that it made no
// more objects than a clean upload (per); for a provider that cannot resume, that the file
// was re-sent whole, once: at least the whole file since mid, and no more in all than the
// interrupted call sent (the server may still have been reading it at mid) and one file. It
// returns the final counters, and done when nothing is left to check.
func finish(t *testing.T, h Harness, a *attempt, p uploader.Provider, f *uploader.File, path, what string, before, mid Stats, sent int64, per int) (Stats, bool) {
	t.Helper()
	res, err := a.until(t, h, p, f, 3)
	if err != nil {
		t.Fatalf("retry after %s: %v", what, err)
	}
	SameBytes(t, h, res, path)
	after := h.Stats()
	if got := after.Created - before.Created; got != per {
		t.Errorf("retry after %s created %d objects, a clean upload creates %d", what, got, per)
	}
	if h.Resumable {
		return after, false
	}
	if got, all := after.BytesReceived-mid.BytesReceived, after.BytesReceived-before.BytesReceived; got < f.Size || all > sent+f.Size {
		t.Errorf("after %s the server received %d bytes (%d in all, %d of them sent before) of a %d-byte file: a provider that cannot resume re-sends it whole, once", what, got, all, sent, f.Size)
	}
	return after, true
}

func testTransient(t *testing.T, h Harness, status int, retryAfter time.Duration) {
	p, path, f, before, per := setup(t, h, "flaky.mp4", 1<<20)
	h.FailNext(1, status, retryAfter)
	var a attempt
	_, err := p.Upload(context.Background(), a.job(t, h, p, f, nil))
	if err == nil {
		t.Fatalf("upload succeeded though the emulator answered %d", status)
	}
	class, after := uploader.Classify(err)
	want := uploader.Transient
	switch {
	case retryAfter > 0 && status == http.StatusTooManyRequests && h.AccountRateLimit:
		want = uploader.RateLimited
	case retryAfter > 0:
		want = uploader.RetryAfter
	}
	if class != want {
		t.Fatalf("answer %d classed %v, want %v (error: %v)", status, class, want, err)
	}
	if retryAfter > 0 && after != retryAfter {
		t.Fatalf("Retry-After %v read as %v", retryAfter, after)
	}
	res, err := a.until(t, h, p, f, 3)
	if err != nil {
		t.Fatalf("retry after %d: %v", status, err)
	}
	SameBytes(t, h, res, path)
	if got := h.Stats().Created - before.Created; got != per {
		t.Errorf("retry created %d objects, a clean upload creates %d", got, per)
	}
}

func testCut(t *testing.T, h Harness) {
	const size = 20 << 20
	p, path, f, before, per := setup(t, h, "cut.mp4", size)
	h.Listener.CutAfter(size / 3)
	var a attempt
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := p.Upload(ctx, a.job(t, h, p, f, nil))
	if err == nil {
		t.Fatal("upload succeeded through a cut connection")
	}
	if uploader.IsPermanent(err) {
		t.Fatalf("a cut connection was classed permanent: %v", err)
	}
	mid, sent := settled(h), a.sentLast()
	after, done := finish(t, h, &a, p, f, path, "a cut", before, mid, sent, per)
	if done {
		return
	}
	if got := after.BytesReceived - before.BytesReceived; got > size*12/10 {
		t.Errorf("server received %d bytes for a %d-byte file after a cut", got, size)
	}
}

func testBadAuth(t *testing.T, h Harness) {
	client := newClient(t)
	leakCheck(t, client)
	p := h.NewBadAuthProvider(t, client)
	path := MakeFile(t, t.TempDir(), "denied.mp4", 1<<10)
	var a attempt
	_, err := p.Upload(context.Background(), a.job(t, h, p, OpenFile(t, path), nil))
	if err == nil {
		t.Fatal("upload with refused credentials succeeded")
	}
	if !uploader.IsPermanent(err) {
		t.Fatalf("refused credentials classed %v, want permanent: %v", func() uploader.Class { c, _ := uploader.Classify(err); return c }(), err)
	}
	if h.Secret != "" && strings.Contains(err.Error(), h.Secret) {
		t.Fatalf("the error shows the secret: %v", err)
	}
}

func testCancel(t *testing.T, h Harness) {
	client := newClient(t)
	leakCheck(t, client)
	p := h.NewProvider(t, client)
	path := MakeFile(t, t.TempDir(), "stalled.mp4", 1<<20)
	f := OpenFile(t, path)
	h.Stall(true)
	defer h.Stall(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var a attempt
		_, err := p.Upload(ctx, a.job(t, h, p, f, nil))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let it reach the stalled server
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled upload returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		h.Stall(false)
		<-done
		t.Fatal("Upload did not return within 1s of its context being cancelled")
	}
}

func testRateLimited(t *testing.T, h Harness) {
	if h.RateLimit == nil {
		t.Skip("the service has no account-wide rate-limit answer (Harness.RateLimit is nil)")
	}
	p, path, f, before, per := setup(t, h, "limited.mp4", 1<<20)
	const wait = 90 * time.Second
	h.RateLimit(wait)
	var a attempt
	_, err := p.Upload(context.Background(), a.job(t, h, p, f, nil))
	if class, after := uploader.Classify(err); class != uploader.RateLimited || after != wait {
		t.Fatalf("the rate-limit answer gave %v classed %v after %v, want rate-limited after %v", err, class, after, wait)
	}
	res, err := a.until(t, h, p, f, 3)
	if err != nil {
		t.Fatalf("upload once the limit passed: %v", err)
	}
	SameBytes(t, h, res, path)
	if got := h.Stats().Created - before.Created; got != per {
		t.Errorf("a rate-limited upload created %d objects, a clean upload creates %d", got, per)
	}
}
