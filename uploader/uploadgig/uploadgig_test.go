package uploadgig_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadgig"
	"github.com/chute-dev/chute/uploader/uploadgig/uploadgigtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	user = "me@example.com"
	pass = "ug-s3cr3t-p4ss-0123456789"
)

func startEmulator(t testing.TB, opts uploadgigtest.Options) *uploadgigtest.Server {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.User, opts.Pass = user, pass
	if opts.LoginsPerMinute == 0 {
		opts.LoginsPerMinute = 1000
	}
	srv, err := uploadgigtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func newProvider(t testing.TB, srv *uploadgigtest.Server, client *uploader.Client, edit func(*uploadgig.Options)) *uploadgig.Provider {
	t.Helper()
	o := uploadgig.DefaultOptions()
	o.User, o.Pass, o.LoginInterval = user, pass, 0
	if edit != nil {
		edit(&o)
	}
	p, err := uploadgig.New(uploader.Env{Name: "ug", Endpoint: srv.URL, Client: client}, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// suiteRateLimitWait is the wait the suite's RateLimited test asks for. UploadGig's "-3"
// names no wait: the provider waits its rate_limit_wait, set to the same here.
const suiteRateLimitWait = 90 * time.Second

func TestConformance(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	uploadertest.Run(t, uploadertest.Harness{
		NewProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return newProvider(t, srv, c, func(o *uploadgig.Options) { o.RateLimitWait = suiteRateLimitWait })
		},
		NewBadAuthProvider: func(t testing.TB, c *uploader.Client) uploader.Provider {
			return newProvider(t, srv, c, func(o *uploadgig.Options) { o.Pass = "wrong-" + pass })
		},
		Secret:   pass,
		Stored:   func(t testing.TB, res uploader.Result) (io.ReadCloser, error) { return srv.Stored(res) },
		Stats:    srv.Stats,
		FailNext: srv.FailNext,
		Listener: srv.UploadListener,
		Stall:    srv.Stall,
		RateLimit: func(after time.Duration) {
			if after != suiteRateLimitWait {
				panic(fmt.Sprintf("the suite asks for a rate limit of %v; set suiteRateLimitWait to it", after))
			}
			srv.RateLimitNext(1)
		},
	})
}

// engine keeps one file's checkpoint across calls of Upload, as chute's engine does.
type engine struct {
	mu sync.Mutex
	cp []byte
}

func (e *engine) job(f *uploader.File) *uploader.Job {
	e.mu.Lock()
	cp := append([]byte(nil), e.cp...)
	e.mu.Unlock()
	if len(cp) == 0 {
		cp = nil
	}
	return &uploader.Job{File: f, Checkpoint: cp, Save: func(ctx context.Context, b []byte) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.cp = append([]byte(nil), b...)
		return nil
	}}
}

// answered tells whether the checkpoint holds UploadGig's answer.
func (e *engine) answered() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	var cp struct {
		Answer *struct{ ID string } `json:"answer"`
	}
	return json.Unmarshal(e.cp, &cp) == nil && cp.Answer != nil && cp.Answer.ID != ""
}

func (e *engine) upload(t testing.TB, p uploader.Provider, f *uploader.File) (uploader.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.Upload(ctx, e.job(f))
}

func class(err error) uploader.Class {
	c, _ := uploader.Classify(err)
	return c
}

func file(t testing.TB, name string, size int64) *uploader.File {
	return uploadertest.OpenFile(t, uploadertest.MakeFile(t, t.TempDir(), name, size))
}

// The file does not fit in what cmbs says is left: it fails permanently, in the words the
// user needs, and not one byte goes to the upload host.
func TestOverQuotaSendsNothing(t *testing.T) {
	for _, asString := range []bool{false, true} {
		srv := startEmulator(t, uploadgigtest.Options{QuotaMB: 2, CmbsAsString: asString})
		p := newProvider(t, srv, uploadertest.NewClient(t), nil)
		var e engine
		_, err := e.upload(t, p, file(t, "big.mp4", 2<<20+1))
		if class(err) != uploader.Permanent || !strings.Contains(err.Error(), "file too large for the space left on the account (2 MB)") {
			t.Fatalf("cmbs as string %v: %v (%v)", asString, err, class(err))
		}
		if n := len(srv.UploadRequests()); n != 0 {
			t.Errorf("%d requests to the upload host", n)
		}
		if c := srv.Counters(); c.UploadRequests != 0 || c.BytesReceived != 0 || c.Logins != 1 {
			t.Errorf("counters %+v", c)
		}
		// Exactly the space left fits.
		if _, err := e.upload(t, p, file(t, "fits.mp4", 2<<20)); err != nil {
			t.Errorf("a file of exactly the space left: %v", err)
		}
	}
}

