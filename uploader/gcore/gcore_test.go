package gcore_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/gcore"
	"github.com/chute-dev/chute/uploader/gcore/gcoretest"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const apiKey = "gc-s3cr3t-4p1-k3y-0123456789abcdef"

func startEmulator(t testing.TB, opts gcoretest.Options) *gcoretest.Server {
	t.Helper()
	opts.Dir = t.TempDir()
	if opts.APIKey == "" {
		opts.APIKey = apiKey
	}
	srv, err := gcoretest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// newProvider returns a provider pointed at srv that polls every 20ms; edit changes its
// options.
func newProvider(t testing.TB, srv *gcoretest.Server, client *uploader.Client, edit func(*gcore.Options)) *gcore.Provider {
	t.Helper()
	o := gcore.DefaultOptions()
	o.APIKey = apiKey
	o.PollInterval = 20 * time.Millisecond
	if edit != nil {
		edit(&o)
	}
	p, err := gcore.New(uploader.Env{Name: "gc", Endpoint: srv.URL, Client: client}, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// engine keeps one file's checkpoint across calls of Upload, as chute's engine does, and
// reads gcore's checkpoint.
type engine struct{ uploadertest.Engine }

func (e *engine) step() string { return stepOf(e.Checkpoint()) }

// videoID is the video the checkpoint names.
func (e *engine) videoID(t testing.TB) int64 {
	t.Helper()
	var c struct {
		VideoID int64 `json:"video_id"`
	}
	if cp := e.Checkpoint(); json.Unmarshal(cp, &c) != nil || c.VideoID == 0 {
		t.Fatalf("checkpoint %s names no video", cp)
	}
	return c.VideoID
}

func stepOf(cp []byte) string {
	var c struct {
		Step string `json:"step"`
	}
	_ = json.Unmarshal(cp, &c)
	return c.Step
}

// waitFor polls cond until it holds, failing t after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func class(err error) uploader.Class { return uploadertest.ClassOf(err) }

// wantError fails t unless err has class c and its message holds every part, and no secret.
func wantError(t testing.TB, err error, c uploader.Class, parts ...string) {
	t.Helper()
	uploadertest.WantError(t, err, c, apiKey, parts...)
}

func sameBytes(t testing.TB, srv *gcoretest.Server, res uploader.Result, path string) {
	t.Helper()
	rc, err := srv.Stored(res)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("stored %d bytes differ from the file's %d", len(got), len(want))
	}
}

func videoID(t testing.TB, res uploader.Result) int64 {
	t.Helper()
	id, err := strconv.ParseInt(res.ID, 10, 64)
	if err != nil {
		t.Fatalf("result id %q is not a video id", res.ID)
	}
	return id
}

func harness(srv *gcoretest.Server) uploadertest.Harness {
	return uploadertest.Harness{
		NewProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return newProvider(t, srv, c, nil)
		},
		NewBadAuthProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return newProvider(t, srv, c, func(o *gcore.Options) { o.APIKey = "wrong-key" })
		},
		Secret:    apiKey,
		Stored:    func(t testing.TB, res uploader.Result) (io.ReadCloser, error) { return srv.Stored(res) },
		Stats:     srv.Stats,
		FailNext:  srv.FailNext,
		Listener:  srv.Listener,
		Stall:     srv.Stall,
		Resumable: true,
	}
}

func TestConformanceObjectAnswer(t *testing.T) {
	uploadertest.Run(t, harness(startEmulator(t, gcoretest.Options{})))
}

func TestConformanceArrayAnswer(t *testing.T) {
	uploadertest.Run(t, harness(startEmulator(t, gcoretest.Options{CreateAsArray: true})))
}

