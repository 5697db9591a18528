package tus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/tus"
	"github.com/chute-dev/chute/uploader/tus/tustest"
	"github.com/chute-dev/chute/uploader/uploadertest"
	tusd "github.com/tus/tusd/v2/pkg/handler"
)

const secret = "Bearer s3cr3t-t0ken"

// startServer runs a real tusd that requires an Authorization header, as a private server would.
func startServer(t *testing.T) *tustest.Server {
	t.Helper()
	srv, err := tustest.Start(tustest.Options{
		Dir: t.TempDir(),
		PreCreate: func(hook tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
			if hook.HTTPRequest.Header.Get("Authorization") != secret {
				return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusd.NewError("ERR_UNAUTHORIZED", "authorization refused", http.StatusUnauthorized)
			}
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func provider(t testing.TB, srv *tustest.Server, client *uploader.Client, auth string, chunk int64) uploader.Provider {
	p, err := tus.New(uploader.Env{Name: "own", Endpoint: srv.URL, Client: client},
		tus.Options{Headers: map[string]string{"Authorization": auth}, ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func harness(srv *tustest.Server, chunk int64) uploadertest.Harness {
	return uploadertest.Harness{
		NewProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return provider(t, srv, c, secret, chunk)
		},
		NewBadAuthProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return provider(t, srv, c, "Bearer wrong", chunk)
		},
		Secret:    "s3cr3t-t0ken",
		Stored:    func(t testing.TB, res uploader.Result) (io.ReadCloser, error) { return srv.Stored(res.ID) },
		Stats:     srv.Stats,
		FailNext:  srv.FailNext,
		Listener:  srv.Listener,
		Stall:     srv.Stall,
		Resumable: true,
	}
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	uploadertest.Run(t, harness(srv, 0))
}

func TestConformanceChunked(t *testing.T) {
	srv := startServer(t)
	uploadertest.Run(t, harness(srv, 4<<20))
}

// An upload the server no longer has (expired, 404 on HEAD) is started anew, once.
func TestExpiredUploadStartsAgain(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	p := provider(t, srv, client, secret, 0)
	path := uploadertest.MakeFile(t, dir, "a.mp4", 1<<20)
	f, err := uploader.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cp []byte
	job := &uploader.Job{File: f, Save: func(_ context.Context, b []byte) error { cp = b; return nil }}
	res, err := p.Upload(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	// The server forgets the upload, as tusd does when it expires.
	if err := os.Remove(filepath.Join(srv.Dir(), res.ID)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(srv.Dir(), res.ID+".info"))
	job.Checkpoint = cp
	res2, err := p.Upload(context.Background(), job)
	if err != nil {
		t.Fatalf("upload after expiry: %v", err)
	}
	if res2.ID == res.ID {
		t.Fatal("the expired upload's id was reused")
	}
	if got := srv.Stats().Created; got != 2 {
		t.Fatalf("%d uploads created, want 2 (the first and one after expiry)", got)
	}
}

// Answers with short error bodies (what tusd sends for a mismatched offset or a lost upload)
// come back as classed errors.
func TestShortErrorBodies(t *testing.T) {
	for _, c := range []struct {
		status int
		gone   bool
		class  uploader.Class
	}{
		{http.StatusConflict, false, uploader.Transient},
		{http.StatusNotFound, true, uploader.Transient},
		{http.StatusGone, true, uploader.Transient},
		{http.StatusRequestEntityTooLarge, false, uploader.Permanent},
		{http.StatusForbidden, false, uploader.Permanent},
		{http.StatusBadGateway, false, uploader.Transient},
	} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				http.Error(w, "ERR_SOMETHING: short", c.status)
			}))
			defer hs.Close()
			client := uploader.NewClient(uploader.ClientOptions{})
			defer client.CloseIdle()
			tc := tus.NewClient(tus.ClientOptions{HTTP: client})
			path := uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 1000)
			f, _ := uploader.OpenFile(path)
			defer f.Close()
			_, err := tc.Send(context.Background(), hs.URL+"/files/x", f, 0, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, tus.ErrGone); got != c.gone {
				t.Errorf("ErrGone %v, want %v: %v", got, c.gone, err)
			}
			if class, _ := uploader.Classify(err); class != c.class && !c.gone {
				t.Errorf("class %v, want %v: %v", class, c.class, err)
			}
			if !strings.Contains(err.Error(), "ERR_SOMETHING") {
				t.Errorf("the server's words are missing from %q", err)
			}
		})
	}
}

