package uploader

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// Request is one API call made with Client.Send (or API.Send): what to send, how to read
// the answer, and the provider's error reading and secrets.
type Request struct {
	// Method is the HTTP method (default GET).
	Method string
	// URL is absolute, or, through an API, a path joined to its Base.
	URL string
	// Query is added to URL's query.
	Query url.Values
	// Header is sent as given (Client.Send adds User-Agent and Accept when absent).
	Header http.Header

	// At most one of JSON, Form and Body is set.
	//
	// JSON is encoded as the body, with Content-Type application/json.
	JSON any
	// Form is encoded as the body, application/x-www-form-urlencoded.
	Form url.Values
	// Body is a streamed body (NewFileBody, NewMultipartBody), sent with its exact length.
	Body Body

	// Out, when not nil, is decoded from a successful answer: as XML when Decode is
	// DecodeXML or (DecodeAuto) the answer says it is XML, else as JSON.
	Out any
	// Decode says how Out is decoded.
	Decode Decoding
	// Expect lists the statuses that are a success (nil: any 2xx). A 2xx answer not listed
	// is a transient error.
	Expect []int

	// What says what the call does, for messages ("create video \"a.mp4\"").
	What string
	// Errors reads the provider's error answers (nil: the default reading).
	Errors ErrorDecoder
	// Redactor hides the provider's secrets in every error Send returns.
	Redactor *Redactor
	// Pacer, when set, is waited on before the request is sent (the provider's API rate).
	Pacer *rate.Limiter
	// MaxAnswer bounds the answer body read (default 16 MiB); a longer one is an error.
	MaxAnswer int64
}

// Decoding says how an answer's body is decoded into Request.Out.
type Decoding int

const (
	// DecodeAuto decodes XML when the answer's Content-Type says XML, else JSON.
	DecodeAuto Decoding = iota
	// DecodeJSON decodes JSON whatever the Content-Type.
	DecodeJSON
	// DecodeXML decodes XML whatever the Content-Type (S3's answers).
	DecodeXML
)

// Answer is what the server answered a Request: the whole body is read (bounded by
// MaxAnswer, within the client's AnswerTimeout) and the connection released.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Fault is how an answer reads as an error. Client.Send fills it the default way and hands
// it to the Request's ErrorDecoder, which changes what its API says otherwise.
type Fault struct {
	// Failed is true when the status is not a success; a decoder sets it for a success
	// status that still carries an error (UploadGig's `"code":"0"` in a 200).
	Failed bool
	// Message is the platform's words; by default the start of the body, shortened.
	Message string
	// Code is the platform's own error code, if it has one.
	Code string
	// Class is what the engine does: by default 429 and a 503 with Retry-After are
	// RetryAfter, 408, 425 and 5xx Transient, any other status Permanent (also a 2xx a
	// decoder marks Failed).
	Class Class
	// After is the wait asked for: by default the Retry-After (or Retry-After-Ms) header.
	After time.Duration
}

// ErrorDecoder reads one provider's answers: it is called for every answer, successes too,
// with the default reading in f, and changes f as the provider's API states its errors
// (a message under "error.description", a delay under "error.delay", a rate limit that is
// the whole account's: Class RateLimited). Each provider states this once, in one function.
type ErrorDecoder func(a *Answer, f *Fault)

// defaultMaxAnswer bounds an API answer: they are small JSON or XML documents.
const defaultMaxAnswer = 16 << 20

// Send makes one API request and reads its whole answer. A success is decoded into r.Out
// and returned; any other answer is a classed error (see Fault) whose *StatusError holds the
// redacted URL, body and message. Every error is passed through r.Redactor. A context error
// comes back as it is.
func (c *Client) Send(ctx context.Context, r *Request) (*Answer, error) {
	return finish(ctx, r, c.send)
}

// finish runs step (send or stream) and gives its error the form Send and Stream promise:
// the context's own error when ctx ended, else the error prefixed with r.What and passed
// through r.Redactor. What step returned beside an error (Send's answer) is kept.
func finish[T any](ctx context.Context, r *Request, step func(context.Context, *Request) (T, error)) (T, error) {
	v, err := step(ctx, r)
	if err == nil {
		return v, nil
	}
	if ctx.Err() != nil {
		var zero T
		return zero, ctx.Err()
	}
	if r.What != "" {
		err = &whatError{what: r.What, err: err}
	}
	return v, r.Redactor.Error(err)
}

// whatError prefixes an error with the step it happened in.
type whatError struct {
	what string
	err  error
}

func (e *whatError) Error() string { return e.what + ": " + e.err.Error() }
func (e *whatError) Unwrap() error { return e.err }

