package xvidtest

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"

	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
)

// front is the S3 front form_post_url points at: it forwards each form POST to S3 byte for
// byte (S3 checks the policy, the fields and the length) and reads a copy of the body as it
// passes, to record what the form held and how many file bytes arrived.
type front struct {
	s *Server
}

// formRecord is what the copy of one form POST showed.
type formRecord struct {
	fields    FormParams // the fields before the file, in order
	fileName  string
	fileBytes int64
	hasFile   bool
	afterFile []string // fields after the file (S3 ignores them)
	err       error    // the body was not a readable form
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := f.s
	bucketPath := "/" + s.s3.Bucket() + "/"
	if r.Method != http.MethodPost || (r.URL.Path != bucketPath && r.URL.Path != strings.TrimSuffix(bucketPath, "/")) {
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	s.mu.Lock()
	s.counters.FormPosts++
	s.mu.Unlock()
	if r.ContentLength < 0 {
		// S3 refuses a chunked form POST; MinIO would too, this says why in the record.
		s.problem(ProblemChunked, "form POST without Content-Length (Transfer-Encoding %v)", r.TransferEncoding)
	}
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	boundary := params["boundary"]
	if err != nil || boundary == "" {
		s.problem(ProblemForm, "form POST with Content-Type %q", r.Header.Get("Content-Type"))
	}

	// The fields before the file are checked before anything is forwarded, as S3 checks the
	// policy before it stores a byte: a field of form_post_params that is missing fails
	// the policy at AWS, though MinIO lets a missing starts-with field pass.
	br := bufio.NewReaderSize(r.Body, maxPreData+4<<10)
	head, _ := br.Peek(maxPreData + 4<<10)
	if fields, ok := preFields(head, boundary); ok {
		key, _ := fields.Get("key")
		if want, known := s.expectedForm(key); known {
			for _, wf := range want {
				if _, ok := fields.Get(wf.Name); !ok {
					s.problem(ProblemForm, "form POST without field %q of form_post_params", wf.Name)
					writeS3Error(w, http.StatusForbidden, "AccessDenied", fmt.Sprintf("Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$%s\", \"\"]", wf.Name))
					return
				}
			}
		}
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}

	// The copy goes through a pipe to a reader of the form; the reader always drains the
	// pipe, so the forward never waits on it for long.
	pr, pw := io.Pipe()
	rec := make(chan formRecord, 1)
	go func() {
		rec <- readForm(pr, boundary, func(n int64) {
			s.mu.Lock()
			s.counters.FileBytes += n
			s.mu.Unlock()
		})
	}()
	fb := &forwardBody{r: io.TeeReader(r.Body, pw), closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.s3URL, fb)
	if err != nil {
		pw.CloseWithError(err)
		<-rec
		writeS3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	req.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		req.Body = http.NoBody
		fb.Close()
	}
	if v := r.Header.Get("Content-Type"); v != "" {
		req.Header.Set("Content-Type", v)
	}
	resp, err := s.forward.Do(req)
	// The transport closes the body once it stops reading it, which may be after Do returns.
	<-fb.closed
	if err != nil {
		pw.CloseWithError(err)
	} else {
		// S3 may answer before reading all of the body (an early refusal): what it did not
		// read still goes to the form reader, from the client, so the record is whole.
		_, _ = io.Copy(pw, r.Body)
		pw.Close()
	}
	got := <-rec
	if err != nil {
		// The client went away (cut, cancelled) or S3 did: nothing to answer to.
		if r.Context().Err() == nil {
			writeS3Error(w, http.StatusBadGateway, "InternalError", "S3 unreachable: "+err.Error())
		}
		return
	}
	defer resp.Body.Close()
	key, _ := got.fields.Get("key")
	f.check(got, key)
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
		s.formPosted(key, got.fileBytes)
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// check records how the form differs from the form_post_params of its upload.
func (f *front) check(got formRecord, key string) {
	s := f.s
	if got.err != nil {
		s.problem(ProblemForm, "unreadable form: %v", got.err)
		return
	}
	if !got.hasFile {
		s.problem(ProblemForm, "form without a file field")
	}
	if len(got.afterFile) > 0 {
		s.problem(ProblemForm, "fields after the file (S3 ignores them): %s", strings.Join(got.afterFile, ", "))
	}
	want, ok := s.expectedForm(key)
	if !ok {
		s.problem(ProblemForm, "form POST for key %q, which no upload record names", key)
		return
	}
	if len(got.fields) != len(want) {
		s.problem(ProblemForm, "form has fields %s, form_post_params has %s", names(got.fields), names(want))
		return
	}
	for i := range want {
		if got.fields[i].Name != want[i].Name || got.fields[i].Value != want[i].Value {
			s.problem(ProblemForm, "form field %d is %q=%q, form_post_params has %q=%q", i, got.fields[i].Name, clip(got.fields[i].Value), want[i].Name, clip(want[i].Value))
			return
		}
	}
}

func names(p FormParams) string {
	n := make([]string, len(p))
	for i, f := range p {
		n[i] = f.Name
	}
	return strings.Join(n, ",")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// maxPreData is S3's limit on a form's bytes before the file (20 KB).
const maxPreData = 20 << 10

// preFields reads the fields before the file from the start of a form's body; ok is false
// when the file field does not start within head.
func preFields(head []byte, boundary string) (FormParams, bool) {
	if boundary == "" {
		return nil, false
	}
	mr := multipart.NewReader(bytes.NewReader(head), boundary)
	var fields FormParams
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, false
		}
		if part.FormName() == "file" {
			return fields, true
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return nil, false
		}
		fields = append(fields, s3test.FormField{Name: part.FormName(), Value: string(b)})
	}
}

// liveCount tells seen of every file byte as it passes.
type liveCount struct{ seen func(n int64) }

func (c liveCount) Write(p []byte) (int, error) {
	c.seen(int64(len(p)))
	return len(p), nil
}

// readForm reads a multipart form from r, counting the file field's bytes (and telling seen
// of them as they pass), and drains r.
func readForm(r io.Reader, boundary string, seen func(n int64)) (rec formRecord) {
	defer func() { _, _ = io.Copy(io.Discard, r) }()
	if boundary == "" {
		rec.err = errors.New("no multipart boundary")
		return rec
	}
	mr := multipart.NewReader(r, boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return rec
		}
		if err != nil {
			rec.err = err
			return rec
		}
		name := part.FormName()
		switch {
		case rec.hasFile:
			rec.afterFile = append(rec.afterFile, name)
		case name == "file":
			rec.hasFile, rec.fileName = true, part.FileName()
			n, err := io.Copy(liveCount{seen}, part)
			rec.fileBytes = n
			if err != nil {
				rec.err = err
				return rec
			}
		default:
			var b bytes.Buffer
			if _, err := io.Copy(&b, io.LimitReader(part, 1<<20)); err != nil {
				rec.err = err
				return rec
			}
			rec.fields = append(rec.fields, s3test.FormField{Name: name, Value: b.String()})
		}
		part.Close()
	}
}

// forwardBody is the body of the forwarded request; closed tells when the transport is done
// with it.
type forwardBody struct {
	r      io.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *forwardBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *forwardBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// s3Error is S3's XML error answer.
type s3Error struct {
	XMLName xml.Name `xml:"Error"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
}

func writeS3Error(w http.ResponseWriter, status int, code, msg string) {
	b, _ := xml.Marshal(s3Error{Code: code, Message: msg})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s%s\n", xml.Header, b)
}
