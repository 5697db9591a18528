package tus_test

import (
	"io"
	"net/http"
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
		Secret:   "s3cr3t-t0ken",
		Stored:   func(t testing.TB, res uploader.Result) (io.ReadCloser, error) { return srv.Stored(res.ID) },
		Stats:    srv.Stats,
		FailNext: srv.FailNext,
		Listener: srv.Listener,
		Stall:    srv.Stall,
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
