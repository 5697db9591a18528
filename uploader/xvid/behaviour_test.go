package xvid_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/xvid"
	"github.com/chute-dev/chute/uploader/xvid/xvidtest"
)

// Eight uploads at once through one provider share one access token: one token request.
func TestOneTokenForConcurrentUploads(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		path := uploadertest.MakeFile(t, dir, fmt.Sprintf("clip-%d.mp4", i), 256<<10)
		f := uploadertest.OpenFile(t, path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e uploadertest.Engine
			_, errs[i] = e.Upload(t, p, f)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
	c := srv.Counters()
	if c.TokenRequests != 1 {
		t.Errorf("%d token requests for 8 concurrent uploads, want 1", c.TokenRequests)
	}
	if c.UploadsCreated != 8 || c.Finished != 8 {
		t.Errorf("counters %+v, want 8 records created and finished", c)
	}
	if p := srv.Problems(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
}

// A token Xvid has expired (ExpireTokens) is refused once, renewed once, and the upload goes
// on; a token about to expire by Xvid's expires_in is renewed before it is used.
func TestTokenRenewal(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var offset atomic.Int64
	xvid.SetClock(p, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	dir := t.TempDir()
	upload := func(name string) {
		t.Helper()
		var e uploadertest.Engine
		if _, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, name, 1<<10))); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
	}
	upload("a.mp4")
	srv.ExpireTokens()
	upload("b.mp4")
	if n := len(srv.ProblemsOf(xvidtest.ProblemExpiredToken)); n != 1 {
		t.Errorf("the expired token was used %d times, want once (then renewed)", n)
	}
	if c := srv.Counters(); c.TokenRequests != 2 {
		t.Errorf("%d token requests, want 2 (the first, one renewal)", c.TokenRequests)
	}
	// The emulator's tokens live 7200s; 7190s later the provider renews before using it.
	offset.Store(int64(7190 * time.Second))
	upload("c.mp4")
	if c := srv.Counters(); c.TokenRequests != 3 {
		t.Errorf("%d token requests, want 3: a token 10s from expiring is renewed before use", c.TokenRequests)
	}
	if n := len(srv.ProblemsOf(xvidtest.ProblemExpiredToken)) + len(srv.ProblemsOf(xvidtest.ProblemBadToken)); n != 1 {
		t.Errorf("%d refused tokens, want only the one ExpireTokens made", n)
	}
}

// expires_in as a number is read as well as the string of Xvid's example.
func TestExpiresInNumber(t *testing.T) {
	srv := startEmulator(t, func(o *xvidtest.Options) { o.ExpiresInNumber = true; o.TokenTTL = time.Hour })
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var offset atomic.Int64
	xvid.SetClock(p, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	dir := t.TempDir()
	for i, skip := range []time.Duration{0, 30 * time.Minute, 59 * time.Minute} {
		offset.Store(int64(skip))
		var e uploadertest.Engine
		if _, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, fmt.Sprint(i), 10))); err != nil {
			t.Fatal(err)
		}
	}
	if c := srv.Counters(); c.TokenRequests != 2 {
		t.Errorf("%d token requests, want 2: the token of 3600s is kept at 30 min and renewed at 59", c.TokenRequests)
	}
}

// A token without the write scope is refused (403), renewed once, refused again: permanent,
// with Xvid's code and a hint at the scope.
func TestWriteScopeMissing(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.Scope = "mediahub" })
	var e uploadertest.Engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 10)))
	wantError(t, err, uploader.Permanent, xvidtest.CodeScope, "mediahub_write", "scope")
	if c := srv.Counters(); c.TokenRequests != 2 || c.UploadsCreated != 0 {
		t.Errorf("counters %+v: want 2 token requests (one renewal) and no upload record", c)
	}
}

// Xvid's error answers: 400 and 404 are permanent, 500 transient, the code in the message.
func TestAPIErrors(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	dir := t.TempDir()
	var e uploadertest.Engine
	if _, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, "warm.mp4", 10))); err != nil {
		t.Fatal(err) // the token is now held: the faults below hit the upload record's creation
	}
	for _, c := range []struct {
		status int
		class  uploader.Class
	}{{400, uploader.Permanent}, {404, uploader.Permanent}, {500, uploader.Transient}} {
		srv.FailNext(1, c.status, 0)
		var e uploadertest.Engine
		_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, fmt.Sprint(c.status), 10)))
		wantError(t, err, c.class, fmt.Sprint(c.status), xvidtest.CodeInternal, "create the upload record")
	}
	// An unknown pipeline: Xvid's 404, in words.
	p2 := newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.PipelineID = "ffffffffffffffffffffffff" })
	var e2 uploadertest.Engine
	_, err := e2.Upload(t, p2, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, "nopipe.mp4", 10)))
	wantError(t, err, uploader.Permanent, "404", xvidtest.CodeNotFound, "does not exist")
}

