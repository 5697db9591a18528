package redgifstest_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/redgifs/redgifstest"
)

const token = "user-token-with-upload-scope"

func start(t *testing.T, opts redgifstest.Options) *redgifstest.Server {
	t.Helper()
	if opts.S3 == nil {
		opts.S3 = redgifstest.StartS3(t)
	}
	opts.Token = token
	s, err := redgifstest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// call makes one API request and decodes the JSON answer.
func call(t *testing.T, s *redgifstest.Server, method, path, ctype, body string, auth string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, out
}

func bearer() string { return "Bearer " + token }

func md5Of(b []byte) string {
	h := md5.Sum(b)
	return hex.EncodeToString(h[:])
}

func put(t *testing.T, rawURL string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "video/mp4")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func errorObject(t *testing.T, out map[string]any) map[string]any {
	t.Helper()
	e, ok := out["error"].(map[string]any)
	if !ok {
		t.Fatalf("error answer without an error object: %v", out)
	}
	return e
}

// The whole flow with both body forms of the ticket request: ticket, PUT through the relay
// into S3, status pending then ready (with a fast poll flagged), submit, gif encoding.
func TestFlow(t *testing.T) {
	s := start(t, redgifstest.Options{ReadyAfter: 1500 * time.Millisecond, EncodeAfter: 1200 * time.Millisecond})
	file := bytes.Repeat([]byte("frame "), 1000)
	sum := md5Of(file)

	for _, form := range []struct{ ctype, body string }{
		{"application/x-www-form-urlencoded", "md5=" + sum},
		{"application/json", `{"md5":"` + sum + `"}`},
	} {
		code, tk := call(t, s, "POST", "/v2/upload", form.ctype, form.body, bearer())
		if code != 200 || tk["method"] != "PUT" || tk["status"] != "waiting" || tk["url"] == nil {
			t.Fatalf("ticket answer %d %v", code, tk)
		}
	}
	c := s.Counters()
	if c.TicketsCreated != 1 || c.URLsIssued != 2 {
		t.Fatalf("asking twice for one md5 made %d tickets and %d URLs, want 1 and 2", c.TicketsCreated, c.URLsIssued)
	}
	_, tk := call(t, s, "POST", "/v2/upload", "application/json", `{"md5":"`+sum+`"}`, bearer())
	id := tk["id"].(string)
	u := tk["url"].(string)
	if !strings.HasPrefix(u, "http://"+s.UploadListener.Addr().String()+"/") {
		t.Fatalf("signed URL %q does not point at the relay", u)
	}

	if _, st := call(t, s, "GET", "/v2/upload/"+id+"/status", "", "", bearer()); st["status"] != "waiting" {
		t.Fatalf("status before the PUT: %v", st)
	}
	if code, body := put(t, u, file, nil); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, st := call(t, s, "GET", "/v2/upload/"+id+"/status", "", "", bearer()); st["status"] != "pending" {
		t.Fatalf("status right after the PUT: %v", st)
	}
	// Submitting before ready is refused.
	sub := `{"ticket":"` + id + `","keepAudio":true,"private":false,"tags":["cats"]}`
	if code, out := call(t, s, "POST", "/v2/gifs/submit", "application/json", sub, bearer()); code != http.StatusConflict {
		t.Fatalf("submit of a pending ticket: %d %v", code, out)
	}
	call(t, s, "GET", "/v2/upload/"+id+"/status", "", "", bearer()) // too soon: flagged
	if got := s.Counters().FastPolls; got != 1 {
		t.Fatalf("FastPolls %d after one poll within 1s, want 1", got)
	}
	time.Sleep(1600 * time.Millisecond)
	if _, st := call(t, s, "GET", "/v2/upload/"+id+"/status", "", "", bearer()); st["status"] != "ready" {
		t.Fatalf("status after ReadyAfter: %v", st)
	}
	code, g := call(t, s, "POST", "/v2/gifs/submit", "application/json", sub, bearer())
	if code != 200 || g["id"] == "" {
		t.Fatalf("submit: %d %v", code, g)
	}
	gid := g["id"].(string)
	if _, st := call(t, s, "GET", "/v1/gifs/fetch/status/"+gid, "", "", bearer()); st["task"] != "encoding" {
		t.Fatalf("gif status at once: %v", st)
	}
	time.Sleep(1300 * time.Millisecond)
	if _, st := call(t, s, "GET", "/v1/gifs/fetch/status/"+gid, "", "", bearer()); st["task"] != "complete" {
		t.Fatalf("gif status after EncodeAfter: %v", st)
	}
	gif, ok := s.Gif(gid)
	if !ok || gif.Ticket != id || !gif.KeepAudio || gif.Private || len(gif.Tags) != 1 {
		t.Fatalf("gif %+v", gif)
	}
	rc, err := s.Stored(uploader.Result{ID: gid})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, file) {
		t.Fatal("the stored object differs from what was PUT")
	}
	if tkt, _ := s.Ticket(id); tkt.ContentType != "video/mp4" || tkt.Size != int64(len(file)) {
		t.Fatalf("ticket %+v", tkt)
	}
	if c := s.Counters(); c.Puts != 1 || c.PutsOK != 1 || c.PutBytes != int64(len(file)) || c.GifsCreated != 1 {
		t.Fatalf("counters %+v", c)
	}
	waitRecords(t, s, 1)
	puts := s.UploadRequests()
	if len(puts) != 1 {
		t.Fatalf("%d requests recorded at the relay, want 1", len(puts))
	}
	if r := puts[0]; r.Method != "PUT" || r.Status != 200 || r.Header.Get("Content-Type") != "video/mp4" || r.BodyBytes != int64(len(file)) {
		t.Errorf("recorded PUT %+v", r)
	}
	for _, r := range s.APIRequests() {
		if r.Header.Get("Authorization") != bearer() {
			t.Errorf("API request %s %s recorded without its token", r.Method, r.Path)
		}
	}
}

