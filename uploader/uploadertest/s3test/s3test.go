// Package s3test gives emulators an S3 endpoint to hand out: a real MinIO server started for
// the test, or, when CHUTE_TEST_NO_MINIO=1 says so (and in `chute demo`), a strict in-process
// stand-in that implements the two operations chute's providers use, presigned PUT and POST
// policy uploads, with S3's checks and S3's XML errors. Both sit behind one type, Server, so
// an emulator does not care which one it got.
//
// MinIO (AGPL) is only ever run as a separate program, never linked into chute.
package s3test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/chute-dev/chute/uploader/uploadertest"
)

// The fixed test credentials, region and bucket. They protect nothing: every server listens
// on 127.0.0.1 only and lives as long as one test or one demo.
const (
	AccessKey = "chutetestaccess"
	SecretKey = "chutetestsecret-0123456789"
	Region    = "us-east-1"
	Bucket    = "chute"
)

// NoMinIOEnv names the variable that, set to 1, makes Start use the in-process stand-in.
const NoMinIOEnv = "CHUTE_TEST_NO_MINIO"

// MinIOModule is the MinIO server the tests are run with, as `go install` takes it.
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// Kind says which server is behind a Server.
type Kind string

// The two kinds of Server.
const (
	KindMinIO   Kind = "minio"
	KindStandIn Kind = "stand-in"
)

// Options configure a Server.
type Options struct {
	// Dir holds the server's data. Empty: a new temporary directory, removed on Close.
	Dir string
	// Bucket is created at start (default Bucket).
	Bucket string
	// Direct points clients at MinIO itself rather than at a relay in front of it: no
	// Listener to cut connections with, one copy less for benchmarks. The stand-in has no
	// relay either way.
	Direct bool
	// Wrap, when set, wraps the S3 handler (the relay's or the stand-in's) inside the request
	// log: an emulator's own fault knobs (uploadertest.Faults.Wrap) without a second hop.
	// Not with Direct.
	Wrap func(http.Handler) http.Handler
}

// handler is h inside opts.Wrap and the request log.
func (o Options) handler(rc *recorder, h http.Handler) http.Handler {
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	return rc.wrap(h)
}

// Server is an S3 endpoint on 127.0.0.1 with one bucket. Its methods are safe for
// concurrent use.
type Server struct {
	// Listener is the listener S3 clients connect through (an HTTP relay in front of MinIO, the
	// stand-in's own listener otherwise): cut connections with it, count the bytes it read.
	// Nil for MinIO started with Options.Direct.
	Listener *uploadertest.Listener

	kind     Kind
	endpoint string // http://127.0.0.1:PORT, what presigned URLs point at
	bucket   string
	client   *minio.Client // presigns offline (region set) for the address clients use
	objects  objectStore
	rec      *recorder
	stop     func() error
	exited   <-chan struct{} // MinIO's process ended; nil for the stand-in
	once     sync.Once
	closeErr error
}

// Object is what the server holds under a key.
type Object struct {
	Key  string
	Size int64
	// ETag without quotes: the hex MD5 of the bytes for a single PUT or POST upload.
	ETag        string
	ContentType string
}

// objectStore reads the objects of one backend.
type objectStore interface {
	stat(ctx context.Context, key string) (Object, error)
	open(ctx context.Context, key string) (io.ReadCloser, error)
	remove(ctx context.Context, key string) error
}

// Start returns a MinIO server for the test, or the stand-in when CHUTE_TEST_NO_MINIO=1. When
// MinIO is not installed and the variable is not set, the test fails: a test that needs a
// real S3 server does not pass silently without one. The server stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options; an empty opts.Dir is a directory of the test's.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	var (
		s   *Server
		err error
	)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if os.Getenv(NoMinIOEnv) == "1" {
		s, err = StartStandIn(opts)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s, err = StartMinIO(ctx, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("s3test: stopping the %s server: %v", s.kind, err)
		}
	})
	return s
}

