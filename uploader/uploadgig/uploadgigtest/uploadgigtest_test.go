package uploadgigtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadgig/uploadgigtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const user, pass = "me@example.com", "p4ss-w0rd"

func start(t *testing.T, opts uploadgigtest.Options) *uploadgigtest.Server {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.User, opts.Pass = user, pass
	s, err := uploadgigtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// loginAnswer is get_upload_action's answer, with code and cmbs kept raw.
type loginAnswer struct {
	Code   json.RawMessage `json:"code"`
	Result json.RawMessage `json:"result"`
}

func login(t *testing.T, s *uploadgigtest.Server, u, p string) loginAnswer {
	t.Helper()
	resp, err := http.PostForm(s.URL+"/api/get_upload_action", url.Values{"user": {u}, "pass": {p}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login: %s", resp.Status)
	}
	var a loginAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

// action logs in and returns the action URL and cmbs as sent.
func action(t *testing.T, s *uploadgigtest.Server) (string, string) {
	t.Helper()
	a := login(t, s, user, pass)
	if string(a.Code) != `"1"` {
		t.Fatalf("login answered code %s: %s", a.Code, a.Result)
	}
	var r struct {
		Action string          `json:"action"`
		Cmbs   json.RawMessage `json:"cmbs"`
	}
	if err := json.Unmarshal(a.Result, &r); err != nil {
		t.Fatal(err)
	}
	return r.Action, string(r.Cmbs)
}

type uploadAnswer struct {
	OK       bool   `json:"ok"`
	Message  string `json:"message"`
	URL      string `json:"url"`
	ID       string `json:"id"`
	FileName string `json:"file_name"`
	Size     int64  `json:"size"`
}

func post(t *testing.T, actionURL string, header map[string]string, body []byte) uploadAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, actionURL, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = []string{v}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a map[string]uploadAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	got, ok := a["0"]
	if !ok {
		t.Fatalf("answer not keyed \"0\": %v", a)
	}
	return got
}

func TestLoginCodes(t *testing.T) {
	s := start(t, uploadgigtest.Options{QuotaMB: 100})
	if a := login(t, s, user, "wrong"); string(a.Code) != `"0"` || string(a.Result) != `"Email or password was incorrect!"` {
		t.Errorf("bad password: code %s result %s", a.Code, a.Result)
	}
	if a := login(t, s, "", ""); string(a.Code) != `"0"` {
		t.Errorf("no credentials: code %s", a.Code)
	}
	act, cmbs := action(t, s)
	if !strings.HasPrefix(act, "http://"+s.UploadListener.Addr().String()+"/upload?identity=") {
		t.Errorf("action %q is not on the upload host", act)
	}
	if cmbs != "100" {
		t.Errorf("cmbs %s, want 100 (a number)", cmbs)
	}
	// Credentials in the query string are not a login.
	resp, err := http.Post(s.URL+"/api/get_upload_action?user="+url.QueryEscape(user)+"&pass="+pass, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	var a loginAnswer
	json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if string(a.Code) != `"0"` {
		t.Errorf("credentials in the query: code %s", a.Code)
	}
}

func TestCodeAsNumberCmbsAsString(t *testing.T) {
	s := start(t, uploadgigtest.Options{CodeAsNumber: true, CmbsAsString: true, QuotaMB: 7})
	a := login(t, s, user, pass)
	if string(a.Code) != "1" || !strings.Contains(string(a.Result), `"cmbs":"7"`) {
		t.Errorf("code %s result %s", a.Code, a.Result)
	}
}

func TestRateLimitAfterTooManyLogins(t *testing.T) {
	s := start(t, uploadgigtest.Options{LoginsPerMinute: 3, Lockout: 200 * time.Millisecond})
	for range 3 {
		action(t, s)
	}
	a := login(t, s, user, pass)
	if string(a.Code) != `"-3"` || !strings.Contains(string(a.Result), "can't login a few minutes") {
		t.Fatalf("4th login in a minute: code %s %s", a.Code, a.Result)
	}
	// Locked out, even with good credentials, until Lockout has passed; then still over the
	// limit (every call counts), so locked again.
	if a := login(t, s, user, pass); string(a.Code) != `"-3"` {
		t.Errorf("during the lockout: code %s", a.Code)
	}
	if c := s.Counters(); c.RateLimited != 2 || c.Logins != 5 {
		t.Errorf("counters %+v", c)
	}
}

func TestRateLimitNext(t *testing.T) {
	s := start(t, uploadgigtest.Options{})
	s.RateLimitNext(1)
	if a := login(t, s, user, pass); string(a.Code) != `"-3"` {
		t.Errorf("code %s", a.Code)
	}
	action(t, s) // and not locked after it
	if n := len(s.LoginRequests()); n != 2 {
		t.Errorf("%d logins recorded", n)
	}
}

func TestOverlappingLoginsCounted(t *testing.T) {
	s := start(t, uploadgigtest.Options{LoginDelay: 100 * time.Millisecond, LoginsPerMinute: 100})
	action(t, s)
	action(t, s)
	if c := s.Counters(); c.OverlappingLogins != 0 {
		t.Fatalf("one at a time counted as overlapping: %+v", c)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { action(t, s) })
	}
	wg.Wait()
	if c := s.Counters(); c.OverlappingLogins < 1 {
		t.Errorf("3 logins at once, none counted overlapping: %+v", c)
	}
}

func TestUploadStoresExactName(t *testing.T) {
	s := start(t, uploadgigtest.Options{})
	for _, tc := range []struct{ slug, name string }{
		{"clip one.mp4", "clip one.mp4"},
		{"%2541.mp4", "%41.mp4"},
		{"%41.mp4", "A.mp4"},
		{"-dash \"q\" 'x'.mp4", "-dash \"q\" 'x'.mp4"},
		{"%C3%BCn%C3%AF.mp4", "ünï.mp4"},
	} {
		act, _ := action(t, s)
		body := []byte("content of " + tc.name)
		a := post(t, act, map[string]string{"Slug": tc.slug}, body)
		if !a.OK || a.FileName != tc.name || a.Size != int64(len(body)) || len(a.ID) != 16 || a.Message != uploadgigtest.MsgUploaded {
			t.Errorf("Slug %q: answer %+v, want stored as %q", tc.slug, a, tc.name)
			continue
		}
		if !strings.HasSuffix(a.URL, "/file/download/"+a.ID+"/"+url.PathEscape(tc.name)) {
			t.Errorf("url %q", a.URL)
		}
		rc, err := s.Stored(uploader.Result{ID: a.ID})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) {
			t.Errorf("stored %q", got)
		}
		resp, err := http.Get(a.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", a.URL, resp.Status)
		}
	}
	if c := s.Counters(); c.Uploads != 5 {
		t.Errorf("counters %+v", c)
	}
}

func TestUploadRefusals(t *testing.T) {
	s := start(t, uploadgigtest.Options{QuotaMB: 1, ActionTTL: time.Hour})
	ok := map[string]string{"Slug": "a.mp4"}
	cases := []struct {
		name   string
		header map[string]string
		body   []byte
		want   string
	}{
		{"no Slug", nil, []byte("x"), uploadgigtest.MsgNoFileName},
		{"raw non-ASCII Slug", map[string]string{"Slug": "ünï.mp4"}, []byte("x"), uploadgigtest.MsgBadFileName},
		{"bad escape", map[string]string{"Slug": "100%.mp4"}, []byte("x"), uploadgigtest.MsgBadFileName},
		{"a slash", map[string]string{"Slug": "a%2Fb.mp4"}, []byte("x"), uploadgigtest.MsgBadFileName},
		{"over quota", ok, make([]byte, uploadgigtest.MiB+1), uploadgigtest.MsgStorageFull},
	}
	for _, tc := range cases {
		act, _ := action(t, s)
		if a := post(t, act, tc.header, tc.body); a.OK || a.Message != tc.want {
			t.Errorf("%s: answer %+v, want %q", tc.name, a, tc.want)
		}
	}
	// Identities: unknown, reused, expired.
	act, _ := action(t, s)
	u, _ := url.Parse(act)
	u.RawQuery = "identity=nope"
	if a := post(t, u.String(), ok, []byte("x")); a.Message != uploadgigtest.MsgInvalidIdentity {
		t.Errorf("unknown identity: %+v", a)
	}
	if a := post(t, act, ok, []byte("x")); !a.OK {
		t.Fatalf("good upload: %+v", a)
	}
	if a := post(t, act, ok, []byte("x")); a.Message != uploadgigtest.MsgInvalidIdentity {
		t.Errorf("reused identity: %+v", a)
	}
	act, _ = action(t, s)
	s.ExpireActions()
	if a := post(t, act, ok, []byte("x")); a.Message != uploadgigtest.MsgInvalidIdentity {
		t.Errorf("expired identity: %+v", a)
	}
	// cmbs is what is left, rounded down: 1 MiB minus one byte stored is 0.
	if _, cmbs := action(t, s); cmbs != "0" {
		t.Errorf("cmbs %s after 1 byte of 1 MB, want 0", cmbs)
	}
	if c := s.Counters(); c.Uploads != 1 || c.IdentityRefusals != 3 || c.Refusals != 5 {
		t.Errorf("counters %+v", c)
	}
}

func TestCutUploadStoresNothing(t *testing.T) {
	s := start(t, uploadgigtest.Options{})
	act, _ := action(t, s)
	s.UploadListener.CutAfter(100 << 10)
	req, _ := http.NewRequest(http.MethodPost, act, bytes.NewReader(make([]byte, 4<<20)))
	req.Header.Set("Slug", "cut.mp4")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a cut upload was answered %s", resp.Status)
	}
	waitFor(t, func() bool { return len(s.UploadRequests()) == 1 })
	if r := s.UploadRequests()[0]; r.BodyBytes == 0 || r.BodyBytes >= 4<<20 || r.Status != 0 {
		t.Errorf("the cut request is recorded as %+v", r)
	}
	if c := s.Counters(); c.Uploads != 0 || len(s.Files()) != 0 {
		t.Errorf("a cut upload was stored: %+v", c)
	}
}

