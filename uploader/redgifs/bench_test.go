package redgifs_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/redgifs"
	"github.com/chute-dev/chute/uploader/redgifs/redgifstest"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
)

// BenchmarkUpload times what chute does for one file, the md5 included (the engine's digest
// pass, then Upload: ticket, PUT, status, submit), against `curl -T` of the same file to a
// presigned URL of the same MinIO in the same run, and reports the process's peak RSS. The
// file is $CHUTE_BENCH_MB MiB (default 1024) under the temporary directory, removed after.
// MinIO is used without the relay in front of it (CHUTE_BENCH_RELAY=1 keeps it), and the
// emulator hands out its URLs directly: nothing stands between the PUT and MinIO.
//
//	go test -run '^$' -bench Upload -benchtime 1x ./uploader/redgifs/
func BenchmarkUpload(b *testing.B) {
	s3 := s3test.StartWith(b, s3test.Options{Direct: os.Getenv("CHUTE_BENCH_RELAY") != "1"})
	path, size := uploadertest.BenchFile(b, 1024)
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	ctx := context.Background()
	var hashTime, putTime, curlTime time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A new emulator each time: one that knew the md5 from the last round would skip the PUT.
		rg, err := redgifstest.Start(redgifstest.Options{S3: s3, Token: token, Direct: true})
		if err != nil {
			b.Fatal(err)
		}
		p, err := redgifs.New(uploader.Env{Endpoint: rg.URL, Client: client}, redgifs.Options{Token: token})
		if err != nil {
			b.Fatal(err)
		}
		f, err := uploader.OpenFile(path)
		if err != nil {
			b.Fatal(err)
		}
		flushDisks()
		start := time.Now()
		// What the engine computes before the upload: the sidecar's SHA-256 and the md5.
		d, err := uploader.ComputeDigests(ctx, f, append([]uploader.Digest{uploader.SHA256}, p.NeedDigests()...))
		if err != nil {
			b.Fatal(err)
		}
		hashed := time.Now()
		if _, err := p.Upload(ctx, &uploader.Job{File: f, Digests: d}); err != nil {
			b.Fatal(err)
		}
		hashTime += hashed.Sub(start)
		putTime += time.Since(hashed)
		f.Close()
		rg.Close()

		u, err := s3.PresignPut(ctx, "bench/curl.mp4", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		flushDisks()
		curlTime += s3test.CurlPut(b, u, path)
	}
	b.StopTimer()
	n := float64(b.N)
	chute := hashTime + putTime
	b.ReportMetric(float64(size)*n/chute.Seconds()/(1<<20), "chute-MiB/s")
	b.ReportMetric(float64(size)*n/curlTime.Seconds()/(1<<20), "curl-MiB/s")
	b.ReportMetric(chute.Seconds()/curlTime.Seconds(), "chute/curl")
	b.ReportMetric(putTime.Seconds()/curlTime.Seconds(), "upload-only/curl")
	b.ReportMetric(hashTime.Seconds()/n, "digests-s")
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MiB")
}

// peakRSS is the process's peak resident set (VmHWM), or the Go runtime's memory from the
// OS where /proc is missing.
func peakRSS(b *testing.B) uint64 {
	if n := uploadertest.PeakRSS(); n > 0 {
		return uint64(n)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.Log("no /proc/self/status: reporting the Go runtime's Sys, not the peak RSS")
	return m.Sys
}
