package xvid_test

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/xvid"
	"github.com/chute-dev/chute/uploader/xvid/xvidtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	clientID     = "chute-client"
	clientSecret = "xv-s3cr3t+client/secret=0123456789"
)

func startEmulator(t testing.TB, edit func(*xvidtest.Options)) *xvidtest.Server {
	t.Helper()
	o := xvidtest.Options{ClientID: clientID, ClientSecret: clientSecret, Completing: 50 * time.Millisecond}
	if edit != nil {
		edit(&o)
	}
	return xvidtest.StartTest(t, o)
}

// newProvider returns a provider pointed at srv that polls every 20ms; edit changes its
// options.
func newProvider(t testing.TB, srv *xvidtest.Server, client *uploader.Client, edit func(*xvid.Options)) *xvid.Provider {
	t.Helper()
	o := xvid.DefaultOptions()
	o.ClientID, o.ClientSecret, o.PipelineID = clientID, clientSecret, xvidtest.DefaultPipeline
	o.PollInterval = 20 * time.Millisecond
	if edit != nil {
		edit(&o)
	}
	p, err := xvid.New(uploader.Env{Name: "xv", Endpoint: srv.URL, Client: client}, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func harness(srv *xvidtest.Server) uploadertest.Harness {
	return uploadertest.Harness{
		NewProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return newProvider(t, srv, c, nil)
		},
		NewBadAuthProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return newProvider(t, srv, c, func(o *xvid.Options) { o.ClientSecret = "wrong-" + clientSecret })
		},
		Secret: clientSecret,
		Stored: func(t testing.TB, res uploader.Result) (io.ReadCloser, error) {
			return srv.Stored(context.Background(), res)
		},
		Stats:    srv.Stats,
		FailNext: srv.FailNext,
		Listener: srv.UploadListener,
		Stall:    srv.Stall,
	}
}

// The conformance suite, against the emulator with MinIO (or, with CHUTE_TEST_NO_MINIO=1,
// the stand-in) behind it; then no upload record is left with a file and no finish, and the
// emulator saw nothing the real service refuses but the bad-credentials case's.
func TestConformance(t *testing.T) {
	srv := startEmulator(t, nil)
	uploadertest.Run(t, harness(srv))
	for _, p := range srv.Problems() {
		if p.Kind != xvidtest.ProblemClient {
			t.Errorf("the emulator recorded a problem: %s: %s", p.Kind, p.Detail)
		}
	}
	un, err := srv.Unfinished(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range un {
		// A cancelled form POST leaves nothing in S3; a file stored but never finished is a leak.
		t.Errorf("upload %s (%s) holds a file but was never finished", u.ID, u.ObjectKey)
	}
}

func stepOf(cp []byte) string {
	var c struct {
		Step string `json:"step"`
	}
	_ = json.Unmarshal(cp, &c)
	return c.Step
}

func class(err error) uploader.Class { return uploadertest.ClassOf(err) }

// wantError fails t unless err has class c and its message holds every part, and no secret.
func wantError(t testing.TB, err error, c uploader.Class, parts ...string) {
	t.Helper()
	uploadertest.WantError(t, err, c, clientSecret, parts...)
}

func sameBytes(t testing.TB, srv *xvidtest.Server, res uploader.Result, path string) {
	t.Helper()
	uploadertest.SameBytes(t, harness(srv), res, path)
}
