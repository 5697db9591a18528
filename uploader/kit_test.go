package uploader_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

func openTemp(t *testing.T, content []byte) *uploader.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip ü.mp4")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := uploader.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func newClient(t *testing.T, opts uploader.ClientOptions) *uploader.Client {
	c := uploader.NewClient(opts)
	t.Cleanup(c.CloseIdle)
	return c
}

// The multipart body is sent with an exact Content-Length that equals the bytes on the wire,
// never chunked, with the fields in order and the file last.
func TestMultipartBody(t *testing.T) {
	content := pattern(3<<20 + 17)
	f := openTemp(t, content)
	type seen struct {
		length   int64
		read     int64
		chunked  bool
		names    []string
		file     []byte
		filename string
		ctype    string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		s := seen{length: r.ContentLength, read: int64(len(raw)), chunked: len(r.TransferEncoding) > 0}
		_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("multipart: %v", err)
				break
			}
			s.names = append(s.names, p.FormName())
			b, _ := io.ReadAll(p)
			if p.FormName() == "file" {
				s.file, s.filename, s.ctype = b, p.FileName(), p.Header.Get("Content-Type")
			}
		}
		got <- s
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `<PostResponse><Key>tmp/1/a</Key><ETag>"x"</ETag></PostResponse>`)
	}))
	defer srv.Close()

	fields := []uploader.FormField{{"key", "tmp/1/a"}, {"policy", "eyJ4Ijoi"}, {"x-amz-signature", "abc"}, {"acl", "private"}, {"success_action_status", "201"}}
	var progress atomic.Int64
	body, err := uploader.NewMultipartBody(fields, "file", f, f.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	body.WithProgress(func(n int64) { progress.Store(n) })
	var out struct {
		Key  string `xml:"Key"`
		ETag string `xml:"ETag"`
	}
	_, err = newClient(t, uploader.ClientOptions{}).Send(context.Background(), &uploader.Request{
		Method: http.MethodPost, URL: srv.URL, Body: body, Out: &out, Decode: uploader.DecodeXML, Expect: []int{201},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.chunked || s.length != body.Len() || s.read != body.Len() {
		t.Fatalf("Content-Length %d, chunked %v, bytes read %d; body.Len() %d", s.length, s.chunked, s.read, body.Len())
	}
	want := []string{"key", "policy", "x-amz-signature", "acl", "success_action_status", "file"}
	if strings.Join(s.names, ",") != strings.Join(want, ",") {
		t.Fatalf("fields %v, want %v (file last)", s.names, want)
	}
	if !bytes.Equal(s.file, content) || s.filename != f.Name || s.ctype != "video/mp4" {
		t.Fatalf("file part: %d bytes (want %d), name %q, type %q", len(s.file), len(content), s.filename, s.ctype)
	}
	if progress.Load() != int64(len(content)) {
		t.Fatalf("progress ended at %d, want %d", progress.Load(), len(content))
	}
	if out.Key != "tmp/1/a" || out.ETag != `"x"` {
		t.Fatalf("XML answer decoded as %+v", out)
	}
}

// A body is read again from its start for a retry: a redirect (GetBody) and a second Send
// of the same body both deliver every byte, and progress starts again from 0.
func TestBodyRetryRereads(t *testing.T) {
	content := pattern(1 << 20)
	f := openTemp(t, content)
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		n := len(bodies)
		mu.Unlock()
		if r.URL.Path == "/first" {
			http.Redirect(w, r, "/second", http.StatusTemporaryRedirect)
			return
		}
		if r.ContentLength != int64(len(content)-1000) {
			t.Errorf("request %d: Content-Length %d", n, r.ContentLength)
		}
	}))
	defer srv.Close()
	c := newClient(t, uploader.ClientOptions{})
	var starts []int64 // the first figure of each send: progress counts from 0 again
	last := int64(-1)
	body := uploader.NewFileBody(f, 1000, f.Size-1000).WithType("video/mp4").WithProgress(func(n int64) {
		mu.Lock()
		if n <= last {
			starts = append(starts, n)
		}
		if last < 0 {
			starts = append(starts, n)
		}
		last = n
		mu.Unlock()
	})
	for _, path := range []string{"/first", "/again"} {
		if _, err := c.Send(context.Background(), &uploader.Request{Method: http.MethodPut, URL: srv.URL + path, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if len(bodies) != 3 {
		t.Fatalf("%d requests, want 3 (a redirect, its repeat, a second send)", len(bodies))
	}
	for i, b := range bodies {
		if !bytes.Equal(b, content[1000:]) {
			t.Fatalf("request %d carried %d bytes, not the section from 1000", i, len(b))
		}
	}
	if len(starts) < 3 {
		t.Fatalf("progress did not restart for each send: %v", starts)
	}
}

// One renewal serves 20 concurrent callers; an expiring token is renewed before it expires;
// a refusal seen by 20 jobs at once renews once.
func TestTokenSourceRenewsOnce(t *testing.T) {
	var fetches atomic.Int32
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := uploader.NewTokenSource(func(ctx context.Context) (uploader.Token, error) {
		n := fetches.Add(1)
		time.Sleep(50 * time.Millisecond) // long enough for every caller to arrive
		return uploader.Token{Value: fmt.Sprint("tok", n), Expires: clock().Add(time.Hour)}, nil
	}, 5*time.Minute)
	ts.Now = clock

	run := func() []string {
		var wg sync.WaitGroup
		vals := make([]string, 20)
		for i := range vals {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := ts.Token(context.Background())
				if err != nil {
					t.Error(err)
				}
				vals[i] = tok.Value
			}()
		}
		wg.Wait()
		return vals
	}
	for _, v := range run() {
		if v != "tok1" {
			t.Fatalf("a caller got %q, want tok1", v)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 20 concurrent callers, want 1", n)
	}
	mu.Lock()
	now = now.Add(56 * time.Minute) // inside the 5-minute margin
	mu.Unlock()
	if v := run(); v[0] != "tok2" || fetches.Load() != 2 {
		t.Fatalf("near expiry: got %q after %d fetches, want tok2 after 2", v[0], fetches.Load())
	}
	// 20 jobs refused with tok2 at once: one renewal.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts.Invalidate(uploader.Token{Value: "tok2"})
			if _, err := ts.Token(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after 20 refusals of one token, want 3", n)
	}
	// Use: a refusal renews once and tries again; a second refusal is returned.
	refused := errors.New("401")
	var used []string
	err := ts.Use(context.Background(), func(err error) bool { return errors.Is(err, refused) }, func(ctx context.Context, tok uploader.Token) error {
		used = append(used, tok.Value)
		return refused
	})
	if !errors.Is(err, refused) || len(used) != 2 || used[0] == used[1] {
		t.Fatalf("Use: err %v, tokens used %v: want two different tokens, then the refusal", err, used)
	}
}

// A token that lives less than the margin is still used, until half its life has passed.
func TestTokenSourceShortLived(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var fetches int
	ts := uploader.NewTokenSource(func(ctx context.Context) (uploader.Token, error) {
		fetches++
		return uploader.Token{Value: fmt.Sprint(fetches), Expires: now.Add(time.Minute)}, nil
	}, 5*time.Minute)
	ts.Now = func() time.Time { return now }
	for range 5 {
		if _, err := ts.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if fetches != 1 {
		t.Fatalf("%d fetches of a 1-minute token with a 5-minute margin, want 1", fetches)
	}
	now = now.Add(31 * time.Second)
	if tok, _ := ts.Token(context.Background()); tok.Value != "2" {
		t.Fatalf("past half its life the token was not renewed: %q", tok.Value)
	}
}

// A fetch cut short by its caller leaving does not fail the callers that waited for it.
func TestTokenSourceFetcherLeaves(t *testing.T) {
	release := make(chan struct{})
	var fetches atomic.Int32
	ts := uploader.NewTokenSource(func(ctx context.Context) (uploader.Token, error) {
		if fetches.Add(1) == 1 {
			select {
			case <-ctx.Done():
				return uploader.Token{}, ctx.Err()
			case <-release:
			}
		}
		return uploader.Token{Value: "ok"}, nil
	}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := ts.Token(ctx); first <- err }()
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan uploader.Token, 1)
	go func() { tok, _ := ts.Token(context.Background()); second <- tok }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the fetching caller got %v, want context.Canceled", err)
	}
	select {
	case tok := <-second:
		if tok.Value != "ok" {
			t.Fatalf("the waiting caller got %q", tok.Value)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting caller never got a token")
	}
	close(release)
}

// The floor between polls holds even when the limiter would allow a burst, the backoff grows
// to its cap, and MaxWait ends the wait.
func TestPollerFloor(t *testing.T) {
	const floor = 40 * time.Millisecond
	var starts []time.Time
	p := uploader.Poller{
		Floor:   floor,
		Cap:     100 * time.Millisecond,
		Factor:  2,
		MaxWait: 600 * time.Millisecond,
		Limiter: rate.NewLimiter(rate.Inf, 100),
	}
	err := p.Until(context.Background(), time.Time{}, func(ctx context.Context) (bool, error) {
		starts = append(starts, time.Now())
		return false, nil
	})
	if !errors.Is(err, uploader.ErrMaxWait) {
		t.Fatalf("Until returned %v, want ErrMaxWait", err)
	}
	if len(starts) < 4 {
		t.Fatalf("only %d polls in 600ms", len(starts))
	}
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		gaps = append(gaps, gap)
		if gap < floor {
			t.Fatalf("poll %d came %v after the one before: the %v floor was undercut (gaps %v)", i, gap, floor, gaps)
		}
	}
	if gaps[1] < 75*time.Millisecond {
		t.Errorf("no backoff: gaps %v", gaps)
	}
	if last := starts[len(starts)-1].Sub(starts[0]); last > 800*time.Millisecond {
		t.Errorf("the last poll came %v after the first, past MaxWait", last)
	}

	// Done ends it; an error ends it; a cancel ends it promptly.
	n := 0
	if err := (uploader.Poller{Floor: time.Millisecond}).Until(context.Background(), time.Time{}, func(context.Context) (bool, error) {
		n++
		return n == 3, nil
	}); err != nil || n != 3 {
		t.Fatalf("done after 3: err %v, %d checks", err, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = (uploader.Poller{Floor: time.Hour}).Until(ctx, time.Time{}, func(context.Context) (bool, error) { return false, nil })
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("cancelled poll: %v after %v", err, time.Since(start))
	}
}

// A resumed wait counts MaxWait from the time it first began.
func TestPollerMaxWaitFromSince(t *testing.T) {
	calls := 0
	err := uploader.Poller{Floor: time.Millisecond, MaxWait: time.Hour}.Until(context.Background(), time.Now().Add(-2*time.Hour), func(context.Context) (bool, error) {
		calls++
		return false, nil
	})
	if !errors.Is(err, uploader.ErrMaxWait) || calls != 1 {
		t.Fatalf("a wait begun 2h ago with MaxWait 1h: %v after %d checks, want ErrMaxWait after 1", err, calls)
	}
}

func TestRedactor(t *testing.T) {
	r := uploader.NewRedactor("Bearer s3cr3t-t0ken/+x", "Basic "+"dXNlcjpwQHNzdzByZA==", "ab")
	cases := []string{
		"echo: Bearer s3cr3t-t0ken/+x",
		"token s3cr3t-t0ken/+x alone",
		"escaped s3cr3t-t0ken%2F%2Bx",
		"decoded user:p@ssw0rd",
		"password p@ssw0rd",
		`json "s3cr3t-t0ken/+x"`,
	}
	for _, c := range cases {
		got := r.String(c)
		for _, leak := range []string{"s3cr3t", "p@ssw0rd", "dXNlcjpw"} {
			if strings.Contains(got, leak) {
				t.Errorf("String(%q) = %q: %s shows", c, got, leak)
			}
		}
	}
	if got := r.String("tab and cab"); got != "tab and cab" {
		t.Errorf("a 2-character secret blanked words: %q", got)
	}
	urls := map[string]string{
		"PATCH /files/u1?token=abc123&x=1: 500":    "PATCH /files/u1?token=[REDACTED]&x=[REDACTED]: 500",
		"at https://u:pw@host/files/ failed":       "at https://[REDACTED]@host/files/ failed",
		"see http://h/a?sig=Zm9v%2Bbar#frag today": "see http://h/a?sig=[REDACTED]#frag today",
	}
	for in, want := range urls {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	var nilR *uploader.Redactor
	if got := nilR.String("x?k=v"); got != "x?k=[REDACTED]" {
		t.Errorf("nil Redactor: %q", got)
	}
	base := errors.New("plain")
	if nilR.Error(base) != base {
		t.Error("an error with nothing to hide was wrapped")
	}
	classed := uploader.PermanentError(errors.New("bad key s3cr3t-t0ken/+x"))
	red := r.Error(classed)
	if strings.Contains(red.Error(), "s3cr3t") || !uploader.IsPermanent(red) {
		t.Errorf("Error: %q, permanent %v", red, uploader.IsPermanent(red))
	}
}

// A server that echoes the Authorization value, the upload token and the URL's query in its
// error answer has none of them copied into the error, nor into the *StatusError's fields.
func TestSendRedactsEchoedSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"refused %s for %s","code":"Auth %s"}}`, r.Header.Get("Authorization"), r.URL.RequestURI(), r.Header.Get("X-Upload-Token"))
	}))
	defer srv.Close()
	red := uploader.NewRedactor("Bearer hunter2-key").With("upl-tok-77")
	api := &uploader.API{
		Client:   newClient(t, uploader.ClientOptions{}),
		Base:     srv.URL,
		Header:   http.Header{"Authorization": {"Bearer hunter2-key"}},
		Redactor: red,
		Errors: func(a *uploader.Answer, f *uploader.Fault) {
			var e struct {
				Error struct{ Message, Code string }
			}
			if a.Status >= 400 && jsonUnmarshal(a.Body, &e) == nil {
				f.Message, f.Code = e.Error.Message, e.Error.Code
			}
		},
	}
	_, err := api.Send(context.Background(), &uploader.Request{
		URL: "/v1/things", Query: url.Values{"sig": {"querysecret99"}}, What: "list things",
		Header: http.Header{"X-Upload-Token": {"upl-tok-77"}},
	})
	if err == nil || !uploader.IsPermanent(err) {
		t.Fatalf("401 gave %v, want a permanent error", err)
	}
	var se *uploader.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("no *StatusError in %v", err)
	}
	for _, text := range []string{err.Error(), se.Body, se.Message, se.URL, se.Code} {
		for _, leak := range []string{"hunter2", "upl-tok-77", "querysecret99"} {
			if strings.Contains(text, leak) {
				t.Errorf("%q shows %s", text, leak)
			}
		}
	}
	if !strings.HasPrefix(err.Error(), "list things: GET ") || !strings.Contains(err.Error(), "refused [REDACTED]") {
		t.Errorf("message %q lacks the step or the platform's words", err)
	}
}

// An answer trickled a byte at a time is cut at AnswerTimeout, as a transient error, though
// every byte restarts the idle timeout.
func TestAnswerDeadline(t *testing.T) {
	var faults uploadertest.Faults
	faults.Trickle(100 * time.Millisecond)
	srv := httptest.NewServer(faults.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.Write(pattern(1000))
	})))
	defer srv.Close()
	c := newClient(t, uploader.ClientOptions{IdleTimeout: time.Second, AnswerTimeout: 700 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Send(ctx, &uploader.Request{Method: http.MethodPatch, URL: srv.URL, Body: uploader.NewFileBody(openTemp(t, pattern(1000)), 0, 1000)})
	took := time.Since(start)
	if err == nil || ctx.Err() != nil || took > 3*time.Second {
		t.Fatalf("trickled answer: %v after %v", err, took)
	}
	if c, _ := uploader.Classify(err); c != uploader.Transient || !strings.Contains(err.Error(), "not read within") {
		t.Fatalf("trickled answer classed %v: %v", c, err)
	}
	// A prompt answer is not affected, and its timer does not outlive it.
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"ok":true}`) }))
	defer fast.Close()
	var out struct{ OK bool }
	if _, err := c.Send(ctx, &uploader.Request{URL: fast.URL, Out: &out}); err != nil || !out.OK {
		t.Fatalf("prompt answer: %v, %+v", err, out)
	}
}

