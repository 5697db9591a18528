package redgifs_test

import (
	"io"
	"testing"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/redgifs"
	"github.com/chute-dev/chute/uploader/redgifs/redgifstest"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
)

const token = "rg-user-token-0123456789abcdef"

// emulator starts the RedGIFs emulator with a real MinIO behind it (the stand-in with
// CHUTE_TEST_NO_MINIO=1).
func emulator(t testing.TB, opts redgifstest.Options) *redgifstest.Server {
	t.Helper()
	if opts.S3 == nil {
		opts.S3 = s3test.Start(t)
	}
	if opts.Token == "" {
		opts.Token = token
	}
	s, err := redgifstest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func provider(t testing.TB, s *redgifstest.Server, client *uploader.Client, opts redgifs.Options) *redgifs.Provider {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	if client == nil {
		client = uploader.NewClient(uploader.ClientOptions{})
		t.Cleanup(client.CloseIdle)
	}
	p, err := redgifs.New(uploader.Env{Name: "rg", Endpoint: s.URL, Client: client}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	uploadertest.Run(t, uploadertest.Harness{
		NewProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return provider(t, s, c, redgifs.Options{Tags: []string{"chute"}})
		},
		NewBadAuthProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return provider(t, s, c, redgifs.Options{Token: "expired-" + token})
		},
		Secret:           token,
		Stored:           func(t testing.TB, res uploader.Result) (io.ReadCloser, error) { return s.Stored(res) },
		Stats:            s.Stats,
		FailNext:         s.FailNext,
		Listener:         s.UploadListener,
		Stall:            s.Stall,
		AccountRateLimit: true,
	})
}
