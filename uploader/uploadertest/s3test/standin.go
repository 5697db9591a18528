package s3test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chute-dev/chute/uploader/uploadertest"
)

// maxPutSize is S3's largest single PUT (5 GiB).
const maxPutSize = 5 << 30

// StartStandIn serves the in-process S3 stand-in on a free 127.0.0.1 port. It implements
// presigned PUT (SigV4 query signatures) and POST policy uploads (SigV4 policy signatures)
// on one bucket, as strictly as S3: a wrong or expired signature, a missing length, a chunked
// body, a policy condition not met, a field after the file are all refused with S3's XML
// errors. Objects are streamed to files under opts.Dir. It needs no testing.TB, so that
// `chute demo` can run it; Close stops it.
func StartStandIn(opts Options) (*Server, error) {
	dir, cleanup, err := dataDir(opts.Dir, "chute-s3-")
	if err != nil {
		return nil, err
	}
	bucket := opts.Bucket
	if bucket == "" {
		bucket = Bucket
	}
	objDir := filepath.Join(dir, "objects")
	if err := os.MkdirAll(objDir, 0o700); err != nil {
		cleanup()
		return nil, fmt.Errorf("s3test: %w", err)
	}
	l, err := uploadertest.Listen()
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("s3test: %w", err)
	}
	st := &standIn{dir: objDir, bucket: bucket, objects: map[string]Object{}, now: time.Now}
	rc := &recorder{}
	srv := &http.Server{Handler: opts.handler(rc, st), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if err != nil {
			err = srv.Close()
		}
		<-done
		cleanup()
		return err
	}
	s, err := newServer(KindStandIn, l, l.Addr().String(), bucket, st, rc, stop)
	if err != nil {
		stop()
		return nil, err
	}
	return s, nil
}

// standIn is the stand-in's S3 handler and object store.
type standIn struct {
	dir    string
	bucket string
	now    func() time.Time
	reqID  atomic.Int64

	mu      sync.Mutex
	objects map[string]Object
}

// s3Error is an S3 error answer.
type s3Error struct {
	XMLName    xml.Name `xml:"Error"`
	Status     int      `xml:"-"`
	Code       string   `xml:"Code"`
	Message    string   `xml:"Message"`
	Key        string   `xml:"Key,omitempty"`
	BucketName string   `xml:"BucketName,omitempty"`
	Resource   string   `xml:"Resource"`
	RequestID  string   `xml:"RequestId"`
	HostID     string   `xml:"HostId"`
}

func (e *s3Error) Error() string { return e.Code + ": " + e.Message }

func (st *standIn) fail(w http.ResponseWriter, r *http.Request, e *s3Error) {
	infoOf(r.Context()).code = e.Code
	e.Resource = r.URL.Path
	e.RequestID = strconv.FormatInt(st.reqID.Add(1), 16)
	e.HostID = "chute-s3-stand-in"
	if e.BucketName == "" {
		e.BucketName = st.bucket
	}
	body, err := xml.Marshal(e)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", e.RequestID)
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)))
	w.WriteHeader(e.Status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(body)
}

func (st *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != st.bucket {
		st.fail(w, r, &s3Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist", BucketName: bucket})
		return
	}
	switch {
	case r.Method == http.MethodPut && key != "":
		st.put(w, r, key)
	case r.Method == http.MethodPost && key == "":
		st.post(w, r)
	case key != "" && r.URL.Query().Has("X-Amz-Signature"):
		// A presigned URL used with another method: its signature does not match, as on S3.
		if e := verifyPresigned(r, st.now()); e != nil {
			e.Key = key
			st.fail(w, r, e)
			return
		}
		fallthrough
	default:
		st.fail(w, r, &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
			Message: "The stand-in implements presigned PUT of an object and POST policy uploads to the bucket only."})
	}
}

// noLength is S3's answer to a request without a Content-Length: a chunked body, or no
// header at all (which HTTP reads as an empty body, but S3 refuses).
func noLength(r *http.Request) *s3Error {
	if r.ContentLength >= 0 && len(r.TransferEncoding) == 0 && r.Header.Get("Content-Length") != "" {
		return nil
	}
	return &s3Error{Status: http.StatusLengthRequired, Code: "MissingContentLength", Message: "You must provide the Content-Length HTTP header."}
}

