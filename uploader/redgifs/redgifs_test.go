package redgifs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/redgifs"
	"github.com/chute-dev/chute/uploader/redgifs/redgifstest"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

const token = "rg-user-token-0123456789abcdef"

// emulator starts the RedGIFs emulator with a real MinIO behind it (the stand-in with
// CHUTE_TEST_NO_MINIO=1).
func emulator(t testing.TB, opts redgifstest.Options) *redgifstest.Server {
	t.Helper()
	if opts.S3 == nil {
		opts.S3 = redgifstest.StartS3(t)
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
		RateLimit:        func(after time.Duration) { s.RateLimitNext(1, int(after/time.Second)) },
	})
}

// job is one file's job as the engine runs it: the digests computed once, the checkpoint
// kept between attempts.
type job struct {
	t       *testing.T
	p       uploader.Provider
	path    string
	file    *uploader.File
	digests map[uploader.Digest]string
	cp      []byte
	// crash, when set, is asked before each save: true makes the save fail, as if the
	// daemon died just before it, and the checkpoint stays what it was.
	crash func(cp checkpointView) bool
	read  atomic.Int64 // bytes read from the file through the upload
}

// checkpointView is the part of a checkpoint the tests look at.
type checkpointView struct {
	Step   string `json:"step"`
	Ticket string `json:"ticket"`
	GifID  string `json:"gif_id"`
}

var errCrash = errors.New("crash")

