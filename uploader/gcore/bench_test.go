package gcore_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/gcore"
	"github.com/chute-dev/chute/uploader/gcore/gcoretest"
	"github.com/chute-dev/chute/uploader/tus"
	"github.com/chute-dev/chute/uploader/tus/tustest"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

// timing sums the time spent in API requests (/streaming/) and in everything else (TUS).
type timing struct {
	base     http.RoundTripper
	mu       sync.Mutex
	api, tus time.Duration
	apiCalls int
}

func (t *timing) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	d := time.Since(start)
	t.mu.Lock()
	if strings.HasPrefix(req.URL.Path, "/streaming/") {
		t.api += d
		t.apiCalls++
	} else {
		t.tus += d
	}
	t.mu.Unlock()
	return resp, err
}

func (t *timing) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func timedClient(b *testing.B) (*uploader.Client, *timing) {
	c := uploader.NewClient(uploader.ClientOptions{})
	tm := &timing{base: c.HTTP.Transport}
	c.HTTP.Transport = tm
	b.Cleanup(c.CloseIdle)
	return c, tm
}

// emptyDir removes what an emulator stored, so that b.N uploads do not fill the disk.
func emptyDir(b *testing.B, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload1GiB uploads a 1 GiB file to the Gcore emulator (wait: uploaded), with one
// PATCH and with Gcore's 10 MB chunks, and to a plain tusd through the `tus` provider. It
// reports the API steps (create, upload token, status) apart from the TUS transfer.
func BenchmarkUpload1GiB(b *testing.B) {
	const size = 1 << 30
	path := filepath.Join(b.TempDir(), "big.mp4")
	uploadertest.RandomFile(b, path, size)

	for _, chunk := range []struct {
		name string
		size int64
	}{{"chunk=0", 0}, {"chunk=10MB", gcore.DefaultChunkSize}} {
		b.Run("gcore/"+chunk.name, func(b *testing.B) {
			dir := b.TempDir()
			srv, err := gcoretest.Start(gcoretest.Options{Dir: dir, APIKey: apiKey})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			client, tm := timedClient(b)
			o := gcore.DefaultOptions()
			o.APIKey, o.Wait, o.ChunkSize = apiKey, gcore.WaitUploaded, chunk.size
			p, err := gcore.New(uploader.Env{Name: "bench", Endpoint: srv.URL, Client: client}, o)
			if err != nil {
				b.Fatal(err)
			}
			uploadN(b, p, path, size, func() {
				emptyDir(b, filepath.Join(dir, "upload-1"))
				emptyDir(b, filepath.Join(dir, "upload-2"))
			})
			b.ReportMetric(float64(tm.api.Microseconds())/1000/float64(b.N), "api-ms/op")
			b.ReportMetric(float64(tm.apiCalls)/float64(b.N), "api-calls/op")
			b.ReportMetric(tm.tus.Seconds()/float64(b.N), "tus-s/op")
		})
	}

	b.Run("tus/chunk=0", func(b *testing.B) {
		dir := b.TempDir()
		srv, err := tustest.Start(tustest.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		client, tm := timedClient(b)
		p, err := tus.New(uploader.Env{Name: "bench", Endpoint: srv.URL, Client: client}, tus.Options{})
		if err != nil {
			b.Fatal(err)
		}
		uploadN(b, p, path, size, func() { emptyDir(b, dir) })
		b.ReportMetric(tm.tus.Seconds()/float64(b.N), "tus-s/op")
	})
}

// uploadN uploads the file at path b.N times with p, calling clean (untimed) after each.
func uploadN(b *testing.B, p uploader.Provider, path string, size int64, clean func()) {
	b.Helper()
	f, err := uploader.OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		var e engine
		if _, err := p.Upload(context.Background(), e.Job(b, p, f)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		clean()
		b.StartTimer()
	}
}