// UploadGig's "Your storage is full" (the account filled up between the login and the
// upload) is permanent too.
func TestStorageFullPermanent(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{QuotaMB: 1})
	client := uploadertest.NewClient(t)
	client.HTTP.Transport = onUpload(client.HTTP.Transport, func() { srv.SetQuotaMB(0) })
	p := newProvider(t, srv, client, nil)
	var e engine
	_, err := e.upload(t, p, file(t, "a.mp4", 1000))
	if class(err) != uploader.Permanent || !strings.Contains(err.Error(), "Your storage is full") {
		t.Fatalf("%v (%v)", err, class(err))
	}
}

func TestBadLogin(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *uploadgig.Options) { o.Pass = "not-" + pass })
	var e engine
	_, err := e.upload(t, p, file(t, "a.mp4", 10))
	if class(err) != uploader.Permanent {
		t.Fatalf("bad login classed %v: %v", class(err), err)
	}
	for _, want := range []string{`"` + user + `"`, uploadgigtest.MsgBadLogin} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), pass) {
		t.Errorf("the error shows the password: %v", err)
	}
	if c := srv.Counters(); c.Logins != 1 || c.UploadRequests != 0 {
		t.Errorf("counters %+v", c)
	}
	if err := p.Check(context.Background()); class(err) != uploader.Permanent {
		t.Errorf("Check with a bad login: %v", err)
	}
}

// "-3" is a rate limit of the whole account, in minutes.
func TestRateLimited(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	srv.LockLogins(time.Hour)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e engine
	_, err := e.upload(t, p, file(t, "a.mp4", 10))
	c, after := uploader.Classify(err)
	if c != uploader.RateLimited || after != uploadgig.DefaultRateLimitWait {
		t.Fatalf("-3 classed %v after %v: %v", c, after, err)
	}
	if !strings.Contains(err.Error(), uploadgigtest.MsgRateLimited) || !strings.Contains(err.Error(), user) {
		t.Errorf("error %q", err)
	}
	// Passing the limit gives "-3" too.
	srv2 := startEmulator(t, uploadgigtest.Options{LoginsPerMinute: 2})
	p2 := newProvider(t, srv2, uploadertest.NewClient(t), func(o *uploadgig.Options) { o.RateLimitWait = 7 * time.Minute })
	f := file(t, "b.mp4", 10)
	for i := range 3 {
		var e engine
		_, err := e.upload(t, p2, f)
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if c, after := uploader.Classify(err); i == 2 && (c != uploader.RateLimited || after != 7*time.Minute) {
			t.Errorf("3rd login in a minute: %v after %v: %v", c, after, err)
		}
	}
}

// uploadAtOnce uploads n files of size bytes (named by name) through p at once, each as its
// own job, and returns their errors.
func uploadAtOnce(t *testing.T, p *uploadgig.Provider, n int, name func(int) string, size int64) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		f := file(t, name(i), size)
		wg.Go(func() {
			var e engine
			_, errs[i] = e.upload(t, p, f)
		})
	}
	wg.Wait()
	return errs
}

// The jobs that were waiting for the login slot when a "-3" came are told without logging
// in to hear it again; a job that asks later (after the engine's pause) logs in.
func TestRateLimitedWaitersNotLoggedIn(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{LoginDelay: 200 * time.Millisecond})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	srv.RateLimitNext(1)
	for _, err := range uploadAtOnce(t, p, 4, func(i int) string { return fmt.Sprintf("w%d.mp4", i) }, 10) {
		if c, after := uploader.Classify(err); c != uploader.RateLimited || after <= 0 || after > uploadgig.DefaultRateLimitWait {
			t.Errorf("%v after %v: %v", c, after, err)
		}
	}
	if c := srv.Counters(); c.Logins != 1 {
		t.Errorf("%d logins for 4 jobs waiting when the -3 came, want 1", c.Logins)
	}
	var e engine
	if _, err := e.upload(t, p, file(t, "later.mp4", 10)); err != nil {
		t.Errorf("a job after the -3: %v", err)
	}
}