// Wrong client credentials are permanent at once, in words, without the secret.
func TestBadClient(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.ClientSecret = "nope-" + clientSecret })
	var e uploadertest.Engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 10)))
	wantError(t, err, uploader.Permanent, "client_id", "client_secret", `"xv"`)
	if strings.Contains(err.Error(), "nope-") {
		t.Errorf("the error shows the secret: %v", err)
	}
	if err := p.Check(context.Background()); err == nil || !uploader.IsPermanent(err) {
		t.Errorf("Check with a wrong secret: %v", err)
	}
	if err := newProvider(t, srv, uploadertest.NewClient(t), nil).Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// Killed between S3's 201 and the finish, the job resumes with the finish: one upload record,
// one form POST, the file in S3 byte for byte, and nothing left unfinished.
func TestResumeAfterFormPost(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	path := uploadertest.MakeFile(t, t.TempDir(), "clip.mp4", 3<<20)
	f := uploadertest.OpenFile(t, path)
	srv.HoldFinish(true)
	var e uploadertest.Engine
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Upload(ctx, e.Job(t, p, f))
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Counters().FinishRequests == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no finish request arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled upload: %v", err)
	}
	srv.HoldFinish(false)
	if s := stepOf(e.Checkpoint()); s != "posted" {
		t.Fatalf("checkpoint step %q after the form POST, want posted", s)
	}
	res, err := e.Upload(t, p, f)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	sameBytes(t, srv, res, path)
	c := srv.Counters()
	if c.UploadsCreated != 1 || c.FormPosts != 1 || c.FormPostsStored != 1 || c.Finished != 1 {
		t.Errorf("counters %+v: want one record, one form POST, one finish", c)
	}
	// A job that had finished goes straight to polling: no second finish.
	before := srv.Counters().FinishRequests
	if _, err := e.Upload(t, p, f); err != nil {
		t.Fatal(err)
	}
	if got := srv.Counters().FinishRequests; got != before {
		t.Errorf("a finished job sent %d more finish requests", got-before)
	}
	checkResult(t, srv, res)
}

// checkResult checks the sidecar's fields: the file id, the download address, the extras.
func checkResult(t *testing.T, srv *xvidtest.Server, res uploader.Result) {
	t.Helper()
	want := srv.URL + "/v1/files/downloads/?file_id=" + url.QueryEscape(res.ID) + "&redirect=true"
	if res.URL != want {
		t.Errorf("url %q, want %q", res.URL, want)
	}
	var rec xvidtest.Upload
	for _, u := range srv.Uploads() {
		if u.File.ID == res.ID {
			rec = u
		}
	}
	if rec.ID == "" {
		t.Fatalf("result id %q names no file at the emulator", res.ID)
	}
	if res.Extra["object_key"] != rec.ObjectKey || res.Extra["pipeline_id"] != xvidtest.DefaultPipeline || res.Extra["upload_id"] != rec.ID {
		t.Errorf("extra %v, the record is %s with key %q", res.Extra, rec.ID, rec.ObjectKey)
	}
}

// A form whose policy expired before it was posted is refused by S3; the job then makes a new
// upload record and delivers the file with it.
func TestExpiredForm(t *testing.T) {
	srv := startEmulator(t, func(o *xvidtest.Options) { o.PolicyTTL = time.Second })
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	path := uploadertest.MakeFile(t, t.TempDir(), "late.mp4", 1<<10)
	f := uploadertest.OpenFile(t, path)
	var e uploadertest.Engine
	e.OnSave = func(cp []byte, _ int) {
		if stepOf(cp) == "created" && srv.Counters().UploadsCreated == 1 {
			time.Sleep(2100 * time.Millisecond) // the policy's expiration has whole seconds
		}
	}
	_, err := e.Upload(t, p, f)
	wantError(t, err, uploader.Transient, "expired")
	res, err := e.Upload(t, p, f)
	if err != nil {
		t.Fatalf("after the expired form: %v", err)
	}
	sameBytes(t, srv, res, path)
	if c := srv.Counters(); c.UploadsCreated != 2 || c.FormPostsStored != 1 {
		t.Errorf("counters %+v: want 2 records (the expired one, the new) and one stored form", c)
	}
}