func newJob(t *testing.T, p uploader.Provider, size int64) *job {
	t.Helper()
	path := uploadertest.MakeFile(t, t.TempDir(), "clip.mp4", size)
	f := uploadertest.OpenFile(t, path)
	d, err := uploader.ComputeDigests(context.Background(), f, []uploader.Digest{uploader.MD5, uploader.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	j := &job{t: t, p: p, path: path, file: f, digests: d}
	f.Observe(func(b []byte, off int64) { j.read.Add(int64(len(b))) })
	return j
}

func (j *job) attempt(ctx context.Context) (uploader.Result, error) {
	return j.p.Upload(ctx, &uploader.Job{
		File:       j.file,
		Checkpoint: j.cp,
		Digests:    j.digests,
		Save: func(ctx context.Context, b []byte) error {
			var v checkpointView
			if err := json.Unmarshal(b, &v); err != nil {
				j.t.Errorf("checkpoint is not JSON: %v", err)
			}
			if j.crash != nil && j.crash(v) {
				return errCrash
			}
			j.cp = append([]byte(nil), b...)
			return nil
		},
	})
}

// until retries transient failures at once, as a fast engine would, up to tries attempts.
func (j *job) until(tries int) (uploader.Result, error) {
	var err error
	for i := 0; i < tries; i++ {
		var res uploader.Result
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err = j.attempt(ctx)
		cancel()
		if err == nil || uploader.IsPermanent(err) {
			return res, err
		}
	}
	return uploader.Result{}, err
}

func (j *job) checkpoint() checkpointView {
	var v checkpointView
	_ = json.Unmarshal(j.cp, &v)
	return v
}

// A plain upload: the sidecar's fields, the gif's fields as configured, the PUT as S3
// wants it (exact length, the video's type, no Authorization), the object byte for byte,
// and the file read once (the md5 came from the engine).
func TestUpload(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{
		Tags: []string{"cats", "funny"}, Private: true, KeepAudio: true,
		Description: "from chute", Niches: []string{"pets"},
	})
	const size = 3<<20 + 7
	j := newJob(t, p, size)
	res, err := j.until(1)
	if err != nil {
		t.Fatal(err)
	}
	if res.URL != redgifs.WatchURL+res.ID || res.Extra["md5"] != j.digests[uploader.MD5] || res.Extra["ticket"] == "" {
		t.Fatalf("result %+v", res)
	}
	g, ok := s.Gif(res.ID)
	if !ok {
		t.Fatalf("no gif %q at the emulator", res.ID)
	}
	if g.Ticket != res.Extra["ticket"] || !g.Private || !g.KeepAudio || g.Description != "from chute" ||
		!slices.Equal(g.Tags, []string{"cats", "funny"}) || !slices.Equal(g.Niches, []string{"pets"}) {
		t.Fatalf("gif %+v", g)
	}
	uploadertest.SameBytes(t, uploadertest.Harness{Stored: func(_ testing.TB, r uploader.Result) (io.ReadCloser, error) { return s.Stored(r) }}, res, j.path)
	puts := waitPuts(t, s, 1)
	put := puts[0]
	if put.Status != 200 || put.BodyBytes != size || put.Header.Get("Content-Type") != "video/mp4" || put.Header.Get("Authorization") != "" {
		t.Fatalf("PUT %d, %d bytes, Content-Type %q, Authorization %q", put.Status, put.BodyBytes, put.Header.Get("Content-Type"), put.Header.Get("Authorization"))
	}
	if tk, _ := s.Ticket(res.Extra["ticket"]); tk.ContentType != "video/mp4" || tk.Size != size {
		t.Fatalf("the object in S3: %+v", tk)
	}
	for _, r := range s.APIRequests() {
		if r.Header.Get("Authorization") != "Bearer "+token {
			t.Errorf("%s %s sent Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
		}
	}
	if got := j.read.Load(); got != size {
		t.Fatalf("the upload read %d bytes of a %d-byte file: it must read it once, for the PUT", got, size)
	}
	if c := s.Counters(); c.TicketsCreated != 1 || c.GifsCreated != 1 || c.FastPolls != 0 {
		t.Fatalf("counters %+v", c)
	}
}

// waitPuts waits for the relay to have recorded n PUTs and returns them.
func waitPuts(t *testing.T, s *redgifstest.Server, n int) []uploadertest.Record {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; {
		recs := s.UploadRequests()
		if len(recs) >= n || time.Now().After(deadline) {
			if len(recs) != n {
				t.Fatalf("%d PUTs recorded, want %d", len(recs), n)
			}
			return recs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An engine that gives no md5 still gets a correct ticket: the provider reads the file for it.
func TestNoDigestFromEngine(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 1<<20)
	want := j.digests[uploader.MD5]
	j.digests = nil
	res, err := j.until(1)
	if err != nil {
		t.Fatal(err)
	}
	// The emulator fails a ticket whose file does not have the ticket's md5.
	if tk, _ := s.Ticket(res.Extra["ticket"]); tk.MD5 != want || res.Extra["md5"] != want {
		t.Fatalf("ticket md5 %q, result md5 %q; the file's is %q", tk.MD5, res.Extra["md5"], want)
	}
}

// A file whose md5 the platform knows is never PUT, in both answer shapes, and still becomes
// a gif.
func TestDedup(t *testing.T) {
	s3 := redgifstest.StartS3(t)
	for _, tc := range []struct {
		name string
		opts redgifstest.Options
	}{
		{"2022 null url", redgifstest.Options{S3: s3, Shape: redgifstest.Shape2022}},
		{"2023 null url", redgifstest.Options{S3: s3}},
		{"2023 status ready with a url", redgifstest.Options{S3: s3, ReadyWithURL: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := emulator(t, tc.opts)
			p := provider(t, s, nil, redgifs.Options{Tags: []string{"x"}})
			j := newJob(t, p, 256<<10)
			known := s.KnowMD5(j.digests[uploader.MD5])
			res, err := j.until(1)
			if err != nil {
				t.Fatal(err)
			}
			if res.Extra["ticket"] != known {
				t.Fatalf("gif made from ticket %q, the known one is %q", res.Extra["ticket"], known)
			}
			if c := s.Counters(); c.Puts != 0 || c.GifsCreated != 1 || c.TicketsCreated != 0 {
				t.Fatalf("counters %+v", c)
			}
			if got := j.read.Load(); got != 0 {
				t.Fatalf("read %d bytes of a file the platform knows", got)
			}
		})
	}
}

// The second upload of the same bytes (another file name) is deduplicated by the platform.
func TestSameContentTwice(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 64<<10)
	if _, err := j.until(1); err != nil {
		t.Fatal(err)
	}
	again := &job{t: t, p: p, file: j.file, digests: j.digests}
	if _, err := again.until(1); err != nil {
		t.Fatal(err)
	}
	if c := s.Counters(); c.Puts != 1 || c.GifsCreated != 2 || c.KnownAnswers != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// An expired signed URL (403 from S3 itself) is mended by a new ticket answer in the same
// attempt.
func TestExpiredURL(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 1<<20)
	s.ExpireNextURLs(1)
	// S3 may answer the refused PUT before the body is in and close the connection: the
	// client then sees a 403, or a broken connection and mends it in its next attempt.
	res, err := j.until(2)
	if err != nil {
		t.Fatal(err)
	}
	puts := waitPuts(t, s, 2)
	if puts[0].Status == 200 || puts[1].Status != 200 {
		t.Fatalf("PUT statuses %d, %d; want a refusal then 200", puts[0].Status, puts[1].Status)
	}
	if c := s.Counters(); c.URLsIssued != 2 || c.TicketsCreated != 1 || c.GifsCreated != 1 {
		t.Fatalf("counters %+v", c)
	}
	uploadertest.SameBytes(t, uploadertest.Harness{Stored: func(_ testing.TB, r uploader.Result) (io.ReadCloser, error) { return s.Stored(r) }}, res, j.path)
}

// URLs that keep expiring end the attempt with a transient error after a bounded number of
// tickets, not a loop.
func TestURLsKeepExpiring(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 1<<10)
	s.ExpireNextURLs(100)
	_, err := j.attempt(context.Background())
	if err == nil || uploader.IsPermanent(err) {
		t.Fatalf("err %v, want a transient error", err)
	}
	// Three tickets at most (fewer when S3's early refusal breaks the connection, which ends
	// the attempt at once).
	if c := s.Counters(); c.Puts < 1 || c.Puts > 3 {
		t.Fatalf("%d PUTs in one attempt, want 1 to 3", c.Puts)
	}
}

// A refused token fails at once, permanently, with words a user can act on and without the
// token, though the server echoes it.
func TestRefusedToken(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	bad := "expired-" + token
	p := provider(t, s, nil, redgifs.Options{Token: bad})
	j := newJob(t, p, 1<<10)
	_, err := j.until(5)
	if !uploader.IsPermanent(err) {
		t.Fatalf("err %v, want permanent", err)
	}
	msg := err.Error()
	for _, want := range []string{"refused the token", "expired", "user token with the upload scope"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, bad) || strings.Contains(msg, token) {
		t.Fatalf("the error shows the token: %s", msg)
	}
	if c := s.Counters(); c.Unauthorized != 1 {
		t.Fatalf("%d requests refused, want 1: a refused token is not retried", c.Unauthorized)
	}
}

// A 429 pauses the whole provider for error.delay (no Retry-After), or for Retry-After.
func TestRateLimit(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 1<<10)
	s.RateLimitNext(1, 7)
	_, err := j.attempt(context.Background())
	if class, after := uploader.Classify(err); class != uploader.RateLimited || after != 7*time.Second {
		t.Fatalf("429 with delay 7 classed %v after %v: %v", class, after, err)
	}
	if !strings.Contains(err.Error(), "rate limited") {
		t.Fatalf("the platform's words are lost: %v", err)
	}
	s.FailNext(1, 429, 3*time.Second)
	_, err = j.attempt(context.Background())
	if class, after := uploader.Classify(err); class != uploader.RateLimited || after != 3*time.Second {
		t.Fatalf("429 with Retry-After 3 classed %v after %v: %v", class, after, err)
	}
	if _, err := j.until(1); err != nil {
		t.Fatal(err)
	}
}

// Status polls are at least 1 s apart, also across attempts, and back off: a slow ticket and a
// slow encoding, with an attempt failing in the middle of the wait.
func TestPollSpacing(t *testing.T) {
	s := emulator(t, redgifstest.Options{ReadyAfter: 4 * time.Second, EncodeAfter: 3 * time.Second})
	p := provider(t, s, nil, redgifs.Options{Wait: redgifs.WaitEncoded})
	j := newJob(t, p, 64<<10)
	go func() {
		// Fail one poll in the middle of the ticket's wait: the retry must not poll sooner.
		time.Sleep(2500 * time.Millisecond)
		s.FailNext(1, 502, 0)
	}()
	res, err := j.until(3)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Counters()
	if c.FastPolls != 0 {
		t.Fatalf("%d polls less than 1 s after the one before", c.FastPolls)
	}
	if c.StatusPolls < 3 || c.GifPolls < 2 {
		t.Fatalf("%d ticket polls and %d gif polls: the waits were not polled", c.StatusPolls, c.GifPolls)
	}
	var ticketPolls []time.Time
	for _, r := range s.APIRequests() {
		if strings.HasSuffix(r.Path, "/status") && strings.HasPrefix(r.Path, "/v2/upload/") {
			ticketPolls = append(ticketPolls, r.At)
		}
	}
	for i := 1; i < len(ticketPolls); i++ {
		if d := ticketPolls[i].Sub(ticketPolls[i-1]); d < time.Second {
			t.Errorf("ticket polls %d and %d are %v apart", i-1, i, d)
		}
	}
	if g, _ := s.Gif(res.ID); g.ID == "" {
		t.Fatal("no gif")
	}
}

// The poll backoff grows towards 30 s: over a 12 s wait there are far fewer polls than
// seconds.
func TestPollBackoff(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s")
	}
	s := emulator(t, redgifstest.Options{ReadyAfter: 12 * time.Second})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 1<<10)
	if _, err := j.until(1); err != nil {
		t.Fatal(err)
	}
	// Pauses of 1, 1.5, 2.25, 3.4, 5.1 s reach 12 s in 6 or 7 polls; a fixed 1 s would take 12.
	if c := s.Counters(); c.StatusPolls > 8 || c.FastPolls != 0 {
		t.Fatalf("%d polls (%d too fast) over a 12 s wait", c.StatusPolls, c.FastPolls)
	}
}