func TestResult(t *testing.T) {
	for _, array := range []bool{false, true} {
		t.Run(map[bool]string{false: "object", true: "array"}[array], func(t *testing.T) {
			srv := startEmulator(t, gcoretest.Options{CreateAsArray: array})
			p := newProvider(t, srv, uploadertest.NewClient(t), func(o *gcore.Options) {
				o.Description, o.DirectoryID, o.Priority = "from chute", 7, -3
			})
			path := uploadertest.MakeFile(t, t.TempDir(), "holiday.mp4", 300<<10)
			var e engine
			res, err := e.Upload(t, p, uploadertest.OpenFile(t, path))
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, srv, res, path)
			v, ok := srv.Video(videoID(t, res))
			if !ok {
				t.Fatalf("the emulator has no video %s", res.ID)
			}
			if v.Name != "holiday.mp4" || v.Description != "from chute" || v.DirectoryID != 7 || v.Priority != -3 {
				t.Errorf("video created as %q %q dir %d priority %d", v.Name, v.Description, v.DirectoryID, v.Priority)
			}
			if res.URL != v.IframeURL {
				t.Errorf("URL %q, want the video's iframe_url %q", res.URL, v.IframeURL)
			}
			want := map[string]string{"hls_url": v.HLSURL, "slug": v.Slug, "client_id": "2675"}
			for k, w := range want {
				if res.Extra[k] != w || w == "" {
					t.Errorf("Extra[%s] = %q, want %q", k, res.Extra[k], w)
				}
			}
			if s := res.Extra["status"]; s != "viewable" && s != "ready" {
				t.Errorf("status %q with wait: viewable", s)
			}
			if c := srv.Counters(); c.VideosCreated != 1 || c.TokensIssued != 1 || c.Uploads[0] != 1 {
				t.Errorf("counters %+v, want one video, one token, one upload on the first server", c)
			}
			if e.step() != "uploaded" {
				t.Errorf("checkpoint step %q after a finished upload", e.step())
			}
		})
	}
}

func TestIframeURLBuiltWhenEmpty(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{NoIframeURL: true})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e engine
	res, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 10)))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := srv.Video(videoID(t, res))
	if want := "https://player.gvideo.co/videos/2675_" + v.Slug; res.URL != want {
		t.Errorf("URL %q, want %q", res.URL, want)
	}
}

func TestAPIErrors(t *testing.T) {
	cases := []struct {
		name   string
		key    string
		status int
		after  time.Duration
		class  uploader.Class
		says   []string
	}{
		{name: "wrong key", key: "not-the-key", class: uploader.Permanent, says: []string{"refused the API key", "401", "api_key", "Invalid API key"}},
		{name: "403", status: 403, class: uploader.Permanent, says: []string{"refused the API key", "403"}},
		{name: "422", status: 422, class: uploader.Permanent, says: []string{"rejected the request (422)", "base: injected fault"}},
		{name: "429", status: 429, after: 3 * time.Second, class: uploader.RetryAfter, says: []string{"429"}},
		{name: "500", status: 500, class: uploader.Transient, says: []string{"500"}},
		{name: "502", status: 502, class: uploader.Transient, says: []string{"502"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startEmulator(t, gcoretest.Options{})
			client := uploadertest.NewClient(t)
			p := newProvider(t, srv, client, func(o *gcore.Options) {
				if tc.key != "" {
					o.APIKey = tc.key
				}
			})
			if tc.status != 0 {
				srv.FailNext(1, tc.status, tc.after)
			}
			f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "clip.mp4", 1<<10))
			var e engine
			_, err := e.Upload(t, p, f)
			wantError(t, err, tc.class, tc.says...)
			if _, after := uploader.Classify(err); after != tc.after {
				t.Errorf("retry after %v, want %v", after, tc.after)
			}
			if strings.Contains(err.Error(), tc.key) && tc.key != "" {
				t.Errorf("error shows the key: %v", err)
			}
			if n := srv.Counters().VideosCreated; n != 0 {
				t.Errorf("%d videos created by a refused request", n)
			}
			if tc.class == uploader.Permanent {
				return
			}
			// The engine retries: one video in the end.
			if _, err := e.Upload(t, p, f); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if n := srv.Counters().VideosCreated; n != 1 {
				t.Errorf("%d videos created", n)
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	// A file called ".url" gives a video with no name, which Gcore refuses.
	path := filepath.Join(t.TempDir(), ".url")
	if err := os.WriteFile(path, []byte("https://example.com/a.mp4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var e engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, path))
	wantError(t, err, uploader.Permanent, "Gcore rejected the request (422): name: can't be blank")
}

func TestTranscodeError(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	srv.FailTranscode("Unsupported video codec: prores")
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "odd.mov", 4<<10)))
	wantError(t, err, uploader.Permanent, "could not process video", "Unsupported video codec: prores")
}

func writeURLFile(t testing.TB, name, content string) *uploader.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return uploadertest.OpenFile(t, path)
}

