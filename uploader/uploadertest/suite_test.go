package uploadertest_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

// rawServer is a small service of the UploadGig kind, to run the suite's paths for a provider
// that cannot resume and has an account-wide rate limit: POST /upload with the raw file and a
// Slug, an md5 it checks, errors inside 200 answers. A body that does not arrive whole is
// dropped: only complete files are stored.
type rawServer struct {
	faults uploadertest.Faults
	key    string
	dir    string

	mu        sync.Mutex
	stored    int
	next      int
	rateLimit time.Duration
}

func (s *rawServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	if r.Header.Get("Authorization") != "Key "+s.key {
		reply(map[string]string{"code": "0", "result": "Email or password was incorrect!"})
		return
	}
	s.mu.Lock()
	limited := s.rateLimit
	s.rateLimit = 0
	s.mu.Unlock()
	if limited > 0 {
		reply(map[string]any{"code": "-3", "result": "you can't login a few minutes", "wait": int(limited / time.Second)})
		return
	}
	size, err := strconv.ParseInt(r.Header.Get("Content-Length"), 10, 64)
	if err != nil || len(r.TransferEncoding) > 0 {
		http.Error(w, "length required", http.StatusLengthRequired)
		return
	}
	sum := md5.New()
	var buf bytes.Buffer
	if n, err := io.Copy(io.MultiWriter(sum, &buf), r.Body); err != nil || n != size {
		return // cut: nothing stored
	}
	if hex.EncodeToString(sum.Sum(nil)) != r.Header.Get("Content-MD5-Hex") {
		reply(map[string]string{"code": "0", "result": "checksum mismatch"})
		return
	}
	s.mu.Lock()
	s.next++
	id := strconv.Itoa(s.next)
	s.stored++
	s.mu.Unlock()
	if err := os.WriteFile(filepath.Join(s.dir, id), buf.Bytes(), 0o600); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	reply(map[string]any{"code": "1", "result": map[string]string{"id": id, "url": "http://x/file/" + id + "/" + r.Header.Get("Slug")}})
}

// rawProvider uploads to rawServer in one POST; it needs the md5 first.
type rawProvider struct{ api *uploader.API }

func (p *rawProvider) NeedDigests() []uploader.Digest { return []uploader.Digest{uploader.MD5} }

func (p *rawProvider) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	var out struct {
		Result struct{ ID, URL string } `json:"result"`
	}
	body := uploader.NewFileBody(job.File, 0, job.File.Size).WithProgress(job.ReportProgress)
	_, err := p.api.Send(ctx, &uploader.Request{
		Method: http.MethodPost, URL: "/upload", Body: body, Out: &out, What: "raw: upload",
		Header: http.Header{"Slug": {job.File.Name}, "Content-MD5-Hex": {job.Digests[uploader.MD5]}},
	})
	if err != nil {
		return uploader.Result{}, err
	}
	return uploader.Result{ID: out.Result.ID, URL: out.Result.URL}, nil
}

func readRawError(a *uploader.Answer, f *uploader.Fault) {
	var e struct {
		Code   string          `json:"code"`
		Result json.RawMessage `json:"result"`
		Wait   int             `json:"wait"`
	}
	if json.Unmarshal(a.Body, &e) != nil || e.Code == "" || e.Code == "1" {
		return
	}
	f.Failed, f.Code = true, e.Code
	_ = json.Unmarshal(e.Result, &f.Message)
	if e.Code == "-3" {
		f.Class, f.After = uploader.RateLimited, time.Duration(e.Wait)*time.Second
	}
}

// The suite's paths for a provider that cannot resume, needs a digest and meets an
// account-wide rate limit.
func TestSuiteNotResumable(t *testing.T) {
	s := &rawServer{key: "k3y-of-the-account", dir: t.TempDir()}
	l, err := uploadertest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := uploadertest.Serve(l, s.faults.Wrap(s))
	defer srv.Close()
	base := "http://" + l.Addr().String()
	newProvider := func(key string) func(testing.TB, *uploader.Client) uploader.Provider {
		return func(_ testing.TB, c *uploader.Client) uploader.Provider {
			return &rawProvider{api: &uploader.API{
				Client: c, Base: base, Header: http.Header{"Authorization": {"Key " + key}},
				Errors: readRawError, Redactor: uploader.NewRedactor(key),
			}}
		}
	}
	uploadertest.Run(t, uploadertest.Harness{
		NewProvider:        newProvider(s.key),
		NewBadAuthProvider: newProvider("wrong"),
		Secret:             s.key,
		Stored: func(_ testing.TB, res uploader.Result) (io.ReadCloser, error) {
			return os.Open(filepath.Join(s.dir, res.ID))
		},
		Stats: func() uploadertest.Stats {
			s.mu.Lock()
			defer s.mu.Unlock()
			return uploadertest.Stats{Created: s.stored, BytesReceived: s.faults.BodyBytes(http.MethodPost)}
		},
		FailNext: s.faults.FailNext,
		Listener: l,
		Stall:    s.faults.Stall,
		RateLimit: func(after time.Duration) {
			s.mu.Lock()
			s.rateLimit = after
			s.mu.Unlock()
		},
	})
}
