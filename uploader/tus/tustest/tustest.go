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
	// Faults are the emulator's knobs (FailNext, Stall, Throttle) and request records.
	Faults  uploadertest.Faults
	dir     string
	base    string
	after   func(r *http.Request, status int, header http.Header)
	srv     *uploadertest.HTTPServer
	handler http.Handler
	tusd    http.Handler

	created atomic.Int64

	mu sync.Mutex
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
	s.URL = "http://" + l.Addr().String() + s.base
	s.srv = uploadertest.Serve(l, s)
	return s, nil
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
	s.tusd = http.StripPrefix(strings.TrimSuffix(base, "/"), h)
	s.handler = s.Faults.Wrap(http.HandlerFunc(s.serve))
	return s, nil
}

// ServeHTTP runs the fault knobs, then hands the request to tusd.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if id := strings.TrimPrefix(r.URL.Path, s.base); id != r.URL.Path && id != "" && r.Method != http.MethodPost {
		release, ok := s.lockUpload(r.Context(), id)
		if !ok {
			return // the client left while waiting
		}
		defer release()
	}
	rec := &uploadertest.StatusRecorder{ResponseWriter: w}
	// tusd reads its per-request state from a goroutine woken by the request's context; when
	// a client vanishes mid-PATCH that wake-up has no happens-before edge with the handler
	// (a data race the race detector reports in tusd itself). Handing tusd a context that is
	// cancelled only after the handler returns gives it one; tusd still sees the cut as a
	// failed body read, and keeps what it received.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	s.tusd.ServeHTTP(rec, r.WithContext(ctx))
	cancel()
	if r.Method == http.MethodPost && rec.Code == http.StatusCreated {
		s.created.Add(1)
	}
	if s.after != nil {
		s.after(r, rec.Code, w.Header())
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

// FailNext answers the next n requests with status (and Retry-After when after > 0).
func (s *Server) FailNext(n, status int, after time.Duration) { s.Faults.FailNext(n, status, after) }

// Stall holds every request unanswered until Stall(false).
func (s *Server) Stall(on bool) { s.Faults.Stall(on) }

// Throttle limits how fast tusd reads upload data, in bytes a second (0: no limit), so that
// tests can interrupt an upload half-way.
func (s *Server) Throttle(bytesPerSecond int64) { s.Faults.Throttle(bytesPerSecond) }

// Stats returns the uploads created and the upload bytes tusd read (PATCH bodies, and POST
// bodies of creation-with-upload).
func (s *Server) Stats() uploadertest.Stats {
	return uploadertest.Stats{Created: int(s.created.Load()), BytesReceived: s.Faults.BodyBytes(http.MethodPatch) + s.Faults.BodyBytes(http.MethodPost)}
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
	return s.srv.Close()
}