func TestCopyFromURL(t *testing.T) {
	cases := []struct{ name, content string }{
		{"plain", "  https://media.example.com/films/clip.mp4?sig=abc&exp=1\n"},
		{"internet shortcut", "\ufeff[InternetShortcut]\r\nIDList=\r\nURL=https://media.example.com/films/clip.mp4?sig=abc&exp=1\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startEmulator(t, gcoretest.Options{})
			p := newProvider(t, srv, uploadertest.NewClient(t), nil)
			var e engine
			res, err := e.Upload(t, p, writeURLFile(t, "Summer Film.url", tc.content))
			if err != nil {
				t.Fatal(err)
			}
			v, _ := srv.Video(videoID(t, res))
			if v.Name != "Summer Film" || v.OriginURL != "https://media.example.com/films/clip.mp4?sig=abc&exp=1" {
				t.Errorf("video %q from %q", v.Name, v.OriginURL)
			}
			if res.URL == "" || (res.Extra["status"] != "viewable" && res.Extra["status"] != "ready") {
				t.Errorf("result %+v", res)
			}
			if c := srv.Counters(); c.VideosCreated != 1 || c.TokensIssued != 0 || c.UploadRequests != 0 {
				t.Errorf("a copy from a URL asked for a token or uploaded: %+v", c)
			}
		})
	}
}

func TestCopyFromURLWaitUploaded(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *gcore.Options) { o.Wait = gcore.WaitUploaded })
	var e engine
	res, err := e.Upload(t, p, writeURLFile(t, "a.url", "https://example.com/a.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Extra["status"] == "empty" {
		t.Errorf("wait: uploaded returned while Gcore had not downloaded the file: %+v", res)
	}
}

func TestCopyFromURLDownloadFails(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e engine
	_, err := e.Upload(t, p, writeURLFile(t, "gone.url", "https://example.com/fail/gone.mp4\n"))
	wantError(t, err, uploader.Permanent, "could not download the original file", "Failed to download the original file")
}

func TestCopyFromURLRefused(t *testing.T) {
	cases := []struct{ name, content, says string }{
		{"hls", "https://example.com/live/master.m3u8", "HLS or DASH"},
		{"hls with query", "https://example.com/live/master.M3U8?token=abc", "HLS or DASH"},
		{"dash", "https://example.com/v/manifest.mpd?x=1", "HLS or DASH"},
		{"http", "http://example.com/a.mp4", "not an https URL"},
		{"ftp", "ftp://example.com/a.mp4", "not an https URL"},
		{"not a url", "just some words", "more than one URL"},
		{"no host", "https:///a.mp4", "not a URL"},
		{"two urls", "https://example.com/a.mp4\nhttps://example.com/b.mp4", "more than one URL"},
		{"empty", " \n", "holds no URL"},
		{"empty shortcut", "[InternetShortcut]\nIDList=\n", "holds no URL"},
		{"too big", "https://example.com/" + strings.Repeat("a", 5000) + ".mp4", "at most 4096 bytes"},
	}
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e engine
			_, err := e.Upload(t, p, writeURLFile(t, "x.url", tc.content))
			wantError(t, err, uploader.Permanent, tc.says)
			if strings.Contains(err.Error(), "token=abc") {
				t.Errorf("error shows the URL's query: %v", err)
			}
		})
	}
	if c := srv.Counters(); c.APIRequests != 0 {
		t.Errorf("refused URLs reached the API %d times", c.APIRequests)
	}
}