// An action that expired (or was spent) before the upload: a fresh one, and the file is
// sent again.
func TestExpiredIdentity(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	client := uploadertest.NewClient(t)
	var once sync.Once
	client.HTTP.Transport = onUpload(client.HTTP.Transport, func() { once.Do(srv.ExpireActions) })
	p := newProvider(t, srv, client, nil)
	const size = 100 << 10
	var e engine
	res, err := e.upload(t, p, file(t, "a.mp4", size))
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Counters()
	if c.ActionsIssued != 2 || c.IdentityRefusals != 1 || c.Uploads != 1 || c.BytesReceived != 2*size {
		t.Errorf("counters %+v", c)
	}
	if res.ID != srv.Files()[0].ID {
		t.Errorf("result %+v", res)
	}
	// Refused every time: a transient error after a few fresh actions, not a loop.
	srv.SetActionTTL(time.Nanosecond)
	before := srv.Counters()
	var e2 engine
	_, err = e2.upload(t, p, file(t, "b.mp4", 10))
	if err == nil || class(err) != uploader.Transient || !strings.Contains(err.Error(), "Invalid identity provided") {
		t.Fatalf("%v (%v)", err, class(err))
	}
	if n := srv.Counters().ActionsIssued - before.ActionsIssued; n != 3 {
		t.Errorf("%d actions asked for", n)
	}
}

// A 5xx from the upload host is transient; the next attempt logs in again and sends the
// whole file, and one file is stored.
func TestUploadHost5xx(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	f := file(t, "a.mp4", 300<<10)
	srv.FailUploads(1, http.StatusBadGateway)
	var e engine
	if _, err := e.upload(t, p, f); err == nil || class(err) != uploader.Transient {
		t.Fatalf("502 from the upload host: %v (%v)", err, class(err))
	}
	res, err := e.upload(t, p, f)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Counters()
	if c.ActionsIssued != 2 || c.Uploads != 1 || len(srv.Files()) != 1 || srv.Files()[0].ID != res.ID {
		t.Errorf("counters %+v, files %+v", c, srv.Files())
	}
}

// Names are stored exactly as they are on disk, whatever they hold.
func TestNamesStoredExactly(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	names := []string{
		"holiday clip.mp4",
		`say "cheese" it's.mp4`,
		"%41.mp4",
		"100% done %zz.mp4",
		"-leading dash.mp4",
		"ünïcödé Ελληνικά 日本.mp4",
		"tab\there+plus.mp4",
	}
	dir := t.TempDir()
	for _, name := range names {
		f := uploadertest.OpenFile(t, uploadertest.MakeFile(t, dir, name, 1000))
		var e engine
		res, err := e.upload(t, p, f)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if res.Extra["file_name"] != name {
			t.Errorf("%q: extra %v", name, res.Extra)
		}
	}
	got := srv.Names()
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("stored names %q, want %q", got, want)
	}
	for _, r := range srv.UploadRequests() {
		if r.Header.Get("Content-Length") != "1000" || len(r.Header.Values("Transfer-Encoding")) > 0 || r.BodyBytes != 1000 {
			t.Errorf("upload sent with Content-Length %q, Transfer-Encoding %q, %d bytes; want exactly 1000", r.Header.Get("Content-Length"), r.Header.Values("Transfer-Encoding"), r.BodyBytes)
		}
		if r.Header.Get("Slug") == "" {
			t.Errorf("upload without a Slug: %v", r.Header)
		}
	}
}

func TestCodeAsNumber(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{CodeAsNumber: true, CmbsAsString: true})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	var e engine
	if _, err := e.upload(t, p, file(t, "a.mp4", 10)); err != nil {
		t.Fatal(err)
	}
	p = newProvider(t, srv, uploadertest.NewClient(t), func(o *uploadgig.Options) { o.Pass = "x" + pass })
	var e2 engine
	if _, err := e2.upload(t, p, file(t, "b.mp4", 10)); class(err) != uploader.Permanent {
		t.Errorf("code 0 as a number: %v", err)
	}
}