func (c *Client) send(ctx context.Context, r *Request) (*Answer, error) {
	req, resp, err := c.exchange(ctx, r)
	if err != nil {
		return nil, err
	}
	a, f, err := judge(req, resp, r)
	if err != nil {
		return nil, err
	}
	if f.Failed {
		return a, faultError(req.Method, req.URL.String(), a, f, r.Redactor)
	}
	if r.Out != nil {
		if err := decodeAnswer(a, r.Decode, r.Out); err != nil {
			return a, TransientError(fmt.Errorf("%s %s: decode answer: %w", req.Method, RedactURL(req.URL.String()), err))
		}
	}
	return a, nil
}

// exchange prepares r's request, waits for the pacer and sends it: the part of a call that
// Send and Stream share up to the answer's head.
func (c *Client) exchange(ctx context.Context, r *Request) (*http.Request, *http.Response, error) {
	req, err := c.prepare(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	return req, resp, nil
}

// judge reads resp whole and classes it: the default reading of its status, changed by
// r.Errors, the provider's decoder.
func judge(req *http.Request, resp *http.Response, r *Request) (*Answer, Fault, error) {
	a, err := readAnswer(resp, r.maxAnswer())
	if err != nil {
		return nil, Fault{}, fmt.Errorf("%s %s: %w", req.Method, RedactURL(req.URL.String()), err)
	}
	f := defaultFault(a, r.Expect)
	if r.Errors != nil {
		r.Errors(a, &f)
	}
	return a, f, nil
}

// prepare builds r's HTTP request (URL and query, headers, body with its length and
// GetBody, Accept) and waits for r's Pacer: everything of a call up to sending it.
func (c *Client) prepare(ctx context.Context, r *Request) (*http.Request, error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	target, err := withQuery(r.URL, r.Query)
	if err != nil {
		return nil, PermanentError(fmt.Errorf("bad URL %s: %w", RedactURL(r.URL), err))
	}
	body, err := r.body()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, target, http.NoBody)
	if err != nil {
		return nil, PermanentError(fmt.Errorf("build request: %w", unwrapURLError(err)))
	}
	for k, vs := range r.Header {
		req.Header[k] = slices.Clone(vs)
	}
	if body != nil {
		if err := setBody(req, body); err != nil {
			return nil, err
		}
	}
	if req.Header.Get("Accept") == "" && r.Out != nil {
		switch r.Decode {
		case DecodeXML:
			req.Header.Set("Accept", "application/xml")
		default:
			req.Header.Set("Accept", "application/json")
		}
	}
	if r.Pacer != nil {
		if err := r.Pacer.Wait(ctx); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, TransientError(fmt.Errorf("API rate limit: %w", err))
		}
	}
	return req, nil
}

func (r *Request) maxAnswer() int64 {
	if r.MaxAnswer > 0 {
		return r.MaxAnswer
	}
	return defaultMaxAnswer
}

// body returns the request's body, or nil for none.
func (r *Request) body() (Body, error) {
	n := 0
	for _, set := range []bool{r.JSON != nil, r.Form != nil, r.Body != nil} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, PermanentError(errors.New("request has more than one of JSON, Form and Body"))
	case r.JSON != nil:
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, PermanentError(fmt.Errorf("encode request: %w", err))
		}
		return bytesBody{b: b, ctype: "application/json"}, nil
	case r.Form != nil:
		return bytesBody{b: []byte(r.Form.Encode()), ctype: "application/x-www-form-urlencoded"}, nil
	}
	return r.Body, nil
}

// setBody gives req the body with its exact length and a GetBody that opens it again.
func setBody(req *http.Request, b Body) error {
	rc, err := b.Open()
	if err != nil {
		return PermanentError(err)
	}
	if ct := b.ContentType(); ct != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", ct)
	}
	req.ContentLength = b.Len()
	if b.Len() == 0 {
		rc.Close()
		req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
		return nil
	}
	req.Body, req.GetBody = rc, b.Open
	return nil
}

// ParseEndpoint returns raw, a provider's configured endpoint, parsed, or an error (showing
// it without credentials) when it is not an absolute http(s) URL.
func ParseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an http(s) URL", RedactURL(raw))
	}
	return u, nil
}

// withQuery adds q to raw's query.
func withQuery(raw string, q url.Values) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	if len(q) == 0 {
		return raw, nil
	}
	have := u.Query()
	for k, vs := range q {
		have[k] = append(have[k], vs...)
	}
	u.RawQuery = have.Encode()
	return u.String(), nil
}