// failFirstAttempt runs one upload that fails because both upload servers answer 502, and
// returns the engine holding its checkpoint (video created, token fetched).
func failFirstAttempt(t *testing.T, srv *gcoretest.Server, p uploader.Provider, f *uploader.File) *engine {
	t.Helper()
	srv.FailUpload(0, gcoretest.UploadBadGateway)
	srv.FailUpload(1, gcoretest.UploadBadGateway)
	e := &engine{}
	_, err := e.Upload(t, p, f)
	wantError(t, err, uploader.Transient, "every upload server failed", "502")
	if e.step() != "created" {
		t.Fatalf("checkpoint step %q, want created", e.step())
	}
	srv.FailUpload(0, gcoretest.UploadOK)
	srv.FailUpload(1, gcoretest.UploadOK)
	return e
}

func TestExpiredTokenIsReplaced(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	path := uploadertest.MakeFile(t, t.TempDir(), "late.mp4", 64<<10)
	f := uploadertest.OpenFile(t, path)
	e := failFirstAttempt(t, srv, p, f)
	srv.ExpireTokens() // the platform says so before our clock does
	res, err := e.Upload(t, p, f)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, srv, res, path)
	c := srv.Counters()
	if c.VideosCreated != 1 || c.TokensIssued != 2 || c.TokenRejections != 1 || c.Uploads[0]+c.Uploads[1] != 1 {
		t.Errorf("counters %+v: want one video, a second token after one rejection, one upload", c)
	}
}

func TestOldTokenIsNotUsed(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var mu sync.Mutex
	now := time.Now()
	gcore.SetClock(p, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	path := uploadertest.MakeFile(t, t.TempDir(), "later.mp4", 64<<10)
	f := uploadertest.OpenFile(t, path)
	e := failFirstAttempt(t, srv, p, f)
	mu.Lock()
	now = now.Add(5 * time.Hour) // the engine retried much later
	mu.Unlock()
	res, err := e.Upload(t, p, f)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, srv, res, path)
	if c := srv.Counters(); c.VideosCreated != 1 || c.TokensIssued != 2 || c.TokenRejections != 0 {
		t.Errorf("counters %+v: want a new token asked before the upload, none rejected", c)
	}
}

func TestTokenRefusedTwiceIsPermanent(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{TokenTTL: time.Nanosecond}) // every token arrives expired
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "x.mp4", 10)))
	wantError(t, err, uploader.Permanent, "refused a new upload token", "token expired")
	if c := srv.Counters(); c.TokensIssued != 1 {
		t.Errorf("%d tokens asked for", c.TokensIssued)
	}
}

func TestUploadServerFailover(t *testing.T) {
	for _, fault := range []gcoretest.UploadFault{gcoretest.UploadBadGateway, gcoretest.UploadRefuse} {
		for _, bad := range []int{0, 1} {
			name := map[gcoretest.UploadFault]string{gcoretest.UploadBadGateway: "502", gcoretest.UploadRefuse: "refused"}[fault] + "/server" + strconv.Itoa(bad)
			t.Run(name, func(t *testing.T) {
				srv := startEmulator(t, gcoretest.Options{})
				srv.FailUpload(bad, fault)
				p := newProvider(t, srv, uploadertest.NewClient(t), nil)
				path := uploadertest.MakeFile(t, t.TempDir(), "f.mp4", 2<<20)
				var e engine
				res, err := e.Upload(t, p, uploadertest.OpenFile(t, path))
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, srv, res, path)
				c := srv.Counters()
				if good := 1 - bad; c.Uploads[good] != 1 || c.Uploads[bad] != 0 {
					t.Errorf("uploads per server %v, want the one on server %d", c.Uploads, good)
				}
				if c.VideosCreated != 1 || c.TokensIssued != 1 {
					t.Errorf("counters %+v", c)
				}
			})
		}
	}
}

