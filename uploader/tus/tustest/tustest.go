// Package tustest runs a real tusd (its handler and filestore, in-process) for tests and for
// `chute demo`, with the counters and fault knobs the conformance suite uses.
package tustest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"golang.org/x/exp/slog"

	"github.com/chute-dev/chute/uploader/uploadertest"
)

// Options configure a Server.
type Options struct {
	// Dir holds the uploads (required).
	Dir string
	// BasePath is where uploads are created (default "/files/").
	BasePath string
	// MaxSize is the largest upload accepted (0: no limit).
	MaxSize int64
	// PreCreate, when set, can refuse an upload before it is created (tusd's pre-create hook).
	PreCreate func(hook tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error)
	// Logs receives tusd's logs as text (nil: discarded).
	Logs io.Writer
	// AfterRequest, when set, is called after tusd answered a request, with the answer's
	// status code and headers.
	AfterRequest func(r *http.Request, status int, header http.Header)
}

// Server is a tusd on loopback.
type Server struct {
	// URL is the creation URL, e.g. http://127.0.0.1:PORT/files/.
	URL      string
	Listener *uploadertest.Listener
	dir      string
	base     string
	after    func(r *http.Request, status int, header http.Header)
	srv      *http.Server
	done     chan struct{}
	handler  http.Handler

	created  atomic.Int64
	received atomic.Int64
	// throttle is the most PATCH bytes a second tusd reads, all uploads together (0: no limit).
	throttle atomic.Int64

	mu        sync.Mutex
	failLeft  int
	failCode  int
	failAfter time.Duration
	gate      uploadertest.Gate
	// uploadLocks queue the requests for one upload (see lockUpload).
	uploadLocks map[string]chan struct{}
}

// Start serves a tusd on a free loopback port.
func Start(opts Options) (*Server, error) {
	h, err := NewHandler(opts)
	if err != nil {
		return nil, err
	}
	l, err := uploadertest.Listen()
	if err != nil {
		return nil, err
	}
	s := h
	s.Listener = l
	s.URL = "http://" + l.Addr().String() + s.basePath(opts)
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(l)
	}()
	return s, nil
}

func (s *Server) basePath(opts Options) string {
	if opts.BasePath == "" {
		return "/files/"
	}
	return opts.BasePath
}

// NewHandler returns the server as an http.Handler, for mounting under another server (the
// Gcore emulator's upload hosts). Its URL and Listener are left empty.
func NewHandler(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("tustest: Dir is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	logs := opts.Logs
	if logs == nil {
		logs = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(logs, nil)) // tusd logs through x/exp/slog
	store := filestore.New(opts.Dir)
	composer := tusd.NewStoreComposer()
	store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	base := opts.BasePath
	if base == "" {
		base = "/files/"
	}
	s := &Server{dir: opts.Dir, base: base, after: opts.AfterRequest, uploadLocks: make(map[string]chan struct{})}
	h, err := tusd.NewHandler(tusd.Config{
		BasePath:                base,
		StoreComposer:           composer,
		MaxSize:                 opts.MaxSize,
		Logger:                  logger,
		PreUploadCreateCallback: opts.PreCreate,
		// tusd keeps a goroutine per request for this long after it ends; a short wait is
		// enough for the filestore, which writes as it reads.
		GracefulRequestCompletionTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("tustest: %w", err)
	}
	s.handler = http.StripPrefix(strings.TrimSuffix(base, "/"), h)
	return s, nil
}

// ServeHTTP counts, injects faults, then hands the request to tusd.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.gate.Wait(r.Context()) {
		return
	}
	if code, after, ok := s.takeFault(); ok {
		if after > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(after/time.Second)))
		}
		http.Error(w, "injected fault", code)
		return
	}
	if r.Method == http.MethodPatch && r.Body != nil {
		r.Body = &countingBody{ReadCloser: r.Body, n: &s.received, throttle: &s.throttle}
	}
	if id := strings.TrimPrefix(r.URL.Path, s.base); id != r.URL.Path && id != "" && r.Method != http.MethodPost {
		release, ok := s.lockUpload(r.Context(), id)
		if !ok {
			return // the client left while waiting
		}
		defer release()
	}
	rec := &statusRecorder{ResponseWriter: w}
	// tusd reads its per-request state from a goroutine woken by the request's context; when
	// a client vanishes mid-PATCH that wake-up has no happens-before edge with the handler
	// (a data race the race detector reports in tusd itself). Handing tusd a context that is
	// cancelled only after the handler returns gives it one; tusd still sees the cut as a
	// failed body read, and keeps what it received.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	s.handler.ServeHTTP(rec, r.WithContext(ctx))
	cancel()
	if r.Method == http.MethodPost && rec.code == http.StatusCreated {
		s.created.Add(1)
	}
	if s.after != nil {
		s.after(r, rec.code, w.Header())
	}
}

// lockUpload lets one request at a time reach tusd for an upload. tusd itself interrupts the
// request holding an upload's lock when a newer one asks for it, and v2.10.1 races with
// itself when it does (the race detector flags it). Queueing here gives a client the same
// outcome: the earlier request of a client that went away ends as soon as its connection's
// close is read. It returns false when ctx ends first.
func (s *Server) lockUpload(ctx context.Context, id string) (release func(), ok bool) {
	s.mu.Lock()
	sem, found := s.uploadLocks[id]
	if !found {
		sem = make(chan struct{}, 1)
		s.uploadLocks[id] = sem
	}
	s.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-ctx.Done():
		return nil, false
	}
}

func (s *Server) takeFault() (int, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failLeft <= 0 {
		return 0, 0, false
	}
	s.failLeft--
	return s.failCode, s.failAfter, true
}

// FailNext answers the next n requests with status (and Retry-After when after > 0).
func (s *Server) FailNext(n, status int, after time.Duration) {
	s.mu.Lock()
	s.failLeft, s.failCode, s.failAfter = n, status, after
	s.mu.Unlock()
}

// Stall holds every request unanswered until Stall(false).
func (s *Server) Stall(on bool) { s.gate.Stall(on) }

// Stats returns the uploads created and the PATCH bytes tusd read.
func (s *Server) Stats() uploadertest.Stats {
	return uploadertest.Stats{Created: int(s.created.Load()), BytesReceived: s.received.Load()}
}

// Stored opens the data of the upload with the given id.
func (s *Server) Stored(id string) (io.ReadCloser, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return nil, fmt.Errorf("tustest: bad upload id %q", id)
	}
	return os.Open(filepath.Join(s.dir, id))
}

// Dir is where tusd keeps the uploads: <id> holds the data, <id>.info the metadata.
func (s *Server) Dir() string { return s.dir }

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	s.Stall(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}

type countingBody struct {
	io.ReadCloser
	n        *atomic.Int64
	throttle *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if bps := b.throttle.Load(); bps > 0 {
		// Read in slices of a tenth of a second's worth, pausing between them.
		if max := bps / 10; max > 0 && int64(len(p)) > max {
			p = p[:max]
		}
		time.Sleep(time.Duration(int64(len(p)) * int64(time.Second) / bps))
	}
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// Throttle limits how fast tusd reads upload data, in bytes a second per upload (0: no
// limit), so that tests can interrupt an upload half-way.
func (s *Server) Throttle(bytesPerSecond int64) { s.throttle.Store(bytesPerSecond) }

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (tusd sets read deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