// readAnswer reads resp's whole body, up to max bytes, and closes it.
func readAnswer(resp *http.Response, max int64) (*Answer, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, TransientError(fmt.Errorf("read answer (%d): %w", resp.StatusCode, err))
	}
	if int64(len(b)) > max {
		return nil, TransientError(fmt.Errorf("answer (%d) is larger than %d bytes", resp.StatusCode, max))
	}
	return &Answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// defaultFault is the reading of a an answer before a provider's decoder sees it.
func defaultFault(a *Answer, expect []int) Fault {
	f := Fault{After: ParseRetryAfter(a.Header, time.Now()), Message: BodyText(a.Body, maxMessage)}
	ok := a.Status >= 200 && a.Status < 300
	if expect != nil {
		ok = slices.Contains(expect, a.Status)
	}
	switch {
	case ok:
		f.Class = Permanent
	case a.Status >= 200 && a.Status < 300:
		f.Failed, f.Class = true, Transient
		f.Message = fmt.Sprintf("answer %d, want %s", a.Status, statusList(expect))
	default:
		f.Failed, f.Class = true, statusClass(a.Status, f.After)
	}
	return f
}

func statusList(codes []int) string {
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprint(c)
	}
	return strings.Join(parts, " or ")
}

// statusClass is the default class of an error status.
func statusClass(code int, after time.Duration) Class {
	switch {
	case code == http.StatusTooManyRequests:
		return RetryAfter
	case code == http.StatusServiceUnavailable && after > 0:
		return RetryAfter
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code >= 500:
		return Transient
	default:
		return Permanent
	}
}

// faultError turns a failed answer into its classed *StatusError, redacted.
func faultError(method, target string, a *Answer, f Fault, red *Redactor) error {
	se := &StatusError{
		Method:     method,
		URL:        red.String(RedactURL(target)),
		StatusCode: a.Status,
		Body:       red.String(BodyText(a.Body, maxErrorBody)),
		Message:    red.String(f.Message),
		Code:       red.String(f.Code),
		RetryAfter: f.After,
	}
	return &Error{Class: f.Class, After: f.After, Err: se}
}

// maxMessage is how long a platform's message may be in an error.
const maxMessage = 300

// BodyText returns an answer body as one line of valid text, at most max bytes (cut at a
// character, marked with "…"): what goes into an error message.
func BodyText(b []byte, max int) string {
	s := strings.TrimSpace(string(bytes.ToValidUTF8(b, []byte("?"))))
	return Shorten(s, max)
}

// Shorten cuts s to at most max bytes at a character boundary, marking the cut with "…".
func Shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// decodeAnswer decodes a's body into out.
func decodeAnswer(a *Answer, how Decoding, out any) error {
	asXML := how == DecodeXML
	if how == DecodeAuto {
		mt, _, _ := mime.ParseMediaType(a.Header.Get("Content-Type"))
		asXML = mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml")
	}
	if asXML {
		return xml.Unmarshal(a.Body, out)
	}
	if len(bytes.TrimSpace(a.Body)) == 0 {
		return errors.New("the answer is empty")
	}
	return json.Unmarshal(a.Body, out)
}

// API is one provider's remote API: what every call to it shares, stated once. Its Send
// fills a Request's blanks from it.
type API struct {
	// Client sends the requests.
	Client *Client
	// Base is the API's base URL; a Request URL that is a path ("/v2/upload") is joined to it.
	Base string
	// Header is sent with every request to Base's host (authorization): never to another
	// host, such as a presigned S3 URL's. A Request's own Header wins.
	Header http.Header
	// Errors reads the API's error answers.
	Errors ErrorDecoder
	// Redactor hides the provider's secrets.
	Redactor *Redactor
	// Pacer spaces the API's requests (one limiter shared by every job of the provider).
	Pacer *rate.Limiter
}

// Send sends r with a's defaults for what r leaves unset: the URL joined to Base, Header
// (on Base's host only), Errors, Redactor and Pacer.
func (a *API) Send(ctx context.Context, r *Request) (*Answer, error) {
	rr := *r
	if !strings.Contains(rr.URL, "://") {
		rr.URL = strings.TrimRight(a.Base, "/") + "/" + strings.TrimLeft(rr.URL, "/")
	}
	if len(a.Header) > 0 && sameHost(rr.URL, a.Base) {
		h := make(http.Header, len(a.Header)+len(rr.Header))
		for k, vs := range a.Header {
			h[k] = vs
		}
		for k, vs := range rr.Header {
			h[k] = vs
		}
		rr.Header = h
	}
	if rr.Errors == nil {
		rr.Errors = a.Errors
	}
	if rr.Redactor == nil {
		rr.Redactor = a.Redactor
	}
	if rr.Pacer == nil {
		rr.Pacer = a.Pacer
	}
	return a.Client.Send(ctx, &rr)
}

// sameHost tells whether two URLs have the same scheme and host.
func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host)
}