// newServer wires the parts every backend shares.
func newServer(kind Kind, l *uploadertest.Listener, host, bucket string, objects objectStore, rc *recorder, stop func() error) (*Server, error) {
	endpoint := "http://" + host
	client, err := newClient(host)
	if err != nil {
		return nil, err
	}
	return &Server{Listener: l, kind: kind, endpoint: endpoint, bucket: bucket, client: client, objects: objects, rec: rc, stop: stop}, nil
}

// newClient is a minio-go client for host with the region set, so that presigning never asks
// the server for the bucket's location.
func newClient(host string) (*minio.Client, error) {
	c, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(AccessKey, SecretKey, ""),
		Secure:       false,
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3test: minio client: %w", err)
	}
	return c, nil
}

// Kind says whether MinIO or the stand-in is behind s.
func (s *Server) Kind() Kind { return s.kind }

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.endpoint }

// Bucket is the bucket presigned URLs and forms write into.
func (s *Server) Bucket() string { return s.bucket }

// Requests are the S3 requests the server answered, oldest first (none for MinIO started
// with Options.Direct). It waits (up to a second) for the requests being answered to end.
func (s *Server) Requests() []Request { return s.rec.requests() }

// Stall holds every S3 request until Stall(false) (or until its client gives up): a server
// that stopped answering. No effect on MinIO started with Options.Direct.
func (s *Server) Stall(on bool) { s.rec.gate.Stall(on) }

// Close stops the server (and MinIO's process) and removes a temporary data directory.
func (s *Server) Close() error {
	s.once.Do(func() { s.closeErr = s.stop() })
	return s.closeErr
}

// PresignPut returns a presigned PUT URL for key, valid for expires (1 s to 7 days): what a
// provider's API hands out for a direct upload. Only the host is signed, so any Content-Type
// may be sent with it.
func (s *Server) PresignPut(ctx context.Context, key string, expires time.Duration) (string, error) {
	u, err := s.client.PresignedPutObject(ctx, s.bucket, key, expires)
	if err != nil {
		return "", fmt.Errorf("s3test: presign PUT %q: %w", key, err)
	}
	return u.String(), nil
}

// ExpiredPutURL returns a PUT URL for key correctly signed an hour ago and valid for a
// minute: an expired URL, for an emulator's "expired URL" knob.
func (s *Server) ExpiredPutURL(key string) (string, error) {
	u, err := url.Parse(s.endpoint + "/" + s.bucket + "/" + key)
	if err != nil {
		return "", fmt.Errorf("s3test: %w", err)
	}
	return presignV4(http.MethodPut, u, time.Now().Add(-time.Hour), time.Minute), nil
}

// FormField is one field of a POST policy form and the policy's condition on it.
type FormField struct {
	// Name and Value are the field as the form carries it.
	Name, Value string
	// StartsWith makes the condition ["starts-with", "$Name", Prefix] (an empty Prefix allows
	// any value); otherwise the condition requires Value exactly.
	StartsWith bool
	Prefix     string
}

// PostPolicy describes a presigned POST form.
type PostPolicy struct {
	// Fields are the form's fields in order, each with its condition; one must be "key".
	// The signing fields (policy, x-amz-algorithm, x-amz-credential, x-amz-date,
	// x-amz-signature) go where a field named "policy" (with no value) stands, else after
	// the others. The file goes last, in a field named "file".
	Fields []FormField
	// Expires is how long the policy is valid (default one hour).
	Expires time.Duration
	// MaxSize, when > 0, adds the condition ["content-length-range", 0, MaxSize].
	MaxSize int64
}

// PostForm is a presigned POST form: post Fields in this order, then the file as "file".
type PostForm struct {
	URL    string
	Fields []FormField
}

// Values are the form's fields as name/value pairs, in order.
func (f PostForm) Values() [][2]string {
	v := make([][2]string, len(f.Fields))
	for i, fl := range f.Fields {
		v[i] = [2]string{fl.Name, fl.Value}
	}
	return v
}

