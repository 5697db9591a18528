package tus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