// interruptAfterUpload starts an upload that waits forever for processing and cancels it
// once the checkpoint says the upload finished.
func interruptAfterUpload(t *testing.T, srv *gcoretest.Server, p uploader.Provider, f *uploader.File) *engine {
	t.Helper()
	srv.SetStep(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &engine{}
	e.OnSave = func(cp []byte, _ int) {
		if stepOf(cp) == "uploaded" {
			cancel()
		}
	}
	_, err := p.Upload(ctx, e.Job(t, p, f))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled upload returned %v", err)
	}
	e.OnSave = nil
	return e
}

func TestResumeAfterUploadOnlyPolls(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	path := uploadertest.MakeFile(t, t.TempDir(), "done.mp4", 3<<20)
	f := uploadertest.OpenFile(t, path)
	e := interruptAfterUpload(t, srv, p, f)
	before := srv.Counters()
	srv.SetStep(time.Millisecond)
	res, err := e.Upload(t, p, f)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, srv, res, path)
	after := srv.Counters()
	if after.UploadRequests != before.UploadRequests || after.TokensIssued != before.TokensIssued || after.VideosCreated != 1 {
		t.Errorf("the resumed job did more than poll: before %+v, after %+v", before, after)
	}
	if after.APIRequests == before.APIRequests {
		t.Error("the resumed job did not poll")
	}
}

func TestTransientErrorWhilePolling(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	path := uploadertest.MakeFile(t, t.TempDir(), "p.mp4", 1<<20)
	f := uploadertest.OpenFile(t, path)
	srv.SetStep(time.Hour)
	e := &engine{}
	e.OnSave = func(cp []byte, _ int) {
		if stepOf(cp) == "uploaded" {
			srv.FailNext(1, 503, 0)
		}
	}
	_, err := e.Upload(t, p, f)
	wantError(t, err, uploader.Transient, "503")
	srv.SetStep(time.Millisecond)
	before := srv.Counters()
	if _, err := e.Upload(t, p, f); err != nil {
		t.Fatal(err)
	}
	if after := srv.Counters(); after.VideosCreated != 1 || after.UploadRequests != before.UploadRequests {
		t.Errorf("retry after a 503 while polling: before %+v, after %+v", before, after)
	}
}

func TestVideoDeletedWhileWaiting(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "d.mp4", 1<<10))
	e := interruptAfterUpload(t, srv, p, f)
	if !srv.DeleteVideo(e.videoID(t)) {
		t.Fatal("no video to delete")
	}
	_, err := e.Upload(t, p, f)
	wantError(t, err, uploader.Permanent, "was deleted on the Gcore side")
	if n := srv.Counters().VideosCreated; n != 1 {
		t.Errorf("%d videos created: a deleted video must not be made again", n)
	}
}

func TestVideoDeletedBeforeUpload(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "d.mp4", 1<<10))
	e := failFirstAttempt(t, srv, p, f)
	if !srv.DeleteVideo(e.videoID(t)) {
		t.Fatal("no video to delete")
	}
	_, err := e.Upload(t, p, f)
	wantError(t, err, uploader.Permanent, "was deleted on the Gcore side")
	if n := srv.Counters().VideosCreated; n != 1 {
		t.Errorf("%d videos created", n)
	}
}

func TestWaitUploaded(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{Step: time.Hour})
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *gcore.Options) { o.Wait = gcore.WaitUploaded })
	path := uploadertest.MakeFile(t, t.TempDir(), "u.mp4", 1<<20)
	var e engine
	res, err := e.Upload(t, p, uploadertest.OpenFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, srv, res, path)
	if s := res.Extra["status"]; s == "viewable" || s == "ready" || res.URL == "" {
		t.Errorf("result %+v: wait: uploaded must not wait for processing", res)
	}
}

func TestWaitReady(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{Step: 50 * time.Millisecond})
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *gcore.Options) { o.Wait = gcore.WaitReady })
	var e engine
	res, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "r.mp4", 1<<10)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Extra["status"] != "ready" {
		t.Errorf("status %q with wait: ready", res.Extra["status"])
	}
}