// waitRecords waits until the relay has recorded n requests: a record is written once the
// handler has returned, which may be just after the client has its answer.
func waitRecords(t *testing.T, s *redgifstest.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); len(s.UploadRequests()) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the relay recorded %d requests, want %d", len(s.UploadRequests()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A file whose md5 is known needs no PUT: method and url null, in both answer shapes, and
// status ready in the 2023 one (with the URL kept when ReadyWithURL).
func TestKnownMD5(t *testing.T) {
	s3 := redgifstest.StartS3(t)
	sum := md5Of([]byte("known file"))
	for _, tc := range []struct {
		name    string
		opts    redgifstest.Options
		wantURL bool
	}{
		{"2023", redgifstest.Options{S3: s3}, false},
		{"2022", redgifstest.Options{S3: s3, Shape: redgifstest.Shape2022}, false},
		{"2023 with URL", redgifstest.Options{S3: s3, ReadyWithURL: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			known := s.KnowMD5(sum)
			code, tk := call(t, s, "POST", "/v2/upload", "application/x-www-form-urlencoded", "md5="+strings.ToUpper(sum), bearer())
			if code != 200 || tk["id"] != known {
				t.Fatalf("answer %d %v, want ticket %s", code, tk, known)
			}
			if (tk["url"] != nil) != tc.wantURL {
				t.Fatalf("url in the answer: %v", tk)
			}
			st, has := tk["status"]
			switch {
			case tc.opts.Shape == redgifstest.Shape2022 && has:
				t.Fatalf("2022 shape has a status: %v", tk)
			case tc.opts.Shape == redgifstest.Shape2023 && st != "ready":
				t.Fatalf("2023 shape status %v, want ready", st)
			}
			if _, ok := tk["method"]; !ok {
				t.Fatalf("method missing (it is null, not absent): %v", tk)
			}
			sub := `{"ticket":"` + known + `","keepAudio":false,"private":true,"tags":["a","b"],"description":"d","niches":["n"]}`
			if code, out := call(t, s, "POST", "/v2/gifs/submit", "application/json", sub, bearer()); code != 200 {
				t.Fatalf("submit of a known ticket: %d %v", code, out)
			}
			if c := s.Counters(); c.KnownAnswers != 1 || c.TicketsCreated != 0 {
				t.Fatalf("counters %+v", c)
			}
		})
	}
}

