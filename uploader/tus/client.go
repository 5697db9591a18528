// Package tus is chute's TUS 1.0 transport and its generic `tus` provider.
//
// The transport (Client) creates uploads, asks their offset with HEAD and streams the file with
// PATCH, straight from the file: no chunk buffer is allocated per upload. The README says why
// this is written here rather than taken from a TUS client library.
package tus

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/chute-dev/chute/uploader"
)

// ErrGone means the server no longer knows the upload (404 or 410 on HEAD or PATCH): it has
// expired or was removed, and a new one must be created.
var ErrGone = errors.New("tus: upload no longer exists on the server")

// Client speaks TUS 1.0 to one server.
type Client struct {
	http   *uploader.Client
	header http.Header
	chunk  int64
	red    *uploader.Redactor
	// query and queryHost: credentials of the endpoint's query, added to every request to
	// its scheme and host.
	query     url.Values
	queryHost string

	// withUpload is the largest file sent in its creation request (0: never); withUploadOK
	// says whether the server announces creation-with-upload: 0 not asked yet, 1 yes, -1 no.
	withUpload   int64
	extMu        sync.Mutex
	withUploadOK int
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// HTTP is the shared HTTP helper (required).
	HTTP *uploader.Client
	// Header is sent with every request (e.g. authorization); its values are secrets.
	Header http.Header
	// ChunkSize bounds the bytes of one PATCH; 0 sends the rest of the file in one PATCH, which
	// is the fastest: a cut PATCH loses nothing on servers that keep what they received.
	ChunkSize int64
	// Redactor hides the caller's secrets in errors, besides Header's values.
	Redactor *uploader.Redactor
	// Endpoint, when set, is the creation URL whose query (`?key=...`) holds credentials:
	// they go with every request to its server (creation, HEAD, PATCH), not only the first.
	Endpoint string
	// CreationWithUpload, when above 0, is the largest file Transfer sends in its creation
	// request (one request instead of a POST and a PATCH) when the server announces TUS's
	// creation-with-upload extension (asked once, with OPTIONS). Such a file has no checkpoint
	// before its data leaves: a crash before its result is recorded sends it again, to a new
	// upload. Keep it small.
	CreationWithUpload int64
}

// NewClient returns a TUS client.
func NewClient(opts ClientOptions) *Client {
	var secrets []string
	for _, vs := range opts.Header {
		secrets = append(secrets, vs...)
	}
	c := &Client{http: opts.HTTP, header: opts.Header, chunk: opts.ChunkSize, red: opts.Redactor.With(secrets...), withUpload: opts.CreationWithUpload}
	if u, err := url.Parse(opts.Endpoint); err == nil && u.RawQuery != "" {
		c.query, c.queryHost = u.Query(), u.Scheme+"://"+u.Host
		for _, vs := range c.query {
			c.red = c.red.With(vs...)
		}
	}
	return c
}

// send makes one TUS request, with the client's headers, credentials and error reading.
func (c *Client) send(ctx context.Context, red *uploader.Redactor, r *uploader.Request) (*uploader.Answer, error) {
	r.Header = r.Header.Clone()
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	for k, vs := range c.header {
		r.Header[k] = vs
	}
	r.Header.Set("Tus-Resumable", "1.0.0")
	if c.query != nil && strings.HasPrefix(r.URL, c.queryHost+"/") {
		r.Query = make(url.Values)
		have, _ := url.Parse(r.URL)
		for k, vs := range c.query {
			if !have.Query().Has(k) {
				r.Query[k] = vs
			}
		}
	}
	r.Errors, r.Redactor = readError, red
	a, err := c.http.Send(ctx, r)
	var se *uploader.StatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusNotFound || se.StatusCode == http.StatusGone) {
		return a, fmt.Errorf("%w: %w", ErrGone, err)
	}
	return a, err
}

// readError is TUS's reading of error answers: 413 is a file too large for the server, 409
// and 460 offsets out of step or a checksum mismatch, 423 another request holding the upload.
func readError(a *uploader.Answer, f *uploader.Fault) {
	switch a.Status {
	case http.StatusRequestEntityTooLarge:
		f.Class, f.Message = uploader.Permanent, "the server refuses a file this large: "+f.Message
	case http.StatusConflict, 460, http.StatusLocked:
		// Ask the offset again and resend; a held upload is ours once that request ends.
		f.Class = uploader.Transient
	case http.StatusBadRequest:
		if strings.Contains(string(a.Body), "ERR_UPLOAD_INTERRUPTED") {
			// tusd stopped this request for a newer one of the same upload (ours, after a
			// cut connection): asking the offset again and resuming is the cure.
			f.Class = uploader.Transient
		}
	}
}

// Create makes a new upload of size bytes at the creation URL and returns its absolute URL.
func (c *Client) Create(ctx context.Context, creationURL string, size int64, meta map[string]string) (string, error) {
	h := http.Header{"Upload-Length": {strconv.FormatInt(size, 10)}}
	if m := EncodeMetadata(meta); m != "" {
		h.Set("Upload-Metadata", m)
	}
	a, err := c.send(ctx, c.red, &uploader.Request{Method: http.MethodPost, URL: creationURL, Header: h, Expect: []int{http.StatusCreated}, What: "tus: create upload"})
	if err != nil {
		return "", err
	}
	return c.location(creationURL, a.Header.Get("Location"))
}

