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
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

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
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// HTTP is the shared HTTP helper (required).
	HTTP *uploader.Client
	// Header is sent with every request (e.g. authorization).
	Header http.Header
	// ChunkSize bounds the bytes of one PATCH; 0 sends the rest of the file in one PATCH, which
	// is the fastest: a cut PATCH loses nothing on servers that keep what they received.
	ChunkSize int64
}

// NewClient returns a TUS client.
func NewClient(opts ClientOptions) *Client {
	return &Client{http: opts.HTTP, header: opts.Header, chunk: opts.ChunkSize}
}

func (c *Client) setHeaders(req *http.Request) {
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("User-Agent", c.http.UserAgent)
}

// Create makes a new upload of size bytes at the creation URL and returns its absolute URL.
func (c *Client) Create(ctx context.Context, creationURL string, size int64, meta map[string]string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, creationURL, http.NoBody)
	if err != nil {
		return "", uploader.PermanentError(fmt.Errorf("tus: creation URL: %w", err))
	}
	c.setHeaders(req)
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	if m := EncodeMetadata(meta); m != "" {
		req.Header.Set("Upload-Metadata", m)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	if err := checkTUS(resp); err != nil {
		return "", fmt.Errorf("tus: create upload: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", uploader.TransientError(fmt.Errorf("tus: create upload: answer %d, want 201 Created", resp.StatusCode))
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", uploader.TransientError(errors.New("tus: create upload: answer has no Location"))
	}
	base, _ := url.Parse(creationURL)
	ref, err := url.Parse(loc)
	if err != nil {
		return "", uploader.TransientError(fmt.Errorf("tus: create upload: bad Location %q: %w", loc, err))
	}
	return base.ResolveReference(ref).String(), nil
}

// checkTUS is uploader.CheckResponse with TUS's own meanings: 413 is a file too large for the
// server, 460 a checksum mismatch.
func checkTUS(resp *http.Response) error {
	err := uploader.CheckResponse(resp)
	var se *uploader.StatusError
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch se.StatusCode {
	case http.StatusRequestEntityTooLarge:
		return uploader.Permanentf("the server refuses a file this large (413): %w", se)
	case http.StatusNotFound, http.StatusGone:
		return fmt.Errorf("%w: %w", ErrGone, err)
	case http.StatusConflict, 460:
		// Offsets out of step or a checksum mismatch: ask the offset again and resend.
		return uploader.TransientError(se)
	case http.StatusLocked:
		// Another request holds the upload: ours will have it once that one ends.
		return uploader.TransientError(se)
	case http.StatusBadRequest:
		if strings.Contains(se.Body, "ERR_UPLOAD_INTERRUPTED") {
			// tusd stopped this request for a newer one of the same upload (ours, after a
			// cut connection): asking the offset again and resuming is the cure.
			return uploader.TransientError(se)
		}
	}
	return err
}

// Offset asks the server (HEAD) how many bytes of the upload it holds. It returns ErrGone when
// the upload no longer exists.
func (c *Client) Offset(ctx context.Context, uploadURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, uploadURL, http.NoBody)
	if err != nil {
		return 0, uploader.PermanentError(fmt.Errorf("tus: upload URL: %w", err))
	}
	c.setHeaders(req)
	req.Header.Set("Cache-Control", "no-store")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	if err := checkTUS(resp); err != nil {
		return 0, fmt.Errorf("tus: ask offset: %w", err)
	}
	resp.Body.Close()
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		return 0, uploader.TransientError(fmt.Errorf("tus: HEAD answered a bad Upload-Offset %q", resp.Header.Get("Upload-Offset")))
	}
	return off, nil
}

// Send streams f from offset to its end to the upload with PATCH requests (one, or one per
// ChunkSize), straight from the file with an exact Content-Length, and returns the server's
// offset after the last. progress is told the bytes sent so far (offset included) as they
// leave; it may be nil.
func (c *Client) Send(ctx context.Context, uploadURL string, f *uploader.File, offset int64, progress func(int64)) (int64, error) {
	for offset < f.Size {
		n := f.Size - offset
		if c.chunk > 0 && n > c.chunk {
			n = c.chunk
		}
		next, err := c.patch(ctx, uploadURL, f, offset, n, progress)
		if err != nil {
			return offset, err
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

func (c *Client) patch(ctx context.Context, uploadURL string, f *uploader.File, offset, n int64, progress func(int64)) (int64, error) {
	body := &progressReader{r: f.Section(offset), left: n, base: offset, fn: progress}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, uploadURL, body)
	if err != nil {
		return 0, uploader.PermanentError(fmt.Errorf("tus: upload URL: %w", err))
	}
	req.ContentLength = n
	c.setHeaders(req)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	if err := checkTUS(resp); err != nil {
		return 0, fmt.Errorf("tus: send data: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	next, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return 0, uploader.TransientError(fmt.Errorf("tus: PATCH answered a bad Upload-Offset %q", resp.Header.Get("Upload-Offset")))
	}
	return next, nil
}

// progressReader tells fn how far the body has been read.
type progressReader struct {
	r    io.Reader
	left int64 // bytes still to send; the body ends there
	base int64
	n    int64
	fn   func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	p.left -= int64(n)
	p.n += int64(n)
	if p.fn != nil && n > 0 {
		p.fn(p.base + p.n)
	}
	return n, err
}

// EncodeMetadata encodes the Upload-Metadata header: "key base64(value)" pairs, sorted by key.
func EncodeMetadata(meta map[string]string) string {
	if len(meta) == 0 {
		return ""
	}
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
