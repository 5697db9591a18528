package uploadertest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are the fault knobs and the request log every emulator shares: fail the next n
// requests with a status and a Retry-After, stall every request, slow request bodies down,
// and record what was asked. (Cutting a connection mid-body is the Listener's CutAfter.)
// An emulator wraps its handler with Wrap, or calls Intercept where its own gate is, and
// hands FailNext and Stall to the suite's Harness. The zero value is ready to use.
type Faults struct {
	// Write writes an injected failure in the emulator's own error format (set it before
	// serving). nil: a plain-text body. The Retry-After header is already set.
	Write func(w http.ResponseWriter, status int)

	gate Gate

	mu        sync.Mutex
	failLeft  int
	failCode  int
	failAfter time.Duration
	log       []Record
	bodies    map[string]*atomic.Int64 // request body bytes read, by method

	throttle atomic.Int64 // request body bytes a second, all requests together; 0: no limit
	trickle  atomic.Int64 // nanoseconds between the bytes of an answer's body; 0: at once
}

// Record is one request an emulator received.
type Record struct {
	Method string
	// Path and Query are the request's, as sent.
	Path  string
	Query string
	// Header is a copy of the request's headers.
	Header http.Header
	// Status is the status answered (0 when the handler answered nothing).
	Status int
	// BodyBytes is how much of the request's body the emulator read.
	BodyBytes int64
	// At is when the request arrived.
	At time.Time
}

// maxRecords bounds the request log; the oldest records go first.
const maxRecords = 10_000

// FailNext answers the next n requests with status, with a Retry-After of retryAfter when it
// is > 0 (whole seconds as Retry-After, anything finer as Retry-After-Ms).
func (f *Faults) FailNext(n, status int, retryAfter time.Duration) {
	f.mu.Lock()
	f.failLeft, f.failCode, f.failAfter = n, status, retryAfter
	f.mu.Unlock()
}

// Stall holds every request unanswered until Stall(false).
func (f *Faults) Stall(on bool) { f.gate.Stall(on) }

// Throttle limits how fast request bodies are read, in bytes a second (0: no limit), so that
// a test can cut or cancel an upload half-way.
func (f *Faults) Throttle(bytesPerSecond int64) { f.throttle.Store(bytesPerSecond) }

// Trickle sends every answer's body one byte every `every` (0: at once), as a server that
// stalls half-way through its answer does.
func (f *Faults) Trickle(every time.Duration) { f.trickle.Store(int64(every)) }

// Requests returns the requests recorded so far, oldest first.
func (f *Faults) Requests() []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Record(nil), f.log...)
}

// BodyBytes is how many request body bytes were read from requests with method ("" : all).
func (f *Faults) BodyBytes(method string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if method != "" {
		if c := f.bodies[method]; c != nil {
			return c.Load()
		}
		return 0
	}
	var n int64
	for _, c := range f.bodies {
		n += c.Load()
	}
	return n
}

// Intercept is the knobs' part of a request: it waits while stalled, and answers an injected
// failure. It returns false when the request has been dealt with (or the client left), true
// when the emulator should serve it.
func (f *Faults) Intercept(w http.ResponseWriter, r *http.Request) bool {
	if !f.gate.Wait(r.Context()) {
		return false
	}
	f.mu.Lock()
	failing := f.failLeft > 0
	code, after := f.failCode, f.failAfter
	if failing {
		f.failLeft--
	}
	f.mu.Unlock()
	if !failing {
		return true
	}
	SetRetryAfter(w.Header(), after)
	if f.Write != nil {
		f.Write(w, code)
	} else {
		http.Error(w, "injected fault: "+http.StatusText(code), code)
	}
	return false
}

// WriteJSON answers with status code and v as JSON, the way an emulated API does.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// SetRetryAfter sets Retry-After (whole seconds) or Retry-After-Ms (finer) to d; nothing for d <= 0.
func SetRetryAfter(h http.Header, d time.Duration) {
	switch {
	case d <= 0:
	case d%time.Second == 0:
		h.Set("Retry-After", strconv.Itoa(int(d/time.Second)))
	default:
		h.Set("Retry-After-Ms", strconv.FormatInt(d.Milliseconds(), 10))
	}
}

// Wrap returns next behind the knobs: each request is recorded, may be stalled or failed,
// has its body counted and throttled, and then goes to next.
func (f *Faults) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if every := time.Duration(f.trickle.Load()); every > 0 {
			w = &trickleWriter{ResponseWriter: w, every: every, ctx: r.Context()}
		}
		rec := &StatusRecorder{ResponseWriter: w}
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{ReadCloser: r.Body, n: f.counter(r.Method), throttle: &f.throttle}
			r.Body = body
		}
		at := time.Now()
		if f.Intercept(rec, r) {
			next.ServeHTTP(rec, r)
		}
		f.record(r, rec.Code, body, at)
	})
}

func (f *Faults) counter(method string) *atomic.Int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bodies == nil {
		f.bodies = make(map[string]*atomic.Int64)
	}
	c := f.bodies[method]
	if c == nil {
		c = new(atomic.Int64)
		f.bodies[method] = c
	}
	return c
}

func (f *Faults) record(r *http.Request, status int, body *countingBody, at time.Time) {
	rec := Record{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Status: status, At: at}
	if body != nil {
		rec.BodyBytes = body.read.Load()
	}
	f.mu.Lock()
	if len(f.log) >= maxRecords {
		f.log = append(f.log[:0], f.log[len(f.log)-maxRecords+1:]...)
	}
	f.log = append(f.log, rec)
	f.mu.Unlock()
}

// countingBody counts (and throttles) what is read of a request's body.
type countingBody struct {
	io.ReadCloser
	n        *atomic.Int64 // shared: every body of the method
	read     atomic.Int64  // this body
	throttle *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if bps := b.throttle.Load(); bps > 0 {
		// Read in slices of a tenth of a second's worth, pausing between them.
		if most := bps / 10; most > 0 && int64(len(p)) > most {
			p = p[:most]
		}
		time.Sleep(time.Duration(int64(len(p)) * int64(time.Second) / bps))
	}
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	b.read.Add(int64(n))
	return n, err
}

// trickleWriter writes a byte at a time.
type trickleWriter struct {
	http.ResponseWriter
	every time.Duration
	ctx   context.Context
}

func (t *trickleWriter) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := t.ResponseWriter.Write(p[i : i+1]); err != nil {
			return i, err
		}
		_ = http.NewResponseController(t.ResponseWriter).Flush()
		select {
		case <-time.After(t.every):
		case <-t.ctx.Done():
			return i + 1, t.ctx.Err()
		}
	}
	return len(p), nil
}

func (t *trickleWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// StatusRecorder remembers the status a handler answered.
type StatusRecorder struct {
	http.ResponseWriter
	// Code is the status written (200 once a body was written without one); 0 until then.
	Code int
}

// WriteHeader records code.
func (r *StatusRecorder) WriteHeader(code int) {
	if r.Code == 0 {
		r.Code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records 200 when no status was written.
func (r *StatusRecorder) Write(b []byte) (int, error) {
	if r.Code == 0 {
		r.Code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (tusd sets read deadlines).
func (r *StatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Serve serves h on l until Close: an emulator's HTTP server, with a bound on reading
// request headers, and a Close that waits for its goroutine.
func Serve(l net.Listener, h http.Handler) *HTTPServer {
	s := &HTTPServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(l)
	}()
	return s
}

// HTTPServer is a server started by Serve.
type HTTPServer struct {
	srv  *http.Server
	done chan struct{}
}

// Close shuts the server down (cutting what is still open after 5s) and waits for it.
func (s *HTTPServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