// Every login of a provider goes one at a time, however many jobs run at once.
func TestLoginsOneAtATime(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{LoginDelay: 30 * time.Millisecond})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	for _, err := range uploadAtOnce(t, p, 6, func(i int) string { return "f" + string(rune('a'+i)) + ".mp4" }, 64<<10) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := srv.Counters(); c.OverlappingLogins != 0 || c.Uploads != 6 {
		t.Errorf("counters %+v", c)
	}
}

// login_interval spaces logins.
func TestLoginInterval(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), func(o *uploadgig.Options) { o.LoginInterval = 150 * time.Millisecond })
	f := file(t, "a.mp4", 10)
	for range 3 {
		var e engine
		if _, err := e.upload(t, p, f); err != nil {
			t.Fatal(err)
		}
	}
	var logins []time.Time
	for _, r := range srv.LoginRequests() {
		logins = append(logins, r.At)
	}
	for i := 1; i < len(logins); i++ {
		if d := logins[i].Sub(logins[i-1]); d < 100*time.Millisecond {
			t.Errorf("logins %d and %d %v apart", i-1, i, d)
		}
	}
}

// The answer is in the checkpoint before the response has ended, and a job that finds it
// there sends nothing.
func TestAnswerRecordedAtOnce(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	f := file(t, "a.mp4", 256<<10)
	srv.HoldAfterAnswer(true)
	var e engine
	type out struct {
		res uploader.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := e.upload(t, p, f)
		done <- out{res, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !e.answered() {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint saved while the answer was held open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case o := <-done:
		t.Fatalf("Upload returned before the answer ended (%v): the test proves nothing", o.err)
	case <-time.After(50 * time.Millisecond):
	}
	srv.HoldAfterAnswer(false)
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	before := srv.Counters()
	res, err := e.upload(t, p, f)
	if err != nil || res.ID != o.res.ID || res.URL != o.res.URL || res.Extra["file_name"] != "a.mp4" {
		t.Fatalf("from the checkpoint: %+v %v, first %+v", res, err, o.res)
	}
	if c := srv.Counters(); c != before {
		t.Errorf("the upload from the checkpoint made requests: %+v -> %+v", before, c)
	}
}

// A stopping job still records an answer that arrived, and a cancel stops the upload.
func TestCancelMidUpload(t *testing.T) {
	srv := startEmulator(t, uploadgigtest.Options{})
	srv.Throttle(4 << 20)
	p := newProvider(t, srv, uploadertest.NewClient(t), nil)
	f := file(t, "slow.mp4", 8<<20)
	ctx, cancel := context.WithCancel(context.Background())
	var e engine
	job := e.job(f)
	job.Progress = func(n int64) {
		if n > 1<<20 {
			cancel()
		}
	}
	start := time.Now()
	_, err := p.Upload(ctx, job)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled upload: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if e.answered() || len(srv.Files()) != 0 {
		t.Errorf("a cut upload left an answer in the checkpoint (%s) or a stored file (%d)", e.cp, len(srv.Files()))
	}
}

func TestOptions(t *testing.T) {
	bad := uploadgig.Options{User: "a\nb", Pass: "", RateLimitWait: -1, LoginInterval: -1}
	errs := bad.Validate()
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
	}
	if !slices.Equal(keys, []string{"user", "pass", "rate_limit_wait", "login_interval"}) {
		t.Errorf("problems %v", errs)
	}
	if _, err := uploadgig.New(uploader.Env{Endpoint: "ftp://x", Client: uploadertest.NewClient(t)}, uploadgig.Options{User: "u", Pass: "p"}); err == nil {
		t.Error("an ftp endpoint was accepted")
	}
	if ty := uploadgig.Type(); ty.DefaultEndpoint != "https://uploadgig.com" || ty.Name != "uploadgig" {
		t.Errorf("type %+v", ty)
	}
}

// onUpload calls fn before each request to the upload host.
func onUpload(base http.RoundTripper, fn func()) http.RoundTripper {
	return &hook{base: base, fn: fn}
}

type hook struct {
	base http.RoundTripper
	fn   func()
}

func (h *hook) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/upload" {
		h.fn()
	}
	return h.base.RoundTrip(r)
}

func (h *hook) CloseIdleConnections() {
	if c, ok := h.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
