package xvid_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
	"github.com/chute-dev/chute/uploader/xvid"
	"github.com/chute-dev/chute/uploader/xvid/xvidtest"
)

// timing sums the time spent in requests to S3 (the form POST) and to the API.
type timing struct {
	base    http.RoundTripper
	s3Host  string
	mu      sync.Mutex
	api, s3 time.Duration
}

func (t *timing) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err == nil && req.URL.Host == t.s3Host {
		// The POST's time runs until S3's answer is read: the body reader's Close.
		resp.Body = &timedBody{ReadCloser: resp.Body, done: func() { t.add(&t.s3, time.Since(start)) }}
		return resp, nil
	}
	t.add(&t.api, time.Since(start))
	return resp, err
}

func (t *timing) add(d *time.Duration, v time.Duration) {
	t.mu.Lock()
	*d += v
	t.mu.Unlock()
}

func (t *timing) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type timedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// BenchmarkUpload1GiB sends a 1 GiB file to MinIO (the stand-in with CHUTE_TEST_NO_MINIO=1)
// through the whole provider (token, upload record, form POST, finish, poll) and, in the same
// run, with `curl -F` posting the same kind of form (a fresh upload record's fields, the file
// last) to the same S3. It reports the form POST's own time apart from the API calls, and the
// test process's peak RSS during the provider's uploads (the emulator's included; MinIO runs
// in its own process).
func BenchmarkUpload1GiB(b *testing.B) {
	const size = 1 << 30
	path := filepath.Join(b.TempDir(), "big.mp4")
	uploadertest.RandomFile(b, path, size)
	s3 := s3test.StartWith(b, s3test.Options{Direct: true})
	srv, err := xvidtest.Start(xvidtest.Options{ClientID: clientID, ClientSecret: clientSecret, S3: s3, Direct: true, Completing: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	s3URL, _ := url.Parse(s3.URL())
	clean := func(key string) {
		if err := s3.Delete(context.Background(), "tmp/"+xvidtest.DefaultPipeline+"/"+key); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("provider", func(b *testing.B) {
		client := uploader.NewClient(uploader.ClientOptions{})
		tm := &timing{base: client.HTTP.Transport, s3Host: s3URL.Host}
		client.HTTP.Transport = tm
		defer client.CloseIdle()
		p := newProvider(b, srv, client, func(o *xvid.Options) { o.PollInterval = 5 * time.Millisecond })
		f, err := uploader.OpenFile(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		uploadertest.ResetPeakRSS()
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			var e uploadertest.Engine
			res, err := p.Upload(context.Background(), e.Job(b, p, f))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			clean(res.Extra["object_key"])
			b.StartTimer()
		}
		b.StopTimer()
		b.ReportMetric(tm.s3.Seconds()/float64(b.N), "post-s/op")
		b.ReportMetric(float64(tm.api.Microseconds())/1000/float64(b.N), "api-ms/op")
		b.ReportMetric(float64(uploadertest.PeakRSS())/(1<<20), "peak-rss-MiB")
	})

	b.Run("curl", func(b *testing.B) {
		s3test.Curl(b)
		tok := benchToken(b, srv)
		b.SetBytes(size)
		b.ResetTimer()
		var spent time.Duration
		b.StopTimer()
		for i := range b.N {
			key := "curl-" + strconv.Itoa(i) + ".mp4"
			rec := benchRecord(b, srv, tok, key)
			b.StartTimer()
			spent += s3test.CurlPost(b, s3test.PostForm{URL: rec.FormPostURL, Fields: rec.FormPostParams}, path)
			b.StopTimer()
			clean(key)
		}
		b.ReportMetric(spent.Seconds()/float64(b.N), "post-s/op")
	})
}

func benchToken(b *testing.B, srv *xvidtest.Server) string {
	form := url.Values{"grant_type": {"client_credential"}, "client_id": {clientID}, "client_secret": {clientSecret}, "scope": {xvid.DefaultScope}}
	resp, err := http.PostForm(srv.URL+"/v1/oauth2/token/", form)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || ans.AccessToken == "" {
		b.Fatalf("token: %v", err)
	}
	return ans.AccessToken
}

// benchRecord creates an upload record and returns it with its fields in order.
func benchRecord(b *testing.B, srv *xvidtest.Server, tok, key string) xvidtest.Upload {
	q := url.Values{"object_key": {key}, "pipeline_id": {xvidtest.DefaultPipeline}}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/files/uploads/?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	for _, u := range srv.Uploads() {
		if u.ObjectKey == key {
			return u
		}
	}
	b.Fatalf("no upload record for %s", key)
	return xvidtest.Upload{}
}
