package s3test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader/uploadertest"
)

// benchOptions: MinIO without the relay, unless CHUTE_BENCH_RELAY=1 asks for it.
func benchOptions() Options {
	return Options{Direct: os.Getenv("CHUTE_BENCH_RELAY") != "1"}
}

// BenchmarkPut streams a file to a presigned URL with net/http, then with curl -T, to the
// same server: the ratio is what a provider's PUT can hope for.
func BenchmarkPut(b *testing.B) {
	s := StartWith(b, benchOptions())
	path, size := uploadertest.BenchFile(b, 256)
	ctx := context.Background()
	var goTime, curlTime time.Duration
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		// Fresh keys, removed after: no run pays for replacing the other's object.
		u, err := s.PresignPut(ctx, "bench/go.mp4", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		cu, err := s.PresignPut(ctx, "bench/curl.mp4", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPut, u, f)
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = size
		goTime += timedSend(b, req, http.StatusOK)
		f.Close()
		curlTime += CurlPut(b, cu, path)
		clean(b, s, "bench/go.mp4", "bench/curl.mp4")
	}
	report(b, size, goTime, curlTime)
}

// BenchmarkPost streams a POST policy form (the file last, exact length) with net/http, then
// posts the same fields with curl -F, to the same server.
func BenchmarkPost(b *testing.B) {
	s := StartWith(b, benchOptions())
	path, size := uploadertest.BenchFile(b, 256)
	var goTime, curlTime time.Duration
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		form, err := s.PresignPost(PostPolicy{Fields: xvidFields("tmp/p1/go.mp4"), Expires: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		cform, err := s.PresignPost(PostPolicy{Fields: xvidFields("tmp/p1/curl.mp4"), Expires: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		var head bytes.Buffer
		mw := multipart.NewWriter(&head)
		for _, f := range form.Fields {
			mw.WriteField(f.Name, f.Value)
		}
		mw.CreateFormFile("file", "bench.mp4")
		tail := "\r\n--" + mw.Boundary() + "--\r\n"
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, form.URL, io.MultiReader(bytes.NewReader(head.Bytes()), f, bytes.NewReader([]byte(tail))))
		if err != nil {
			b.Fatal(err)
		}
		req.ContentLength = int64(head.Len()) + size + int64(len(tail))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		goTime += timedSend(b, req, http.StatusCreated)
		f.Close()
		curlTime += CurlPost(b, cform, path)
		clean(b, s, "tmp/p1/go.mp4", "tmp/p1/curl.mp4")
	}
	report(b, size, goTime, curlTime)
}

// timedSend sends req, reads its answer whole and returns how long that took; an answer
// other than want fails the benchmark.
func timedSend(b *testing.B, req *http.Request, want int) time.Duration {
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != want {
		b.Fatalf("%s answered %d, want %d", req.Method, resp.StatusCode, want)
	}
	return took
}

func clean(b *testing.B, s *Server, keys ...string) {
	for _, k := range keys {
		if err := s.Delete(context.Background(), k); err != nil {
			b.Fatal(err)
		}
	}
}

func report(b *testing.B, size int64, goTime, curlTime time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(size)*n/goTime.Seconds()/(1<<20), "go-MiB/s")
	b.ReportMetric(float64(size)*n/curlTime.Seconds()/(1<<20), "curl-MiB/s")
	b.ReportMetric(goTime.Seconds()/curlTime.Seconds(), "go/curl")
}