// Missing and wrong tokens get 401 with RedGIFs' error objects, whose inner keys differ.
func TestAuth(t *testing.T) {
	s := start(t, redgifstest.Options{})
	code, out := call(t, s, "POST", "/v2/upload", "", "", "")
	if e := errorObject(t, out); code != 401 || e["code"] != "AuthorizationHeaderMissing" || e["description"] == nil {
		t.Fatalf("no token: %d %v", code, out)
	}
	code, out = call(t, s, "GET", "/v2/upload/x/status", "", "", "Bearer expired-token")
	if e := errorObject(t, out); code != 401 || e["code"] != "AuthException" || e["message"] == nil || e["status"] != float64(401) {
		t.Fatalf("wrong token: %d %v", code, out)
	}
	code, out = call(t, s, "POST", "/v2/upload", "", "", "Basic "+token)
	if code != 401 {
		t.Fatalf("the token with another scheme: %d %v", code, out)
	}
	if got := s.Counters().Unauthorized; got != 3 {
		t.Fatalf("Unauthorized %d, want 3", got)
	}
}

// Bad ticket and submit requests are refused as the real API would.
func TestRefusals(t *testing.T) {
	s := start(t, redgifstest.Options{})
	sum := md5Of([]byte("x"))
	for _, tc := range []struct{ name, method, path, ctype, body string }{
		{"md5 not hex", "POST", "/v2/upload", "application/json", `{"md5":"nothex"}`},
		{"md5 not a string", "POST", "/v2/upload", "application/json", `{"md5":12}`},
		{"bad JSON", "POST", "/v2/upload", "application/json", `{"md5":`},
		{"text body", "POST", "/v2/upload", "text/plain", `md5=` + sum},
		{"submit as a form", "POST", "/v2/gifs/submit", "application/x-www-form-urlencoded", "ticket=x"},
		{"submit unknown field", "POST", "/v2/gifs/submit", "application/json", `{"ticket":"x","keepAudio":true,"private":false,"tags":[],"title":"t"}`},
		{"submit without tags", "POST", "/v2/gifs/submit", "application/json", `{"ticket":"x","keepAudio":true,"private":false}`},
		{"submit tags not a list", "POST", "/v2/gifs/submit", "application/json", `{"ticket":"x","keepAudio":true,"private":false,"tags":"a,b"}`},
		{"submit keepAudio a string", "POST", "/v2/gifs/submit", "application/json", `{"ticket":"x","keepAudio":"yes","private":false,"tags":[]}`},
		{"submit empty tag", "POST", "/v2/gifs/submit", "application/json", `{"ticket":"x","keepAudio":true,"private":false,"tags":[" "]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := call(t, s, tc.method, tc.path, tc.ctype, tc.body, bearer())
			if code != 400 {
				t.Fatalf("%d %v, want 400", code, out)
			}
			errorObject(t, out)
		})
	}
	code, out := call(t, s, "POST", "/v2/gifs/submit", "application/json", `{"ticket":"nope","keepAudio":true,"private":false,"tags":[]}`, bearer())
	if code != 404 {
		t.Fatalf("submit of an unknown ticket: %d %v", code, out)
	}
	if code, _ := call(t, s, "GET", "/v2/upload/nope/status", "", "", bearer()); code != 404 {
		t.Fatalf("status of an unknown ticket: %d", code)
	}
	if code, _ := call(t, s, "GET", "/v1/gifs/fetch/status/nope", "", "", bearer()); code != 404 {
		t.Fatalf("status of an unknown gif: %d", code)
	}
	// An empty body is a ticket without md5: a new one every time.
	call(t, s, "POST", "/v2/upload", "", "", bearer())
	call(t, s, "POST", "/v2/upload", "", "", bearer())
	if got := s.Counters().TicketsCreated; got != 2 {
		t.Fatalf("two tickets without md5 made %d", got)
	}
}

// The relay refuses what S3 refuses: chunked bodies, an Authorization header beside the
// query signature; the bucket refuses expired and altered signatures.
func TestSignedURLStrictness(t *testing.T) {
	s := start(t, redgifstest.Options{})
	file := []byte("some video bytes")
	sum := md5Of(file)
	ask := func() (string, string) {
		_, tk := call(t, s, "POST", "/v2/upload", "application/json", `{"md5":"`+sum+`"}`, bearer())
		return tk["id"].(string), tk["url"].(string)
	}
	_, u := ask()

	req, _ := http.NewRequest(http.MethodPut, u, io.MultiReader(bytes.NewReader(file))) // unknown length: chunked
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusLengthRequired || !strings.Contains(string(b), "MissingContentLength") {
		t.Fatalf("chunked PUT: %d %s", resp.StatusCode, b)
	}
	if code, body := put(t, u, file, map[string]string{"Authorization": bearer()}); code != 400 {
		t.Fatalf("PUT with Authorization: %d %s", code, body)
	}
	pu, _ := url.Parse(u)
	q := pu.Query()
	sig := q.Get("X-Amz-Signature")
	q.Set("X-Amz-Signature", strings.Repeat("0", len(sig)))
	pu.RawQuery = q.Encode()
	if code, body := put(t, pu.String(), file, nil); code != 403 {
		t.Fatalf("PUT with an altered signature: %d %s", code, body)
	}
	s.ExpireNextURLs(1)
	_, expired := ask()
	if code, body := put(t, expired, file, nil); code != 403 {
		t.Fatalf("PUT to an expired URL: %d %s", code, body)
	}
	id, u := ask()
	if code, body := put(t, u, file, nil); code != 200 {
		t.Fatalf("PUT to a fresh URL: %d %s", code, body)
	}
	if _, st := call(t, s, "GET", "/v2/upload/"+id+"/status", "", "", bearer()); st["status"] != "ready" {
		t.Fatalf("status: %v", st)
	}
	if c := s.Counters(); c.Puts != 5 || c.PutsOK != 1 || c.TicketsCreated != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// A file that is not what the md5 said fails the ticket; FailTickets fails it with the
// platform's words; FailEncoding ends the gif in error, under the key asked for.
func TestFailures(t *testing.T) {
	s := start(t, redgifstest.Options{GifStatusKey: "status"})
	_, tk := call(t, s, "POST", "/v2/upload", "application/json", `{"md5":"`+md5Of([]byte("said"))+`"}`, bearer())
	put(t, tk["url"].(string), []byte("sent"), nil)
	_, st := call(t, s, "GET", "/v2/upload/"+tk["id"].(string)+"/status", "", "", bearer())
	if st["status"] != "failed" || !strings.Contains(fmt.Sprint(st["error"]), "md5") {
		t.Fatalf("md5 mismatch: %v", st)
	}

	s.FailTickets("Video too short")
	file := []byte("short")
	_, tk = call(t, s, "POST", "/v2/upload", "application/json", `{"md5":"`+md5Of(file)+`"}`, bearer())
	put(t, tk["url"].(string), file, nil)
	_, st = call(t, s, "GET", "/v2/upload/"+tk["id"].(string)+"/status", "", "", bearer())
	if st["status"] != "failed" || st["error"] != "Video too short" {
		t.Fatalf("FailTickets: %v", st)
	}
	// A failed ticket is dead: the same md5 gets a new one.
	s.FailTickets("")
	_, tk2 := call(t, s, "POST", "/v2/upload", "application/json", `{"md5":"`+md5Of(file)+`"}`, bearer())
	if tk2["id"] == tk["id"] || tk2["url"] == nil {
		t.Fatalf("md5 of a failed ticket answered %v", tk2)
	}
	put(t, tk2["url"].(string), file, nil)
	call(t, s, "GET", "/v2/upload/"+tk2["id"].(string)+"/status", "", "", bearer())

	s.FailEncoding("corrupt stream")
	_, g := call(t, s, "POST", "/v2/gifs/submit", "application/json", `{"ticket":"`+tk2["id"].(string)+`","keepAudio":true,"private":false,"tags":[]}`, bearer())
	_, gs := call(t, s, "GET", "/v1/gifs/fetch/status/"+g["id"].(string), "", "", bearer())
	if gs["status"] != "error" || gs["task"] != nil {
		t.Fatalf("FailEncoding with key status: %v", gs)
	}
}

// FailNext answers with the status and Retry-After asked; RateLimitNext answers 429 with the
// delay only in the body; Stall holds requests until released or the client leaves.
func TestFaultKnobs(t *testing.T) {
	s := start(t, redgifstest.Options{})
	s.FailNext(1, 503, 3*time.Second)
	req, _ := http.NewRequest("POST", s.URL+"/v2/upload", nil)
	req.Header.Set("Authorization", bearer())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("FailNext: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	s.RateLimitNext(1, 7)
	req, _ = http.NewRequest("POST", s.URL+"/v2/upload", nil)
	req.Header.Set("Authorization", bearer())
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if e := errorObject(t, out); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" || e["delay"] != float64(7) {
		t.Fatalf("RateLimitNext: %d %v Retry-After %q", resp.StatusCode, out, resp.Header.Get("Retry-After"))
	}
	if c := s.Counters(); c.RateLimited != 1 {
		t.Fatalf("counters %+v", c)
	}

	s.Stall(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "POST", s.URL+"/v2/upload", nil)
	req.Header.Set("Authorization", bearer())
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a stalled server answered")
	}
	s.Stall(false)
	if code, _ := call(t, s, "POST", "/v2/upload", "", "", bearer()); code != 200 {
		t.Fatalf("after the stall: %d", code)
	}
}

// HoldNextPutAnswer keeps the accepted PUT's 200 from the client and stalls the API until
// Stall(false); StallAfterPut lets the 200 through and stalls the API; FailNextPut refuses a
// PUT without passing it on.
func TestPutKnobs(t *testing.T) {
	s := start(t, redgifstest.Options{})
	file := []byte("held video")
	_, tk := call(t, s, "POST", "/v2/upload", "application/json", `{"md5":"`+md5Of(file)+`"}`, bearer())
	u := tk["url"].(string)
	apiStalled := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/v2/upload", nil)
		req.Header.Set("Authorization", bearer())
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	}

	s.FailNextPut(1, 503)
	if code, _ := put(t, u, file, nil); code != 503 {
		t.Fatalf("FailNextPut: %d", code)
	}
	if c := s.Counters(); c.Puts != 1 || c.PutsOK != 0 {
		t.Fatalf("counters %+v", c)
	}

	s.HoldNextPutAnswer()
	done := make(chan int, 1)
	go func() { code, _ := put(t, u, file, nil); done <- code }()
	for deadline := time.Now().Add(5 * time.Second); s.Counters().PutsOK != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the PUT never reached the bucket")
		}
	}
	select {
	case code := <-done:
		t.Fatalf("the held answer (%d) reached the client", code)
	case <-time.After(200 * time.Millisecond):
	}
	if !apiStalled() {
		t.Fatal("the API answered while the PUT's answer was held")
	}
	s.Stall(false)
	if code := <-done; code != 200 {
		t.Fatalf("the released answer: %d", code)
	}

	s.StallAfterPut()
	if code, _ := put(t, u, file, nil); code != 200 {
		t.Fatalf("PUT with StallAfterPut: %d", code)
	}
	if !apiStalled() {
		t.Fatal("the API answered after StallAfterPut's PUT")
	}
	s.Stall(false)
	if apiStalled() {
		t.Fatal("the API is still stalled after Stall(false)")
	}
}