// S3 errors are read into words: a 500 from the S3 front is transient with S3's code.
func TestS3Errors(t *testing.T) {
	srv := startEmulator(t, nil)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 1<<10))
	srv.FailUploads(1, 500)
	var e uploadertest.Engine
	_, err := e.Upload(t, p, f)
	wantError(t, err, uploader.Transient, "InternalError", "post a.mp4 to S3")
	if _, err := e.Upload(t, p, f); err != nil {
		t.Fatal(err)
	}
	if c := srv.Counters(); c.UploadsCreated != 1 {
		t.Errorf("%d upload records, want 1: the retry reuses the record", c.UploadsCreated)
	}
	for _, r := range srv.FormRequests() {
		if r.Header.Get("Authorization") != "" {
			t.Error("the bearer token was sent to S3")
		}
		if len(r.Header.Values("Transfer-Encoding")) > 0 || r.Header.Get("Content-Length") == "" {
			t.Errorf("form POST without Content-Length: %v", r.Header)
		}
	}
}

// Xvid failing to complete the upload (an error object in the record) is permanent, in its
// words.
func TestCompletionFails(t *testing.T) {
	srv := startEmulator(t, nil)
	srv.FailCompletion("pipeline refused the file: unsupported container")
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e uploadertest.Engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 10)))
	wantError(t, err, uploader.Permanent, "unsupported container", xvidtest.CodeInternal)
}

// A COMPLETING upload past max_wait fails for good, saying so.
func TestMaxWait(t *testing.T) {
	srv := startEmulator(t, func(o *xvidtest.Options) { o.Completing = time.Hour })
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.MaxWait = 200 * time.Millisecond })
	var e uploadertest.Engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 10)))
	wantError(t, err, uploader.Permanent, "COMPLETING", "max_wait")
}

// The object key follows the template: the path under the folder by default (the name when
// the engine gives none), and the placeholders; expires_after reaches expires_at.
func TestObjectKeys(t *testing.T) {
	srv := startEmulator(t, nil)
	mod := time.Date(2026, 3, 4, 23, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		tmpl, rel, expires string
		want, query        string
	}{
		{"", "", "", "clip one.mp4", ""},
		{"", "sub/dir/clip one.mp4", "never", "sub/dir/clip one.mp4", "expires_at=0"},
		{"uploads/{date}/{stem}.{ext}", "a/clip one.mp4", "", "uploads/2026-03-04/clip one.mp4", ""},
		{"{dir}/{name}", "clip one.mp4", "720h", "clip one.mp4", "expires_at="},
	} {
		p := newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.ObjectKey, o.ExpiresAfter = c.tmpl, c.expires })
		path := uploadertest.MakeFile(t, t.TempDir(), "clip one.mp4", 10)
		f := uploadertest.OpenFile(t, path)
		f.RelPath, f.ModTime = c.rel, mod
		var e uploadertest.Engine
		res, err := e.Upload(t, p, f)
		if err != nil {
			t.Fatal(err)
		}
		if res.Extra["object_key"] != c.want {
			t.Errorf("template %q, path %q: key %q, want %q", c.tmpl, c.rel, res.Extra["object_key"], c.want)
		}
		var q string
		for _, r := range srv.Requests() {
			if r.Method == "POST" && strings.HasPrefix(r.Path, "/v1/files/uploads") {
				q = r.Query
			}
		}
		if (c.query == "") != !strings.Contains(q, "expires_at") || !strings.Contains(q, c.query) {
			t.Errorf("expires_after %q: query %q, want %q", c.expires, q, c.query)
		}
	}
}

