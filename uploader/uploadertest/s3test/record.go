package s3test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chute-dev/chute/uploader/uploadertest"
)

// Request is one S3 request the server received, as an emulator's request log needs it.
type Request struct {
	Time   time.Time
	Method string
	// Key is the object written: from the path for a PUT, from the answer (or the form, on
	// the stand-in) for a POST upload; "" when unknown.
	Key string
	// Length is the request's Content-Length, -1 when it had none (chunked).
	Length int64
	// Received counts the body bytes the server read.
	Received int64
	// Status is S3's answer, 0 when none was given (the connection failed first).
	Status int
	// Code is the S3 error code of a refusal ("" on success or when unknown).
	Code string
}

// recorder is the request log and the stall gate both backends share.
type recorder struct {
	gate     uploadertest.Gate
	mu       sync.Mutex
	reqs     []Request
	inflight int // requests past the gate, not yet logged
}

// reqInfo is what a backend learns about a request while serving it.
type reqInfo struct {
	key    string
	code   string
	broken bool // no answer reached the client
}

type infoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{} // not recorded: a throwaway
}

// wrap records every request next serves, and holds requests while stalled.
func (rc *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rc.gate.Wait(r.Context()) {
			return
		}
		rc.mu.Lock()
		rc.inflight++
		rc.mu.Unlock()
		info := &reqInfo{}
		if r.Method == http.MethodPut {
			if _, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok {
				info.key = key
			}
		}
		body := &countingReader{r: r.Body}
		r.Body = body
		sw := &uploadertest.StatusRecorder{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		status := sw.Code
		if info.broken {
			status = 0
		}
		length := r.ContentLength
		if len(r.TransferEncoding) > 0 {
			length = -1
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, Request{Time: start, Method: r.Method, Key: info.key, Length: length,
			Received: body.n.Load(), Status: status, Code: info.code})
		rc.inflight--
		rc.mu.Unlock()
	})
}

// requests returns the log once the requests being served are in it: a client can have
// read its answer a moment before the handler returned. It waits at most a second, for an
// upload still running is not logged until it ends.
func (rc *recorder) requests() []Request {
	deadline := time.Now().Add(time.Second)
	for {
		rc.mu.Lock()
		if rc.inflight == 0 || time.Now().After(deadline) {
			defer rc.mu.Unlock()
			return append([]Request(nil), rc.reqs...)
		}
		rc.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

type countingReader struct {
	r io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// relay is an HTTP reverse proxy in front of MinIO (which runs in another process), so that
// a test can cut a client's connection mid-request, stall requests and read the request log,
// as with the other emulators. It forwards requests unchanged, Host included (presigned
// signatures cover it), and chunked bodies stay chunked.
type relay struct {
	l    *uploadertest.Listener
	srv  *http.Server
	tr   *http.Transport
	done chan struct{}
}

func startRelay(target string, handler func(http.Handler) http.Handler) (*relay, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	l, err := uploadertest.Listen()
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			info := infoOf(resp.Request.Context())
			if resp.StatusCode < 300 && resp.Request.Method != http.MethodPost {
				return nil
			}
			// A small XML answer (an error or a PostResponse): read its start for the log and
			// pass it on whole.
			b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if err != nil {
				resp.Body.Close()
				return err
			}
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
			var e struct {
				Code string `xml:"Code"`
				Key  string `xml:"Key"`
			}
			if xml.Unmarshal(b, &e) == nil {
				info.code = e.Code
				if resp.StatusCode < 300 && e.Key != "" {
					info.key = e.Key
				}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The client went away mid-request (a cut) or MinIO did: no answer to give.
			infoOf(r.Context()).broken = true
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	r := &relay{l: l, tr: tr, done: make(chan struct{}),
		srv: &http.Server{Handler: handler(rp), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(l)
	}()
	return r, nil
}

func (r *relay) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.srv.Shutdown(ctx) != nil {
		_ = r.srv.Close()
	}
	<-r.done
	r.tr.CloseIdleConnections()
}
