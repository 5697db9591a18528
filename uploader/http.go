package uploader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client is the HTTP helper every provider uses: one connection pool, timeouts suited to long
// uploads (a stalled connection is cut after IdleTimeout without traffic, however long the
// upload), a User-Agent, and one way of turning answers into classed errors.
type Client struct {
	HTTP      *http.Client
	UserAgent string
	// AnswerTimeout bounds the reading of an answer's body, from its headers on (see
	// ClientOptions.AnswerTimeout); 0: no bound.
	AnswerTimeout time.Duration
}

// ClientOptions tune NewClient; the zero value gives the defaults.
type ClientOptions struct {
	// IdleTimeout cuts a connection on which nothing was read or written for this long (default 60s).
	IdleTimeout time.Duration
	// MaxConnsPerHost bounds open connections to one host (default 0: no bound).
	MaxConnsPerHost int
	// AnswerTimeout bounds the time to read a whole answer once its headers have arrived
	// (default 2m). The idle timeout alone does not: a server that trickles a byte every
	// few seconds would hold a job for ever. It never bounds an upload's request body.
	AnswerTimeout time.Duration
}

// DefaultAnswerTimeout is ClientOptions.AnswerTimeout's default.
const DefaultAnswerTimeout = 2 * time.Minute

// NewClient returns a Client with its own transport.
func NewClient(opts ClientOptions) *Client {
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = 60 * time.Second
	}
	dialer := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	bufs := &sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &idleConn{Conn: c, idle: idle, bufs: bufs}, nil
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64, // a provider runs up to 64 uploads at once (small files: 32 by default)
		MaxConnsPerHost:       opts.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        32 << 10,
	}
	answer := opts.AnswerTimeout
	if answer <= 0 {
		answer = DefaultAnswerTimeout
	}
	return &Client{HTTP: &http.Client{Transport: tr}, UserAgent: UserAgent, AnswerTimeout: answer}
}

// CloseIdle closes idle connections.
func (c *Client) CloseIdle() { c.HTTP.CloseIdleConnections() }

// idleConn pushes its deadline forward on every read and write, so that a connection that
// stalls is cut but a long transfer that moves is not.
type idleConn struct {
	net.Conn
	bufs *sync.Pool // of *[]byte, copyBufferSize long, shared by the client's connections
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last deadline set; reads and writes race for it
}

func (c *idleConn) touch() {
	// Setting a deadline costs a little; do it at most every second.
	now := time.Now()
	last := c.last.Load()
	if now.UnixNano()-last > int64(time.Second) && c.last.CompareAndSwap(last, now.UnixNano()) {
		_ = c.Conn.SetDeadline(now.Add(c.idle))
	}
}

func (c *idleConn) Read(p []byte) (int, error)  { c.touch(); return c.Conn.Read(p) }
func (c *idleConn) Write(p []byte) (int, error) { c.touch(); return c.Conn.Write(p) }

// copyBufferSize is the size of the buffers request bodies are sent through: large enough
// that a 1 GiB upload makes few system calls, pooled so that no upload allocates its own.
const copyBufferSize = 256 << 10

// ReadFrom sends a request body (net/http hands it over through io.Copy): a file body
// straight from the page cache where the kernel can (sendFile), anything else through a
// pooled buffer.
func (c *idleConn) ReadFrom(r io.Reader) (int64, error) {
	if n, err, ok := sendFile(c.Conn, r, c.touch); ok {
		return n, err
	}
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	return io.CopyBuffer(writerOnly{c}, r, *bp)
}

// writerOnly hides ReadFrom, so that io.CopyBuffer uses the buffer it is given.
type writerOnly struct{ io.Writer }

// Do sends req with the User-Agent set. A network error comes back transient, with any
// credentials in the URL removed from its message. The answer's body must be read within
// c.AnswerTimeout of its headers: past it, a read fails with a transient error.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	parent := req.Context()
	ctx, cancel := context.WithCancel(parent)
	resp, err := c.HTTP.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		if ctxErr := parent.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, TransientError(fmt.Errorf("%s %s: %w", req.Method, RedactURL(req.URL.String()), unwrapURLError(err)))
	}
	resp.Body = newDeadlineBody(resp.Body, c.AnswerTimeout, cancel, req.Method, RedactURL(req.URL.String()))
	return resp, nil
}

// deadlineBody is an answer's body that must be read within a time: when it passes, the
// request's context is cancelled (which ends a read in progress) and reads fail.
type deadlineBody struct {
	io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer // nil: no deadline
	expired atomic.Bool
	limit   time.Duration
	what    string // "METHOD URL", redacted
}

func newDeadlineBody(rc io.ReadCloser, limit time.Duration, cancel context.CancelFunc, method, u string) *deadlineBody {
	b := &deadlineBody{ReadCloser: rc, cancel: cancel, limit: limit, what: method + " " + u}
	if limit > 0 {
		b.timer = time.AfterFunc(limit, func() {
			b.expired.Store(true)
			cancel()
		})
	}
	return b
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.expired.Load() {
		return n, TransientError(fmt.Errorf("%s: the answer was not read within %s: the server sends it too slowly", b.what, b.limit))
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// StatusError is an answer outside 2xx.
type StatusError struct {
	Method     string
	URL        string // redacted
	StatusCode int
	// Body is the start of the answer's body, as text.
	Body string
	// RetryAfter is what the Retry-After (or Retry-After-Ms) header asked for, or 0.
	RetryAfter time.Duration
	// Message is what the provider's ErrorDecoder read in the body ("" : the body is shown).
	Message string
	// Code is the provider's own error code, if any.
	Code string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	text := e.Message
	if text == "" {
		text = strings.TrimSpace(e.Body)
	}
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if text != "" {
		msg += ": " + text
	}
	return msg
}

// maxErrorBody is how much of an error answer is kept.
const maxErrorBody = 4 << 10

// CheckResponse returns nil for a 2xx answer. Otherwise it reads the start of the body, closes
// it, and returns a *StatusError classed the default way: 429 and 503 with Retry-After ->
// RetryAfter; 408, 425, 5xx -> Transient; other 4xx -> Permanent. Providers that know better
// re-class it.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	se := &StatusError{
		Method:     resp.Request.Method,
		URL:        RedactURL(resp.Request.URL.String()),
		StatusCode: resp.StatusCode,
		Body:       string(bytes.ToValidUTF8(b, []byte("?"))),
		RetryAfter: ParseRetryAfter(resp.Header, time.Now()),
	}
	return ClassifyStatus(se)
}

// ClassifyStatus wraps se in the default class for its status code.
func ClassifyStatus(se *StatusError) error {
	return &Error{Class: statusClass(se.StatusCode, se.RetryAfter), After: se.RetryAfter, Err: se}
}

// ParseRetryAfter reads Retry-After-Ms, or Retry-After as seconds or as an HTTP date. It
// returns 0 when neither is there or readable.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// JSON sends a request with an optional JSON body and decodes a 2xx JSON answer into out
// (when out is not nil): Send with the default error reading.
func (c *Client) JSON(ctx context.Context, method, rawURL string, header http.Header, in, out any) error {
	_, err := c.Send(ctx, &Request{Method: method, URL: rawURL, Header: header, JSON: in, Out: out, Decode: DecodeJSON})
	return err
}

// RedactURL removes user info and query values from a URL, which is where credentials,
// signatures and tokens live, so that it can be logged or shown.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