// Options that Xvid or chute cannot use are reported by key.
func TestValidate(t *testing.T) {
	good := xvid.DefaultOptions()
	good.ClientID, good.ClientSecret, good.PipelineID = "id", "secret", xvidtest.DefaultPipeline
	if errs := good.Validate(); len(errs) != 0 {
		t.Fatalf("good options: %v", errs)
	}
	for _, c := range []struct {
		key  string
		edit func(*xvid.Options)
	}{
		{"client_id", func(o *xvid.Options) { o.ClientID = "" }},
		{"client_secret", func(o *xvid.Options) { o.ClientSecret = " " }},
		{"client_secret", func(o *xvid.Options) { o.ClientSecret = "a\nb" }},
		{"pipeline_id", func(o *xvid.Options) { o.PipelineID = "" }},
		{"pipeline_id", func(o *xvid.Options) { o.PipelineID = "a/b" }},
		{"scope", func(o *xvid.Options) { o.Scope = " , " }},
		{"object_key", func(o *xvid.Options) { o.ObjectKey = "{nope}/{name}" }},
		{"object_key", func(o *xvid.Options) { o.ObjectKey = "{name" }},
		{"expires_after", func(o *xvid.Options) { o.ExpiresAfter = "soon" }},
		{"poll_interval", func(o *xvid.Options) { o.PollInterval = -time.Second }},
		{"max_wait", func(o *xvid.Options) { o.MaxWait = -time.Second }},
	} {
		o := good
		c.edit(&o)
		errs := o.Validate()
		if len(errs) != 1 || errs[0].Key != c.key {
			t.Errorf("want one problem with %s, got %v", c.key, errs)
		}
		if c.key == "client_secret" && len(errs) == 1 && strings.Contains(errs[0].Msg, o.ClientSecret) && strings.TrimSpace(o.ClientSecret) != "" {
			t.Errorf("the message shows the secret: %s", errs[0].Msg)
		}
	}
}

// A server that quotes credentials back in its refusals (Options.Echo) does not get them
// into chute's errors: neither the client secret nor the bearer token.
func TestEchoedSecretsRedacted(t *testing.T) {
	srv := startEmulator(t, func(o *xvidtest.Options) { o.Echo = true })
	dir := t.TempDir()
	wrong := "nope+" + clientSecret
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.ClientSecret = wrong })
	var e uploadertest.Engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, "a.mp4", 10)))
	wantError(t, err, uploader.Permanent, "Invalid client credentials")
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), url.QueryEscape(wrong)) {
		t.Errorf("the error shows the client secret: %v", err)
	}
	p = newProvider(t, srv, uploadertest.NewClient(t), func(o *xvid.Options) { o.Scope = "mediahub" })
	var e2 uploadertest.Engine
	_, err = e2.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, "b.mp4", 10)))
	wantError(t, err, uploader.Permanent, "mediahub_write")
	tokens := 0
	for _, r := range srv.Requests() {
		if a := r.Header.Get("Authorization"); a != "" {
			tokens++
			if tok := strings.TrimPrefix(a, "Bearer "); strings.Contains(err.Error(), tok) {
				t.Errorf("the error shows a bearer token: %v", err)
			}
		}
	}
	if tokens != 2 {
		t.Errorf("%d requests with a token, want 2 (the refusal, the one renewal)", tokens)
	}
}

// A file larger than the upload form's policy allows fails for good before a byte is sent.
func TestFileTooLargeForForm(t *testing.T) {
	srv := startEmulator(t, func(o *xvidtest.Options) { o.MaxSize = 1000 })
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e uploadertest.Engine
	_, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "big.mp4", 1001)))
	wantError(t, err, uploader.Permanent, "1001 bytes", "0 to 1000 bytes")
	if c := srv.Counters(); c.FormPosts != 0 {
		t.Errorf("%d form POSTs for a file the form refuses", c.FormPosts)
	}
	var e2 uploadertest.Engine
	if _, err := e2.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), "fits.mp4", 1000))); err != nil {
		t.Errorf("a file of the form's largest size: %v", err)
	}
}

// A token that lives less than the renewal margin twice over is kept half its life, not
// renewed at every call.
func TestShortLivedToken(t *testing.T) {
	srv := startEmulator(t, func(o *xvidtest.Options) { o.TokenTTL = 60 * time.Second })
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var offset atomic.Int64
	xvid.SetClock(p, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	dir := t.TempDir()
	for i, at := range []time.Duration{0, 25 * time.Second, 35 * time.Second} {
		offset.Store(int64(at))
		var e uploadertest.Engine
		if _, err := e.Upload(t, p, uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, fmt.Sprint(i), 10))); err != nil {
			t.Fatal(err)
		}
		want := 1
		if at > 30*time.Second { // half of 60s
			want = 2
		}
		if c := srv.Counters(); c.TokenRequests != want {
			t.Errorf("at %s: %d token requests, want %d", at, c.TokenRequests, want)
		}
	}
}