func TestFaultsAndHold(t *testing.T) {
	s := start(t, uploadgigtest.Options{})
	s.FailNext(1, 503, 2*time.Second)
	resp, err := http.PostForm(s.URL+"/api/get_upload_action", url.Values{"user": {user}, "pass": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("fault: %s Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	act, _ := action(t, s)
	s.FailUploads(1, 502)
	req, _ := http.NewRequest(http.MethodPost, act, strings.NewReader("x"))
	req.Header.Set("Slug", "a")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("upload fault: %s", resp.Status)
	}

	// Held: the answer arrives, the response does not end until released.
	s.HoldAfterAnswer(true)
	act, _ = action(t, s)
	req, _ = http.NewRequest(http.MethodPost, act, strings.NewReader("held"))
	req.Header.Set("Slug", "held.mp4")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]uploadAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || !a["0"].OK {
		t.Fatalf("held answer: %v %v", a, err)
	}
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close(); close(ended) }()
	select {
	case <-ended:
		t.Fatal("the held answer ended before its release")
	case <-time.After(100 * time.Millisecond):
	}
	s.HoldAfterAnswer(false)
	<-ended
	ups := s.UploadRequests()
	if len(ups) != 2 || ups[0].Status != 502 || ups[1].Header.Get("Slug") != "held.mp4" || ups[1].BodyBytes != 4 || ups[1].Status != 200 {
		t.Errorf("upload records %+v", ups)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A chunked body (no Content-Length) is accepted, and refused at its end when it turned out
// too large for the space left; nothing of it is kept.
func TestChunkedBody(t *testing.T) {
	s := start(t, uploadgigtest.Options{QuotaMB: 1})
	for _, tc := range []struct {
		size int
		ok   bool
	}{{1000, true}, {uploadgigtest.MiB, false}} {
		act, _ := action(t, s)
		req, _ := http.NewRequest(http.MethodPost, act, io.MultiReader(bytes.NewReader(make([]byte, tc.size))))
		req.Header.Set("Slug", "chunked.mp4")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var a map[string]uploadAnswer
		json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if got := a["0"]; got.OK != tc.ok || (!tc.ok && got.Message != uploadgigtest.MsgStorageFull) {
			t.Errorf("chunked %d bytes: %+v", tc.size, got)
		}
	}
	if files := s.Files(); len(files) != 1 || files[0].Size != 1000 {
		t.Errorf("stored %+v", files)
	}
	if ups := s.UploadRequests(); len(ups) != 2 || len(ups[0].Header.Values("Content-Length")) != 0 {
		t.Errorf("records %+v", ups)
	}
}