func (st *standIn) put(w http.ResponseWriter, r *http.Request, key string) {
	if e := verifyPresigned(r, st.now()); e != nil {
		e.Key = key
		st.fail(w, r, e)
		return
	}
	if e := noLength(r); e != nil {
		st.fail(w, r, e)
		return
	}
	if r.ContentLength > maxPutSize {
		st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "EntityTooLarge", Message: "Your proposed upload exceeds the maximum allowed object size.", Key: key})
		return
	}
	var wantMD5 []byte
	if v := r.Header.Get("Content-MD5"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) != md5.Size {
			st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "InvalidDigest", Message: "The Content-MD5 you specified was invalid.", Key: key})
			return
		}
		wantMD5 = b
	}
	tmp, sum, n, err := st.receive(r.Body, r.ContentLength+1)
	if err != nil || n != r.ContentLength {
		// The client went away (or sent less than it announced): S3 stores nothing.
		infoOf(r.Context()).broken = err != nil
		st.discard(tmp)
		st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "You did not provide the number of bytes specified by the Content-Length HTTP header.", Key: key})
		return
	}
	if wantMD5 != nil && string(wantMD5) != string(sum) {
		st.discard(tmp)
		st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "BadDigest", Message: "The Content-MD5 you specified did not match what we received.", Key: key})
		return
	}
	obj, err := st.commit(tmp, key, n, sum, r.Header.Get("Content-Type"))
	if err != nil {
		st.fail(w, r, &s3Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: err.Error(), Key: key})
		return
	}
	w.Header().Set("ETag", `"`+obj.ETag+`"`)
	w.WriteHeader(http.StatusOK)
}

// receive streams body (at most limit bytes) into a temporary file, hashing it on the way.
func (st *standIn) receive(body io.Reader, limit int64) (tmp string, sum []byte, n int64, err error) {
	f, err := os.CreateTemp(st.dir, ".incoming-*")
	if err != nil {
		return "", nil, 0, err
	}
	h := md5.New()
	n, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(body, limit))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), h.Sum(nil), n, err
}

func (st *standIn) discard(tmp string) {
	if tmp != "" {
		_ = os.Remove(tmp)
	}
}

// path is where key's bytes live: named by a hash, so that no key can escape the directory.
func (st *standIn) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(st.dir, hex.EncodeToString(sum[:]))
}

// commit makes a received file the object under key, replacing any older one, as S3 does.
func (st *standIn) commit(tmp, key string, size int64, sum []byte, contentType string) (Object, error) {
	if contentType == "" {
		contentType = "binary/octet-stream"
	}
	obj := Object{Key: key, Size: size, ETag: hex.EncodeToString(sum), ContentType: contentType}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := os.Rename(tmp, st.path(key)); err != nil {
		_ = os.Remove(tmp)
		return Object{}, fmt.Errorf("storing %q: %w", key, err)
	}
	st.objects[key] = obj
	return obj, nil
}

func (st *standIn) stat(_ context.Context, key string) (Object, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	obj, ok := st.objects[key]
	if !ok {
		return Object{}, fmt.Errorf("s3test: object %q: %w", key, fs.ErrNotExist)
	}
	return obj, nil
}

func (st *standIn) open(_ context.Context, key string) (io.ReadCloser, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.objects[key]; !ok {
		return nil, fmt.Errorf("s3test: object %q: %w", key, fs.ErrNotExist)
	}
	// Opened under the lock: a later overwrite renames over the name, this handle keeps the
	// bytes it opened.
	f, err := os.Open(st.path(key))
	if err != nil {
		return nil, fmt.Errorf("s3test: open %q: %w", key, err)
	}
	return f, nil
}

func (st *standIn) remove(_ context.Context, key string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.objects[key]; !ok {
		return nil
	}
	delete(st.objects, key)
	if err := os.Remove(st.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("s3test: delete %q: %w", key, err)
	}
	return nil
}