// A crash right after the PUT's 200, before the step was saved: the next attempt asks the
// ticket's status, sees the platform has the file, and does not PUT again.
func TestCrashAfterPut(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 2<<20)
	j.crash = func(cp checkpointView) bool { return cp.Step == "uploaded" }
	if _, err := j.attempt(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("first attempt: %v, want the crash", err)
	}
	if got := j.checkpoint(); got.Step != "ticket" || got.Ticket == "" {
		t.Fatalf("checkpoint at the crash %+v", got)
	}
	j.crash = nil
	res, err := j.until(1)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Counters(); c.Puts != 1 || c.GifsCreated != 1 || c.TicketsCreated != 1 {
		t.Fatalf("counters after the resume %+v", c)
	}
	uploadertest.SameBytes(t, uploadertest.Harness{Stored: func(_ testing.TB, r uploader.Result) (io.ReadCloser, error) { return s.Stored(r) }}, res, j.path)
}

// A crash after the gif id was saved never submits again, whatever the wait.
func TestCrashAfterSubmit(t *testing.T) {
	s := emulator(t, redgifstest.Options{EncodeAfter: 1500 * time.Millisecond})
	p := provider(t, s, nil, redgifs.Options{Wait: redgifs.WaitEncoded})
	j := newJob(t, p, 1<<10)
	ctx, cancel := context.WithCancel(context.Background())
	j.crash = func(cp checkpointView) bool {
		if cp.GifID != "" {
			cancel() // stop the attempt the moment the gif id is saved
		}
		return false
	}
	if _, err := j.attempt(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("first attempt: %v", err)
	}
	gif := j.checkpoint().GifID
	if gif == "" {
		t.Fatal("the gif id was not saved though the save came before the cancel")
	}
	j.crash = nil
	res, err := j.until(1)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != gif {
		t.Fatalf("resumed to gif %q, the saved one is %q", res.ID, gif)
	}
	if c := s.Counters(); c.GifsCreated != 1 || c.Puts != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// A cancelled PUT is re-sent whole on the next attempt, to the same ticket.
func TestCancelledPut(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 16<<20)
	s.Throttle(8 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	_, err := j.attempt(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first attempt: %v", err)
	}
	s.Throttle(0)
	res, err := j.until(1)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Counters(); c.TicketsCreated != 1 || c.PutsOK != 1 || c.GifsCreated != 1 {
		t.Fatalf("counters %+v", c)
	}
	uploadertest.SameBytes(t, uploadertest.Harness{Stored: func(_ testing.TB, r uploader.Result) (io.ReadCloser, error) { return s.Stored(r) }}, res, j.path)
}

// What the platform cannot take fails permanently with its words: a failed ticket, a failed
// encoding, a refused submit.
func TestPlatformRefusals(t *testing.T) {
	s := emulator(t, redgifstest.Options{GifStatusKey: "status"})
	p := provider(t, s, nil, redgifs.Options{Wait: redgifs.WaitEncoded})

	s.FailTickets("Video is too short (min 1s)")
	_, err := newJob(t, p, 1<<10).until(3)
	if !uploader.IsPermanent(err) || !strings.Contains(err.Error(), "Video is too short (min 1s)") {
		t.Fatalf("failed ticket: %v", err)
	}
	s.FailTickets("")

	s.FailEncoding("unsupported codec")
	_, err = newJob(t, p, 1<<10).until(3)
	if !uploader.IsPermanent(err) || !strings.Contains(err.Error(), "unsupported codec") {
		t.Fatalf("failed encoding: %v", err)
	}
	s.FailEncoding("")

	s.FailNext(1, 400, 0)
	_, err = newJob(t, p, 1<<10).until(3)
	if !uploader.IsPermanent(err) || !strings.Contains(err.Error(), "injected fault") {
		t.Fatalf("a 400: %v", err)
	}
}

// Errors are read from the error object whatever its inner keys.
func TestErrorObjects(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"error":{"code":"AuthorizationHeaderMissing","description":"no header"}}`, "(AuthorizationHeaderMissing): no header"},
		{`{"error":{"code":"AuthException","message":"missing authorization data","status":401}}`, "(AuthException): missing authorization data"},
		{`{"error":{"name":"Teapot","detail":"short and stout"}}`, "(Teapot): short and stout"},
		{`{"error":"plain words"}`, ": plain words"},
		{`{"error":{"foo":"bar","baz":"qux"}}`, ": baz: qux; foo: bar"},
		{`not json`, ": not json"},
	} {
		err := redgifs.DecodeForTest(418, tc.body)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s read as %q, want it to contain %q", tc.body, err, tc.want)
		}
	}
}

// Options: defaults, validation, and every key by its yaml name.
func TestOptions(t *testing.T) {
	o := redgifs.Type().NewOptions().(*redgifs.Options)
	if o.Wait != redgifs.WaitUploaded || o.MaxWait != redgifs.DefaultMaxWait || o.KeepAudio || o.Private {
		t.Fatalf("defaults %+v", o)
	}
	bad := redgifs.Options{Token: "two words", Wait: "forever", Tags: []string{"ok", " "}, Niches: []string{""}, MaxWait: -1}
	var keys []string
	for _, e := range bad.Validate() {
		keys = append(keys, e.Key)
		if strings.Contains(e.Msg, "two words") {
			t.Errorf("a message shows the token: %s", e.Msg)
		}
	}
	if want := []string{"token", "tags[1]", "niches[0]", "wait", "max_wait"}; !slices.Equal(keys, want) {
		t.Fatalf("problems with %v, want %v", keys, want)
	}
	if errs := (redgifs.Options{Token: " Bearer abc123 "}).Validate(); len(errs) != 0 {
		t.Fatalf("a token pasted with its scheme: %v", errs)
	}
	if errs := (redgifs.Options{}).Validate(); len(errs) != 1 || errs[0].Key != "token" {
		t.Fatalf("no token: %v", errs)
	}
	ty := reflect.TypeOf(redgifs.Options{})
	var tags []string
	for i := 0; i < ty.NumField(); i++ {
		tags = append(tags, ty.Field(i).Tag.Get("yaml"))
	}
	if want := []string{"token", "tags", "private", "keep_audio", "description", "niches", "wait", "max_wait"}; !slices.Equal(tags, want) {
		t.Fatalf("yaml keys %v", tags)
	}
	if f, _ := ty.FieldByName("Token"); f.Tag.Get("chute") != "required,secret" {
		t.Fatal("token is not a required secret")
	}
	if _, err := redgifs.New(uploader.Env{Client: uploader.NewClient(uploader.ClientOptions{}), Endpoint: "ftp://x"}, redgifs.Options{Token: "t0k"}); err == nil {
		t.Fatal("an ftp endpoint was accepted")
	}
	if redgifs.Type().DefaultEndpoint != "https://api.redgifs.com" {
		t.Fatal("default endpoint")
	}
}

// A PUT that S3 answers 503 is worth another try, to the same ticket; the checkpoint never
// holds the token or the signed URL.
func TestPutFailsThenRecovers(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	j := newJob(t, p, 512<<10)
	s.FailNextPut(1, 503)
	_, err := j.attempt(context.Background())
	if err == nil || uploader.IsPermanent(err) {
		t.Fatalf("a PUT answered 503: %v, want a transient error", err)
	}
	ticket := j.checkpoint().Ticket
	if ticket == "" {
		t.Fatal("no ticket saved before the PUT")
	}
	res, err := j.until(1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Extra["ticket"] != ticket {
		t.Fatalf("the retry used ticket %q, the saved one is %q", res.Extra["ticket"], ticket)
	}
	if c := s.Counters(); c.TicketsCreated != 1 || c.Puts != 2 || c.PutsOK != 1 || c.GifsCreated != 1 {
		t.Fatalf("counters %+v", c)
	}
	for _, leak := range []string{token, "X-Amz-Signature", "X-Amz-Credential", "http"} {
		if strings.Contains(string(j.cp), leak) {
			t.Fatalf("the checkpoint holds %q: %s", leak, j.cp)
		}
	}
}

// A checkpoint that makes no sense (a damaged or foreign one) starts the upload over rather
// than ending it with an empty result.
func TestNonsenseCheckpoint(t *testing.T) {
	s := emulator(t, redgifstest.Options{})
	p := provider(t, s, nil, redgifs.Options{})
	for _, cp := range []string{`{"step":"submitted"}`, `{"step":"uploaded"}`, `{"step":"launched","ticket":"x"}`, `not json`} {
		j := newJob(t, p, 1<<10)
		j.cp = []byte(cp)
		res, err := j.until(1)
		if err != nil {
			t.Fatalf("checkpoint %s: %v", cp, err)
		}
		if _, ok := s.Gif(res.ID); !ok {
			t.Fatalf("checkpoint %s: result %+v names no gif", cp, res)
		}
	}
}