func TestSendReading(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/form":
			_ = r.ParseForm()
			if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.PostForm.Get("pass") != "a&b=c" || r.URL.Query().Get("page") != "2" || r.URL.Query().Get("k") != "1" {
				http.Error(w, "bad form", 400)
				return
			}
			fmt.Fprint(w, `{"code":"1","result":{"action":"http://x/up"}}`)
		case "/limited":
			fmt.Fprint(w, `{"code":"-3","result":"you can't login a few minutes"}`)
		case "/created":
			w.WriteHeader(http.StatusOK)
		case "/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/json":
			var in map[string]string
			if jsonDecode(r.Body, &in) != nil || in["md5"] != "abc" || r.Header.Get("Content-Type") != "application/json" {
				http.Error(w, "bad json", 400)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"t1"}`)
		}
	}))
	defer srv.Close()
	decode := func(a *uploader.Answer, f *uploader.Fault) {
		var e struct {
			Code   string `json:"code"`
			Result any    `json:"result"`
		}
		if jsonUnmarshal(a.Body, &e) != nil || e.Code == "" || e.Code == "1" {
			return
		}
		f.Failed, f.Code = true, e.Code
		if s, ok := e.Result.(string); ok {
			f.Message = s
		}
		if e.Code == "-3" {
			f.Class, f.After = uploader.RateLimited, 5*time.Minute
		}
	}
	api := &uploader.API{Client: newClient(t, uploader.ClientOptions{}), Base: srv.URL + "/", Errors: decode}
	ctx := context.Background()
	var got struct {
		Result struct{ Action string } `json:"result"`
	}
	if _, err := api.Send(ctx, &uploader.Request{Method: "POST", URL: "form?k=1", Query: url.Values{"page": {"2"}}, Form: url.Values{"pass": {"a&b=c"}}, Out: &got}); err != nil || got.Result.Action != "http://x/up" {
		t.Fatalf("form: %v, %+v", err, got)
	}
	_, err := api.Send(ctx, &uploader.Request{Method: "POST", URL: "/limited", Form: url.Values{}})
	if c, after := uploader.Classify(err); c != uploader.RateLimited || after != 5*time.Minute || !strings.Contains(err.Error(), "(-3): you can't login") {
		t.Fatalf("error in a 200: %v classed %v %v", err, c, after)
	}
	_, err = api.Send(ctx, &uploader.Request{Method: "POST", URL: "/created", Expect: []int{201}})
	if c, _ := uploader.Classify(err); c != uploader.Transient || !strings.Contains(err.Error(), "want 201") {
		t.Fatalf("200 where 201 was expected: %v, %v", err, c)
	}
	_, err = api.Send(ctx, &uploader.Request{URL: "/busy"})
	if c, after := uploader.Classify(err); c != uploader.RetryAfter || after != 7*time.Second {
		t.Fatalf("429: %v, %v", c, after)
	}
	var tk struct{ ID string }
	if _, err := api.Send(ctx, &uploader.Request{Method: "POST", URL: "/json", JSON: map[string]string{"md5": "abc"}, Out: &tk}); err != nil || tk.ID != "t1" {
		t.Fatalf("json: %v, %+v", err, tk)
	}
	if _, err := api.Send(ctx, &uploader.Request{URL: "/json", JSON: 1, Form: url.Values{}}); !uploader.IsPermanent(err) {
		t.Fatalf("two bodies: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := api.Send(cancelled, &uploader.Request{URL: "/json"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// The API's header (its authorization) goes to its own host only, never to a presigned URL
// elsewhere.
func TestAPIHeaderOnlyToBase(t *testing.T) {
	var seen sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Host, r.Header.Get("Authorization"))
	})
	api1, other := httptest.NewServer(h), httptest.NewServer(h)
	defer api1.Close()
	defer other.Close()
	api := &uploader.API{Client: newClient(t, uploader.ClientOptions{}), Base: api1.URL, Header: http.Header{"Authorization": {"Bearer k"}}}
	for _, u := range []string{"/x", other.URL + "/signed?X-Amz-Signature=s"} {
		if _, err := api.Send(context.Background(), &uploader.Request{Method: "PUT", URL: u}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := seen.Load(strings.TrimPrefix(api1.URL, "http://"))
	o, _ := seen.Load(strings.TrimPrefix(other.URL, "http://"))
	if a != "Bearer k" || o != "" {
		t.Fatalf("Authorization to the API %q, to the other host %q", a, o)
	}
}

func TestCheckpointHelper(t *testing.T) {
	type cp struct {
		Step string `json:"step"`
		ID   int64  `json:"id"`
	}
	var saved []byte
	job := &uploader.Job{Save: func(_ context.Context, b []byte) error { saved = b; return nil }}
	if got, ok := uploader.LoadCheckpoint[cp](job); ok || got != (cp{}) {
		t.Fatalf("no checkpoint loaded as %+v, %v", got, ok)
	}
	if err := uploader.StoreCheckpoint(context.Background(), job, cp{Step: "created", ID: 7}); err != nil {
		t.Fatal(err)
	}
	job.Checkpoint = saved
	if got, ok := uploader.LoadCheckpoint[cp](job); !ok || got != (cp{"created", 7}) {
		t.Fatalf("round trip: %+v, %v", got, ok)
	}
	job.Checkpoint = []byte("{not json")
	if got, ok := uploader.LoadCheckpoint[cp](job); ok || got != (cp{}) {
		t.Fatalf("unreadable checkpoint loaded as %+v, %v", got, ok)
	}
}

func TestComputeDigests(t *testing.T) {
	content := pattern(700_001)
	f := openTemp(t, content)
	got, err := uploader.ComputeDigests(context.Background(), f, []uploader.Digest{uploader.MD5, uploader.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	m, s := md5.Sum(content), sha256.Sum256(content)
	if got[uploader.MD5] != hex.EncodeToString(m[:]) || got[uploader.SHA256] != hex.EncodeToString(s[:]) {
		t.Fatalf("digests %v", got)
	}
	if _, err := uploader.ComputeDigests(context.Background(), f, []uploader.Digest{"crc7"}); err == nil {
		t.Fatal("an unknown digest was accepted")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func TestJSONErrorText(t *testing.T) {
	keys := []string{"errors", "error", "detail", "message"}
	cases := map[string]string{
		`{"errors":{"name":["can't be blank"],"origin_url":["is invalid","must be https"]}}`:     "name: can't be blank; origin_url: is invalid, must be https",
		`{"errors":{"video":{"name":["can't be blank"]}}}`:                                       "video.name: can't be blank",
		`{"errors":["quota exceeded"]}`:                                                          "quota exceeded",
		`{"error":"Invalid API key."}`:                                                           "Invalid API key.",
		`{"detail":"Authentication credentials were not provided."}`:                             "Authentication credentials were not provided.",
		`{"error":{"code":"AuthException","message":"missing authorization data","status":401}}`: "code: AuthException; message: missing authorization data; status: 401",
		`{"errors":[],"message":"fallback"}`:                                                     "fallback",
		"<html>502 Bad Gateway</html>":                                                           "",
		"":                                                                                       "",
	}
	for body, want := range cases {
		if got := uploader.JSONErrorText([]byte(body), keys...); got != want {
			t.Errorf("JSONErrorText(%s) = %q, want %q", body, got, want)
		}
	}
}

func TestReadS3Error(t *testing.T) {
	cases := []struct {
		status int
		body   string
		class  uploader.Class
		says   string
	}{
		{403, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><RequestId>R1</RequestId></Error>`, uploader.Permanent, "(SignatureDoesNotMatch): The request signature"},
		{400, `<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was not read from or written to within the timeout period.</Message></Error>`, uploader.Transient, "RequestTimeout"},
		{411, `<Error><Code>MissingContentLength</Code><Message>You must provide the Content-Length HTTP header.</Message></Error>`, uploader.Permanent, "Content-Length"},
		{503, `<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>`, uploader.Transient, "SlowDown"},
		{502, `<html>bad gateway</html>`, uploader.Transient, "bad gateway"},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(c.status)
			io.WriteString(w, c.body)
		}))
		_, err := newClient(t, uploader.ClientOptions{}).Send(context.Background(), &uploader.Request{Method: "PUT", URL: srv.URL + "/b/k?X-Amz-Signature=abc", Errors: uploader.ReadS3Error})
		srv.Close()
		if cl, _ := uploader.Classify(err); cl != c.class || !strings.Contains(fmt.Sprint(err), c.says) || strings.Contains(fmt.Sprint(err), "abc") {
			t.Errorf("%d %s: %v classed %v, want %v saying %q", c.status, c.body, err, cl, c.class, c.says)
		}
	}
}