// Credentials in the endpoint's URL never reach the result.
func TestResultURLHasNoCredentials(t *testing.T) {
	srv := startServer(t)
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	endpoint := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1)
	p, err := tus.New(uploader.Env{Endpoint: endpoint, Client: client}, tus.Options{Headers: map[string]string{"Authorization": secret}})
	if err != nil {
		t.Fatal(err)
	}
	path := uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 10)
	f, _ := uploader.OpenFile(path)
	defer f.Close()
	res, err := p.Upload(context.Background(), &uploader.Job{File: f})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.URL, "hunter2") || strings.Contains(res.URL, "user") {
		t.Fatalf("result URL carries credentials: %s", res.URL)
	}
}

// fakeTUS is a minimal TUS server for faults tusd does not make: it answers creation with
// location, HEAD with the bytes it holds, and PATCH through patch.
type fakeTUS struct {
	location string
	patch    func(w http.ResponseWriter, r *http.Request)
	deny     func(w http.ResponseWriter, r *http.Request) bool
}

func (f *fakeTUS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.deny != nil && f.deny(w, r) {
		return
	}
	switch r.Method {
	case http.MethodPost:
		w.Header().Set("Location", f.location)
		w.WriteHeader(http.StatusCreated)
	case http.MethodHead:
		w.Header().Set("Upload-Offset", "0")
	case http.MethodPatch:
		f.patch(w, r)
	}
}

func uploadOnce(t *testing.T, client *uploader.Client, endpoint string, opts tus.Options, size int64) (uploader.Result, error) {
	t.Helper()
	p, err := tus.New(uploader.Env{Endpoint: endpoint, Client: client}, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", size))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.Upload(ctx, &uploader.Job{File: f})
	if ctx.Err() != nil {
		t.Fatalf("the upload hung: %v", err)
	}
	return res, err
}

// The token a server puts in the upload URL's query never shows in an error, even when the
// server echoes the URL and the token in its answer.
func TestUploadURLTokenNotInErrors(t *testing.T) {
	const token = "TOK-s3cret-41"
	hs := httptest.NewServer(&fakeTUS{
		location: "/files/u1?token=" + token,
		patch: func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "upload "+r.URL.RequestURI()+" failed; token "+token+" is broken", http.StatusInternalServerError)
		},
	})
	defer hs.Close()
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	_, err := uploadOnce(t, client, hs.URL+"/files/", tus.Options{}, 100)
	if err == nil {
		t.Fatal("the PATCH failed, the upload did not")
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("the error shows the upload token: %v", err)
	}
	if !strings.Contains(err.Error(), "is broken") {
		t.Fatalf("the server's words are missing: %v", err)
	}
}

// A 401 that echoes the Authorization value does not carry it into the error.
func TestEchoedAuthorizationNotInErrors(t *testing.T) {
	hs := httptest.NewServer(&fakeTUS{deny: func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "credentials "+r.Header.Get("Authorization")+" refused", http.StatusUnauthorized)
		return true
	}})
	defer hs.Close()
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	_, err := uploadOnce(t, client, hs.URL+"/files/", tus.Options{Headers: map[string]string{"Authorization": "Bearer my-own-s3cret"}}, 10)
	if err == nil || !uploader.IsPermanent(err) {
		t.Fatalf("401: %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), "my-own-s3cret") {
		t.Fatalf("the error shows the Authorization value: %v", err)
	}
}

// Credentials in the endpoint (user info, ?key=) go with the creation, the HEAD and every
// PATCH, though tusd answers with an absolute Location that carries neither.
func TestEndpointCredentialsOnEveryRequest(t *testing.T) {
	tusd, err := tustest.NewHandler(tustest.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		if !ok || u != "user" || pw != "pa:ss w0rd" || r.URL.Query().Get("key") != "K3y-v4lue" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[r.Method]++
		mu.Unlock()
		tusd.ServeHTTP(w, r)
	}))
	defer hs.Close()
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	endpoint := strings.Replace(hs.URL, "http://", "http://"+url.UserPassword("user", "pa:ss w0rd").String()+"@", 1) + "/files/?key=K3y-v4lue"
	p, err := tus.New(uploader.Env{Endpoint: endpoint, Client: client}, tus.Options{ChunkSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 1000))
	var cp []byte
	job := &uploader.Job{File: f, Save: func(_ context.Context, b []byte) error { cp = b; return nil }}
	res, err := p.Upload(context.Background(), job)
	if err != nil {
		t.Fatalf("upload with credentials in the endpoint: %v", err)
	}
	job.Checkpoint = cp // a resume asks the offset with HEAD
	if _, err := p.Upload(context.Background(), job); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if seen["POST"] != 1 || seen["HEAD"] != 1 || seen["PATCH"] != 4 {
		t.Fatalf("authorized requests %v, want 1 POST, 1 HEAD, 4 PATCH", seen)
	}
	if strings.Contains(res.URL, "K3y") || strings.Contains(res.URL, "w0rd") {
		t.Fatalf("result URL carries credentials: %s", res.URL)
	}
}

