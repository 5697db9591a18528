package uploader

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Body is a streamed request body of a length known before it is sent. Open may be called
// more than once: every call starts again from the first byte, which is what a retry or a
// redirect (http.Request.GetBody) needs. Client.Send sends it with an exact Content-Length,
// never chunked.
type Body interface {
	// Len is the exact number of bytes Open's reader yields.
	Len() int64
	// ContentType is the body's Content-Type ("" to set none).
	ContentType() string
	// Open returns a reader of the body from its start.
	Open() (io.ReadCloser, error)
}

// FileBody is a section of a file sent as it is (a TUS PATCH, a PUT to a signed URL, a raw
// POST). Make one with NewFileBody.
type FileBody struct {
	file     *File
	off, n   int64
	ctype    string
	progress func(sent int64)
}

// NewFileBody returns a body of n bytes of f from offset off (n = f.Size-off for the rest of
// the file). It reads the file as it is sent: nothing is held in memory.
func NewFileBody(f *File, off, n int64) *FileBody {
	return &FileBody{file: f, off: off, n: n}
}

// WithType sets the Content-Type (e.g. ContentType(f.Name)) and returns b.
func (b *FileBody) WithType(ctype string) *FileBody { b.ctype = ctype; return b }

// WithProgress has fn told, as bytes leave, how many bytes of this body were read so far
// (from 0 again when the body is re-opened for a retry); it returns b.
func (b *FileBody) WithProgress(fn func(sent int64)) *FileBody { b.progress = fn; return b }

// Len implements Body.
func (b *FileBody) Len() int64 { return b.n }

// ContentType implements Body.
func (b *FileBody) ContentType() string { return b.ctype }

// Open implements Body.
func (b *FileBody) Open() (io.ReadCloser, error) {
	if b.off < 0 || b.n < 0 || b.off+b.n > b.file.Size {
		return nil, fmt.Errorf("file body: bytes %d to %d of %s are outside its %d bytes", b.off, b.off+b.n, b.file.Name, b.file.Size)
	}
	return &fileReader{file: b.file, off: b.off, end: b.off + b.n, progress: b.progress}, nil
}

// fileReader reads a section of a file through File.ReadAt (so that File.Observe sees it),
// telling progress how far it got: FileBody.Open returns one, which the kernel sends
// straight from the page cache when the connection can (see sendFile); MultipartBody sends
// its file part through one.
type fileReader struct {
	file     *File
	off, end int64 // the next byte to send, the section's end
	sent     int64 // bytes of this body sent so far, for progress
	progress func(sent int64)
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.file.ReadAt(p, r.off)
	r.advance(int64(n))
	if err == io.EOF && r.off < r.end {
		// The file is shorter than it was when opened: the request then ends short of its
		// Content-Length and fails, as it must.
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (r *fileReader) advance(n int64) {
	if n <= 0 {
		return
	}
	r.off += n
	r.sent += n
	if r.progress != nil {
		r.progress(r.sent)
	}
}

// Close ends the body; the file stays open (it belongs to the upload).
func (r *fileReader) Close() error { return nil }

// FormField is one field of a multipart form, sent before the file.
type FormField struct {
	Name, Value string
}

// MultipartBody is a multipart/form-data body of fields in order and then one file, the
// last part, as S3's POST policy uploads demand. Its length is computed up front, so it goes
// with an exact Content-Length; the file is streamed from disk, never held in memory. Make
// one with NewMultipartBody.
type MultipartBody struct {
	boundary string
	head     string // every field and the file part's header
	tail     string // the closing boundary
	file     *File
	progress func(sent int64)
}

// NewMultipartBody returns a form with fields in their order, then f as the field fileField
// named fileName, with Content-Type fileType (ContentType(fileName) when "").
func NewMultipartBody(fields []FormField, fileField string, f *File, fileName, fileType string) (*MultipartBody, error) {
	var rnd [24]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("multipart boundary: %w", err)
	}
	boundary := "chute-" + hex.EncodeToString(rnd[:])
	if fileType == "" {
		fileType = ContentType(fileName)
	}
	var head strings.Builder
	for _, fl := range fields {
		if strings.Contains(fl.Value, boundary) {
			return nil, fmt.Errorf("multipart: field %q holds the boundary", fl.Name)
		}
		fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", boundary, escapeQuotes(fl.Name), fl.Value)
	}
	fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
		boundary, escapeQuotes(fileField), escapeQuotes(fileName), fileType)
	return &MultipartBody{
		boundary: boundary,
		head:     head.String(),
		tail:     "\r\n--" + boundary + "--\r\n",
		file:     f,
	}, nil
}

// quoteEscaper escapes a form name as mime/multipart does.
var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "%0D", "\n", "%0A")

func escapeQuotes(s string) string { return quoteEscaper.Replace(s) }

// WithProgress has fn told, as bytes leave, how many bytes of the FILE were sent so far
// (from 0 again when the body is re-opened); it returns b.
func (b *MultipartBody) WithProgress(fn func(sent int64)) *MultipartBody { b.progress = fn; return b }

// Len implements Body: the fields, the file and the closing boundary.
func (b *MultipartBody) Len() int64 {
	return int64(len(b.head)) + b.file.Size + int64(len(b.tail))
}

// ContentType implements Body: multipart/form-data with the boundary.
func (b *MultipartBody) ContentType() string {
	return "multipart/form-data; boundary=" + b.boundary
}

// Open implements Body.
func (b *MultipartBody) Open() (io.ReadCloser, error) {
	file := &fileReader{file: b.file, end: b.file.Size, progress: b.progress}
	return io.NopCloser(io.MultiReader(strings.NewReader(b.head), file, strings.NewReader(b.tail))), nil
}

// bytesBody is a Body held in memory: an encoded JSON or form request.
type bytesBody struct {
	b     []byte
	ctype string
}

func (b bytesBody) Len() int64          { return int64(len(b.b)) }
func (b bytesBody) ContentType() string { return b.ctype }
func (b bytesBody) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.b)), nil
}