// CreateWithUpload makes a new upload of all of f at the creation URL with f's bytes in the
// creation request (TUS's creation-with-upload), and returns the upload's absolute URL and
// the offset the server answered (all of f, unless it kept only a part).
func (c *Client) CreateWithUpload(ctx context.Context, creationURL string, f *uploader.File, meta map[string]string, progress func(int64)) (string, int64, error) {
	h := http.Header{"Upload-Length": {strconv.FormatInt(f.Size, 10)}}
	if m := EncodeMetadata(meta); m != "" {
		h.Set("Upload-Metadata", m)
	}
	body := uploader.NewFileBody(f, 0, f.Size).WithType("application/offset+octet-stream")
	if progress != nil {
		body.WithProgress(progress)
	}
	a, err := c.send(ctx, c.red, &uploader.Request{Method: http.MethodPost, URL: creationURL, Header: h, Body: body, Expect: []int{http.StatusCreated}, What: "tus: create upload with its data"})
	if err != nil {
		return "", 0, err
	}
	loc, err := c.location(creationURL, a.Header.Get("Location"))
	if err != nil {
		return "", 0, err
	}
	off, err := strconv.ParseInt(a.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 || off > f.Size {
		off = 0 // no (or no sane) offset: the server took none of the data
	}
	return loc, off, nil
}

// location resolves a creation answer's Location against the creation URL.
func (c *Client) location(creationURL, loc string) (string, error) {
	if loc == "" {
		return "", uploader.TransientError(errors.New("tus: create upload: answer has no Location"))
	}
	base, _ := url.Parse(creationURL)
	ref, err := url.Parse(loc)
	if err != nil {
		return "", uploader.TransientError(fmt.Errorf("tus: create upload: bad Location %q", c.red.String(loc)))
	}
	return base.ResolveReference(ref).String(), nil
}

// announcesWithUpload reports whether the server lists creation-with-upload in its
// Tus-Extension (OPTIONS, asked once per Client). A server that refuses OPTIONS (4xx) does
// not; a failure to ask (a 5xx, the network) is returned, and asked again next time.
func (c *Client) announcesWithUpload(ctx context.Context, creationURL string) (bool, error) {
	c.extMu.Lock()
	known := c.withUploadOK
	c.extMu.Unlock()
	if known != 0 {
		return known > 0, nil
	}
	a, err := c.send(ctx, c.red, &uploader.Request{Method: http.MethodOptions, URL: creationURL, What: "tus: ask the server's extensions"})
	var se *uploader.StatusError
	switch {
	case errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != http.StatusTooManyRequests:
		known = -1
	case err != nil:
		return false, err
	default:
		known = -1
		for _, e := range strings.Split(a.Header.Get("Tus-Extension"), ",") {
			if strings.TrimSpace(e) == "creation-with-upload" {
				known = 1
			}
		}
	}
	c.extMu.Lock()
	c.withUploadOK = known
	c.extMu.Unlock()
	return known > 0, nil
}

// Offset asks the server (HEAD) how many bytes of the upload it holds. It returns ErrGone when
// the upload no longer exists.
func (c *Client) Offset(ctx context.Context, uploadURL string) (int64, error) {
	a, err := c.send(ctx, c.redactor(uploadURL), &uploader.Request{Method: http.MethodHead, URL: uploadURL, Header: http.Header{"Cache-Control": {"no-store"}}, What: "tus: ask offset"})
	if err != nil {
		return 0, err
	}
	off, err := strconv.ParseInt(a.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		return 0, uploader.TransientError(fmt.Errorf("tus: HEAD answered a bad Upload-Offset %q", a.Header.Get("Upload-Offset")))
	}
	return off, nil
}

// redactor is the client's Redactor extended with what the upload URL's query carries (a
// token the server put in its Location), so that an error echoing it does not show it.
func (c *Client) redactor(uploadURL string) *uploader.Redactor {
	u, err := url.Parse(uploadURL)
	if err != nil || u.RawQuery == "" {
		return c.red
	}
	var vals []string
	for _, vs := range u.Query() {
		vals = append(vals, vs...)
	}
	return c.red.With(vals...)
}

// Send streams f from offset to its end to the upload with PATCH requests (one, or one per
// ChunkSize), straight from the file with an exact Content-Length, and returns the server's
// offset after the last. progress is told the bytes sent so far (offset included) as they
// leave; it may be nil.
func (c *Client) Send(ctx context.Context, uploadURL string, f *uploader.File, offset int64, progress func(int64)) (int64, error) {
	red := c.redactor(uploadURL)
	for offset < f.Size {
		n := f.Size - offset
		if c.chunk > 0 && n > c.chunk {
			n = c.chunk
		}
		body := uploader.NewFileBody(f, offset, n).WithType("application/offset+octet-stream")
		if progress != nil {
			base := offset
			body.WithProgress(func(sent int64) { progress(base + sent) })
		}
		a, err := c.send(ctx, red, &uploader.Request{
			Method: http.MethodPatch, URL: uploadURL, Body: body, What: "tus: send data",
			Header: http.Header{"Upload-Offset": {strconv.FormatInt(offset, 10)}},
		})
		if err != nil {
			return offset, err
		}
		next, err := strconv.ParseInt(a.Header.Get("Upload-Offset"), 10, 64)
		if err != nil {
			return offset, uploader.TransientError(fmt.Errorf("tus: PATCH answered a bad Upload-Offset %q", a.Header.Get("Upload-Offset")))
		}
		if next <= offset || next > f.Size {
			return offset, uploader.TransientError(fmt.Errorf("tus: PATCH at %d answered offset %d", offset, next))
		}
		offset = next
		if progress != nil {
			progress(offset)
		}
	}
	return offset, nil
}

// EncodeMetadata encodes the Upload-Metadata header: "key base64(value)" pairs, sorted by key.
func EncodeMetadata(meta map[string]string) string {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+base64.StdEncoding.EncodeToString([]byte(meta[k])))
	}
	return strings.Join(parts, ",")
}