// Answers read through Send give their connection back: twenty calls, one connection.
func TestSendReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodHead {
			w.Header().Set("Upload-Offset", "5")
			return
		}
		fmt.Fprint(w, `{"n":1}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, uploader.ClientOptions{})
	f := openTemp(t, pattern(4096))
	for i := range 20 {
		r := &uploader.Request{Method: http.MethodPatch, URL: srv.URL, Body: uploader.NewFileBody(f, 0, f.Size)}
		switch i % 3 {
		case 1:
			r = &uploader.Request{Method: http.MethodHead, URL: srv.URL}
		case 2:
			var out struct{ N int }
			r = &uploader.Request{URL: srv.URL, Out: &out}
		}
		if _, err := c.Send(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 20 sequential requests, want 1", n)
	}
}

type testOptions struct {
	Key  string `yaml:"key"`
	Wait int    `yaml:"wait"`
}

func (o testOptions) Validate() []uploader.FieldError {
	if o.Wait < 0 {
		return []uploader.FieldError{{Key: "wait", Msg: "must not be negative"}, {Key: "key", Msg: "required"}}
	}
	return nil
}

func TestNewType(t *testing.T) {
	var got testOptions
	typ := uploader.NewType("demo", "https://api.example.com", func() testOptions { return testOptions{Wait: 5} },
		func(env uploader.Env, o testOptions) (uploader.Provider, error) {
			if err := uploader.OptionsError("demo", o.Validate()); err != nil {
				return nil, err
			}
			if _, err := env.EndpointURL("demo", "https://api.example.com"); err != nil {
				return nil, err
			}
			got = o
			return nil, nil
		})
	opts := typ.NewOptions().(*testOptions)
	if opts.Wait != 5 || typ.Name != "demo" || typ.DefaultEndpoint != "https://api.example.com" {
		t.Fatalf("type %+v, options %+v", typ, opts)
	}
	opts.Key = "k"
	if _, err := typ.New(uploader.Env{Client: newClient(t, uploader.ClientOptions{})}, opts); err != nil || got.Key != "k" {
		t.Fatalf("New: %v, options %+v", err, got)
	}
	if _, err := typ.New(uploader.Env{}, &struct{}{}); err == nil || !strings.Contains(err.Error(), "want *uploader_test.testOptions") {
		t.Fatalf("wrong options type: %v", err)
	}
	opts.Wait = -1
	if _, err := typ.New(uploader.Env{}, opts); err == nil || err.Error() != "demo: wait: must not be negative; key: required" {
		t.Fatalf("invalid options: %v", err)
	}
	c := newClient(t, uploader.ClientOptions{})
	for env, want := range map[uploader.Env]string{
		{}:                                     "demo: no HTTP client",
		{Client: c, Endpoint: "ftp://u:pw@x/"}: `demo: endpoint "ftp://REDACTED@x/" is not an http(s) URL`,
	} {
		if _, err := env.EndpointURL("demo", ""); err == nil || err.Error() != want {
			t.Errorf("EndpointURL(%+v): %v, want %s", env.Endpoint, err, want)
		}
	}
	if _, err := (uploader.Env{Client: c}).EndpointURL("demo", ""); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("no endpoint and no default: %v", err)
	}
}