// A server that answers a PATCH and then trickles its body a byte at a time cannot hold the
// upload: the answer must be read within the client's AnswerTimeout.
func TestTrickledPatchAnswer(t *testing.T) {
	var faults uploadertest.Faults
	faults.Trickle(200 * time.Millisecond)
	hs := httptest.NewServer(faults.Wrap(&fakeTUS{location: "/files/u1", patch: func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Upload-Offset", fmt.Sprint(n))
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(strings.Repeat(".", 100)))
	}}))
	defer hs.Close()
	client := uploader.NewClient(uploader.ClientOptions{AnswerTimeout: time.Second})
	defer client.CloseIdle()
	start := time.Now()
	_, err := uploadOnce(t, client, hs.URL+"/files/", tus.Options{}, 1000)
	if err == nil || uploader.IsPermanent(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("trickled PATCH answer: %v after %v, want a transient error within seconds", err, time.Since(start))
	}
}

// With creation_with_upload, a small file goes in its creation request where tusd announces
// the extension: one POST with the data, no PATCH, no checkpoint; the extensions are asked
// once per provider. Without the option (the conformance tests), nothing changes.
func TestSmallFileInCreationRequest(t *testing.T) {
	srv := startServer(t)
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	p, err := tus.New(uploader.Env{Name: "own", Endpoint: srv.URL, Client: client},
		tus.Options{Headers: map[string]string{"Authorization": secret}, CreationWithUpload: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, size := range []int64{4096, 1 << 20} {
		path := uploadertest.MakeFile(t, dir, fmt.Sprintf("small%d.mp4", i), size)
		f := uploadertest.OpenFile(t, path)
		saved := 0
		res, err := p.Upload(context.Background(), &uploader.Job{File: f, Save: func(context.Context, []byte) error { saved++; return nil }})
		if err != nil {
			t.Fatalf("upload %d bytes: %v", size, err)
		}
		uploadertest.SameBytes(t, harness(srv, 0), res, path)
		if saved != 0 {
			t.Errorf("%d-byte file: %d checkpoints saved, want none (nothing to resume)", size, saved)
		}
	}
	seen := map[string]int{}
	for _, r := range srv.Faults.Requests() {
		seen[r.Method]++
	}
	if seen["OPTIONS"] != 1 || seen["POST"] != 2 || seen["PATCH"] != 0 {
		t.Fatalf("requests %v, want 1 OPTIONS, 2 POST, no PATCH", seen)
	}
	// Above the limit: a POST, the checkpoint, a PATCH.
	path := uploadertest.MakeFile(t, dir, "large.mp4", 1<<20+1)
	saved := 0
	res, err := p.Upload(context.Background(), &uploader.Job{File: uploadertest.OpenFile(t, path), Save: func(context.Context, []byte) error { saved++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	uploadertest.SameBytes(t, harness(srv, 0), res, path)
	seen = map[string]int{}
	for _, r := range srv.Faults.Requests() {
		seen[r.Method]++
	}
	if saved != 1 || seen["POST"] != 3 || seen["PATCH"] != 1 {
		t.Fatalf("large file: %d checkpoints, requests %v; want 1 checkpoint, 3 POST, 1 PATCH", saved, seen)
	}
}

// A server that does not announce creation-with-upload gets a POST and a PATCH, as before.
func TestNoCreationWithUploadWhereNotAnnounced(t *testing.T) {
	h, err := tustest.NewHandler(tustest.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method]++
		mu.Unlock()
		if r.Method == http.MethodOptions {
			w.Header().Set("Tus-Resumable", "1.0.0")
			w.Header().Set("Tus-Version", "1.0.0")
			w.Header().Set("Tus-Extension", "creation,termination")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method == http.MethodPost && r.ContentLength > 0 {
			http.Error(w, "no creation-with-upload here", http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	p, err := tus.New(uploader.Env{Endpoint: hs.URL + "/files/", Client: client}, tus.Options{CreationWithUpload: true})
	if err != nil {
		t.Fatal(err)
	}
	f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 1000))
	for range 2 {
		if _, err := p.Upload(context.Background(), &uploader.Job{File: f, Save: func(context.Context, []byte) error { return nil }}); err != nil {
			t.Fatalf("upload: %v", err)
		}
	}
	if seen["OPTIONS"] != 1 || seen["POST"] != 2 || seen["PATCH"] != 2 {
		t.Fatalf("requests %v, want 1 OPTIONS, 2 POST, 2 PATCH", seen)
	}
}