func TestMaxWait(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{Step: time.Hour})
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *gcore.Options) { o.MaxWait = 100 * time.Millisecond })
	var e engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "slow.mp4", 1<<10)))
	wantError(t, err, uploader.Permanent, `still "pending"`, "processing took too long", "max_wait")
}

func TestRateLimiterIsShared(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	// Three requests, then none for an hour: two jobs must share them.
	gcore.SetLimiter(p, rate.NewLimiter(rate.Every(time.Hour), 3))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	errs := make(chan error, 2)
	for _, name := range []string{"one.mp4", "two.mp4"} {
		f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, name, 1<<10))
		go func() {
			var e engine
			_, err := p.Upload(ctx, e.Job(t, p, f))
			errs <- err
		}()
	}
	waitFor(t, "three API requests", func() bool { return srv.Counters().APIRequests >= 3 })
	time.Sleep(200 * time.Millisecond) // time for a fourth, were there no limit
	if n := srv.Counters().APIRequests; n != 3 {
		t.Errorf("%d API requests went through a limiter that allows 3", n)
	}
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("job returned %v, want context.Canceled", err)
		}
	}
}

func TestCheck(t *testing.T) {
	srv := startEmulator(t, gcoretest.Options{})
	client := uploadertest.NewClient(t)
	if err := newProvider(t, srv, client, nil).Check(context.Background()); err != nil {
		t.Errorf("Check with the right key: %v", err)
	}
	err := newProvider(t, srv, client, func(o *gcore.Options) { o.APIKey = "nope-nope" }).Check(context.Background())
	wantError(t, err, uploader.Permanent, "refused the API key")
}

func TestOptions(t *testing.T) {
	typ := gcore.Type()
	if typ.Name != "gcore" || typ.DefaultEndpoint != "https://api.gcore.com" {
		t.Errorf("type %q endpoint %q", typ.Name, typ.DefaultEndpoint)
	}
	o, ok := typ.NewOptions().(*gcore.Options)
	if !ok || o.Wait != "viewable" || o.ChunkSize != 10_000_000 || o.PollInterval != 5*time.Second || o.MaxWait != 2*time.Hour {
		t.Fatalf("defaults %+v", o)
	}
	o.APIKey = apiKey
	if _, err := typ.New(uploader.Env{Name: "gc", Client: uploadertest.NewClient(t)}, o); err != nil {
		t.Errorf("New with the default endpoint: %v", err)
	}

	cases := []struct {
		edit func(*gcore.Options)
		key  string
	}{
		{func(o *gcore.Options) { o.APIKey = "" }, "api_key"},
		{func(o *gcore.Options) { o.APIKey = "a\nb" }, "api_key"},
		{func(o *gcore.Options) { o.Wait = "done" }, "wait"},
		{func(o *gcore.Options) { o.DirectoryID = -1 }, "directory_id"},
		{func(o *gcore.Options) { o.Priority = 11 }, "priority"},
		{func(o *gcore.Options) { o.ChunkSize = -1 }, "chunk_size"},
		{func(o *gcore.Options) { o.PollInterval = -time.Second }, "poll_interval"},
		{func(o *gcore.Options) { o.MaxWait = -time.Second }, "max_wait"},
	}
	for _, tc := range cases {
		o := gcore.DefaultOptions()
		o.APIKey = apiKey
		tc.edit(&o)
		errs := o.Validate()
		if len(errs) != 1 || errs[0].Key != tc.key {
			t.Errorf("%s: Validate gave %+v", tc.key, errs)
		}
		if _, err := gcore.New(uploader.Env{Client: uploadertest.NewClient(t)}, o); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: New gave %v", tc.key, err)
		} else if strings.Contains(err.Error(), "a\nb") {
			t.Errorf("New shows the key: %v", err)
		}
	}
	good := gcore.DefaultOptions()
	good.APIKey = apiKey
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("defaults with a key: %+v", errs)
	}
	if _, err := gcore.New(uploader.Env{Endpoint: "ftp://x", Client: uploadertest.NewClient(t)}, good); err == nil {
		t.Error("New took an ftp endpoint")
	}
}