// FieldsJSON is the form's fields as one JSON object, keys in the form's order: what an API
// such as Xvid's returns as `form_post_params`.
func (f PostForm) FieldsJSON() (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, fl := range f.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(fl.Name)
		if err != nil {
			return nil, fmt.Errorf("s3test: %w", err)
		}
		v, err := json.Marshal(fl.Value)
		if err != nil {
			return nil, fmt.Errorf("s3test: %w", err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// PresignPost signs a POST policy form for s's bucket (AWS SigV4, as minio-go's
// PresignedPostPolicy does). minio-go's PostPolicy cannot put a starts-with condition on an
// arbitrary field such as `$name` or `$chunk`, which the Xvid service's forms have, so the
// policy document is built here and signed with minio-go's signer.
func (s *Server) PresignPost(p PostPolicy) (PostForm, error) {
	now := time.Now().UTC()
	exp := p.Expires
	if exp <= 0 {
		exp = time.Hour
	}
	conds := []any{map[string]string{"bucket": s.bucket}}
	hasKey := false
	seen := map[string]bool{}
	at := len(p.Fields) // where the signing fields go
	var fields []FormField
	for _, f := range p.Fields {
		name := strings.ToLower(f.Name)
		if name == "policy" && f.Value == "" && at == len(p.Fields) {
			at = len(fields)
			continue
		}
		fields = append(fields, f)
		switch {
		case name == "":
			return PostForm{}, errors.New("s3test: a form field without a name")
		case name == "file" || name == "policy" || strings.HasPrefix(name, "x-amz-"):
			return PostForm{}, fmt.Errorf("s3test: form field %q is set by the signer or is the file", f.Name)
		case seen[name]:
			return PostForm{}, fmt.Errorf("s3test: form field %q twice", f.Name)
		}
		seen[name] = true
		hasKey = hasKey || name == "key"
		if f.StartsWith {
			if !strings.HasPrefix(f.Value, f.Prefix) {
				return PostForm{}, fmt.Errorf("s3test: field %q: value %q does not start with %q", f.Name, f.Value, f.Prefix)
			}
			conds = append(conds, []string{"starts-with", "$" + f.Name, f.Prefix})
		} else {
			conds = append(conds, []string{"eq", "$" + f.Name, f.Value})
		}
	}
	if !hasKey {
		return PostForm{}, errors.New(`s3test: a POST policy form needs a "key" field`)
	}
	if p.MaxSize > 0 {
		conds = append(conds, []any{"content-length-range", 0, p.MaxSize})
	}
	credential := signer.GetCredential(AccessKey, Region, now, signer.ServiceTypeS3)
	date := now.Format(amzDateFormat)
	conds = append(conds,
		[]string{"eq", "$x-amz-algorithm", signAlgorithm},
		[]string{"eq", "$x-amz-credential", credential},
		[]string{"eq", "$x-amz-date", date},
	)
	doc, err := json.Marshal(map[string]any{
		"expiration": now.Add(exp).Format("2006-01-02T15:04:05.000Z"),
		"conditions": conds,
	})
	if err != nil {
		return PostForm{}, fmt.Errorf("s3test: policy: %w", err)
	}
	policy := base64.StdEncoding.EncodeToString(doc)
	if at > len(fields) {
		at = len(fields)
	}
	signing := []FormField{
		{Name: "policy", Value: policy},
		{Name: "x-amz-algorithm", Value: signAlgorithm},
		{Name: "x-amz-credential", Value: credential},
		{Name: "x-amz-date", Value: date},
		{Name: "x-amz-signature", Value: signer.PostPresignSignatureV4(policy, now, SecretKey, Region)},
	}
	fields = slices.Insert(fields, at, signing...)
	return PostForm{URL: s.endpoint + "/" + s.bucket + "/", Fields: fields}, nil
}

// Stat says what s holds under key; an error satisfying errors.Is(err, fs.ErrNotExist) when
// nothing.
func (s *Server) Stat(ctx context.Context, key string) (Object, error) {
	return s.objects.stat(ctx, key)
}

// Open reads the object under key.
func (s *Server) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.objects.open(ctx, key)
}

// MD5 reads the object under key and returns the hex MD5 of its bytes, whatever its ETag says.
func (s *Server) MD5(ctx context.Context, key string) (string, error) {
	r, err := s.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("s3test: reading %q: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Delete removes the object under key (no error when there is none, as S3).
func (s *Server) Delete(ctx context.Context, key string) error {
	return s.objects.remove(ctx, key)
}
