package uploadgig_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadgig"
	"github.com/chute-dev/chute/uploader/uploadgig/uploadgigtest"
)

// BenchmarkUpload1GiB sends a 1 GiB file to the emulator's upload host through the provider
// (a login, then the raw POST) and with curl (the same raw POST, with the same headers) to an
// action of the same emulator, in the same run. The emulator counts the bytes and keeps
// none, so that the disk is not what is measured. It reports the peak RSS of this process
// for the provider (VmHWM, reset before) and of curl.
func BenchmarkUpload1GiB(b *testing.B) {
	const size = 1 << 30
	dir, err := os.MkdirTemp("/tmp", "chute-uploadgig-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big clip.mp4")
	uploadertest.RandomFile(b, path, size)
	srv, err := uploadgigtest.Start(uploadgigtest.Options{Discard: true, User: user, Pass: pass, QuotaMB: 1 << 30, LoginsPerMinute: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()

	b.Run("chute", func(b *testing.B) {
		client := uploader.NewClient(uploader.ClientOptions{})
		defer client.CloseIdle()
		p, err := uploadgig.New(uploader.Env{Name: "bench", Endpoint: srv.URL, Client: client}, uploadgig.Options{User: user, Pass: pass})
		if err != nil {
			b.Fatal(err)
		}
		f, err := uploader.OpenFile(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		runtime.GC()
		uploadertest.ResetPeakRSS()
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			var e engine
			if _, err := p.Upload(context.Background(), e.job(f)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(uploadertest.PeakRSS())/(1<<20), "peak-RSS-MiB")
	})

	b.Run("curl", func(b *testing.B) {
		if _, err := exec.LookPath("curl"); err != nil {
			b.Skip("no curl")
		}
		b.SetBytes(size)
		for range b.N {
			b.StopTimer()
			act := benchAction(b, srv)
			b.StartTimer()
			// `--data-binary @file` would be the plain form, but curl 7.88 loads that file
			// in memory and gives up on 1 GiB ("out of memory"); -T with POST streams it with
			// the same exact Content-Length.
			out, err := exec.Command("curl", "-sS", "--fail", "-X", "POST", "-T", path,
				"-H", "Slug: big clip.mp4", "-H", "Content-Type: application/octet-stream",
				"-H", "Accept: application/json", "-H", "Expect:", "-A", uploader.UserAgent, act).CombinedOutput()
			if err != nil || !strings.Contains(string(out), `"ok":true`) {
				b.Fatalf("curl: %v: %s", err, out)
			}
		}
		b.StopTimer()
		if n := childrenPeakRSS(); n > 0 {
			b.ReportMetric(float64(n)/(1<<20), "curl-peak-RSS-MiB")
		}
	})
}

// benchAction logs in as the provider does and returns the upload action.
func benchAction(b *testing.B, srv *uploadgigtest.Server) string {
	resp, err := http.PostForm(srv.URL+"/api/get_upload_action", url.Values{"user": {user}, "pass": {pass}})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Result struct {
			Action string `json:"action"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.Result.Action == "" {
		b.Fatalf("login: %v", err)
	}
	return a.Result.Action
}
