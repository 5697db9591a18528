package xvidtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/xvid/xvidtest"
)

const (
	clientID     = "xv-client"
	clientSecret = "xv-s3cr3t/with+chars&="
)

func start(t *testing.T, edit func(*xvidtest.Options)) *xvidtest.Server {
	t.Helper()
	o := xvidtest.Options{ClientID: clientID, ClientSecret: clientSecret}
	if edit != nil {
		edit(&o)
	}
	return xvidtest.StartTest(t, o)
}

// call sends one request and decodes a JSON answer into out (when not nil); it returns the
// status and the raw body.
func call(t *testing.T, method, u, tok, ctype string, body io.Reader, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, u, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func getToken(t *testing.T, srv *xvidtest.Server, form url.Values) (int, string, string) {
	t.Helper()
	var ans struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	code, body := call(t, "POST", srv.URL+"/v1/oauth2/token/", "", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), &ans)
	return code, ans.AccessToken, body
}

func goodForm(scope string) url.Values {
	return url.Values{"grant_type": {"client_credential"}, "client_id": {clientID}, "client_secret": {clientSecret}, "scope": {scope}}
}

type record struct {
	Upload struct {
		ID             string               `json:"id"`
		Status         string               `json:"status"`
		FormPostURL    string               `json:"form_post_url"`
		FormPostParams orderedParams        `json:"form_post_params"`
		File           struct{ ID string }  `json:"file"`
		Error          *xvidtest.ErrorValue `json:"error"`
	} `json:"upload"`
}

// orderedParams decodes a JSON object keeping its order.
type orderedParams [][2]string

func (p *orderedParams) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*p = append(*p, [2]string{k.(string), v})
	}
	return nil
}

func create(t *testing.T, srv *xvidtest.Server, tok, key string) record {
	t.Helper()
	var rec record
	u := srv.URL + "/v1/files/uploads/?" + url.Values{"object_key": {key}, "pipeline_id": {xvidtest.DefaultPipeline}}.Encode()
	if code, body := call(t, "POST", u, tok, "", nil, &rec); code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	return rec
}

// post sends the form as a browser would (in memory: the files here are small).
func post(t *testing.T, rec record, data []byte, edit func(w *multipart.Writer) bool) (int, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if edit == nil || !edit(mw) {
		for _, f := range rec.Upload.FormPostParams {
			mw.WriteField(f[0], f[1])
		}
	}
	fw, _ := mw.CreateFormFile("file", "clip.mp4")
	fw.Write(data)
	mw.Close()
	return call(t, "POST", rec.Upload.FormPostURL, "", mw.FormDataContentType(), &b, nil)
}

func finish(t *testing.T, srv *xvidtest.Server, tok, id string, n int) (int, string) {
	t.Helper()
	return call(t, "PUT", srv.URL+"/v1/files/uploads/"+id, tok, "application/json", strings.NewReader(fmt.Sprintf(`{"upload":{"nb_chunks":%d}}`, n)), nil)
}

func wantProblem(t *testing.T, srv *xvidtest.Server, kind string, n int) {
	t.Helper()
	if got := srv.ProblemsOf(kind); len(got) != n {
		t.Errorf("%d problems of kind %s, want %d: %v", len(got), kind, n, srv.Problems())
	}
}

// A client that does everything right gets its file into S3 and a COMPLETED record, and the
// emulator records no problem.
func TestHappyPath(t *testing.T) {
	srv := start(t, nil)
	code, tok, body := getToken(t, srv, goodForm("mediahub,mediahub_write"))
	if code != 200 || tok == "" || !strings.Contains(body, `"expires_in":"7200"`) {
		t.Fatalf("token: %d %s", code, body)
	}
	rec := create(t, srv, tok, "dir/clip.mp4")
	names := []string{}
	for _, f := range rec.Upload.FormPostParams {
		names = append(names, f[0])
	}
	if want := "name,success_action_status,filename,chunk,chunks,policy,x-amz-algorithm,x-amz-credential,x-amz-date,x-amz-signature,key,acl"; strings.Join(names, ",") != want {
		t.Errorf("form_post_params order %v, want %s", names, want)
	}
	data := make([]byte, 100<<10)
	rand.Read(data)
	if code, body := post(t, rec, data, nil); code != 201 || !strings.Contains(body, "<PostResponse>") {
		t.Fatalf("form POST: %d %s", code, body)
	}
	if un, err := srv.Unfinished(context.Background()); err != nil || len(un) != 1 {
		t.Errorf("unfinished after the POST: %v %v, want the one upload", un, err)
	}
	if code, body := finish(t, srv, tok, rec.Upload.ID, 1); code != 200 || !strings.Contains(body, `"COMPLETING"`) {
		t.Fatalf("finish: %d %s", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	var got record
	for {
		call(t, "GET", srv.URL+"/v1/files/uploads/"+rec.Upload.ID, tok, "", nil, &got)
		if got.Upload.Status != "COMPLETING" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Upload.Status != "COMPLETED" || got.Upload.Error != nil {
		t.Fatalf("status %q error %v", got.Upload.Status, got.Upload.Error)
	}
	rc, err := srv.Stored(context.Background(), uploader.Result{ID: rec.Upload.File.ID})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(stored, data) {
		t.Fatalf("S3 holds %d bytes that differ from the %d sent", len(stored), len(data))
	}
	// The download address redirects to a signed link that serves the file.
	code, body = call(t, "GET", srv.URL+"/v1/files/downloads/?file_id="+rec.Upload.File.ID+"&redirect=true", tok, "", nil, nil)
	if code != 200 || body != string(data) {
		t.Errorf("download: %d, %d bytes", code, len(body))
	}
	if un, _ := srv.Unfinished(context.Background()); len(un) != 0 {
		t.Errorf("unfinished after the finish: %v", un)
	}
	if p := srv.Problems(); len(p) != 0 {
		t.Errorf("problems recorded for a correct client: %v", p)
	}
	if c := srv.Counters(); c.FileBytes != int64(len(data)) || c.UploadsCreated != 1 || c.FormPostsStored != 1 || c.Finished != 1 {
		t.Errorf("counters %+v", c)
	}
}

// What the real service refuses, the emulator refuses and records.
func TestStrict(t *testing.T) {
	srv := start(t, func(o *xvidtest.Options) { o.ExpiresInNumber = true })
	f := goodForm("mediahub,mediahub_write")
	f.Set("grant_type", "client_credentials")
	if code, _, _ := getToken(t, srv, f); code != 400 {
		t.Errorf("grant_type client_credentials: %d, want 400", code)
	}
	wantProblem(t, srv, xvidtest.ProblemGrantType, 1)
	if code, _, _ := getToken(t, srv, goodForm("")); code != 400 {
		t.Errorf("no scope: %d, want 400", code)
	}
	wantProblem(t, srv, xvidtest.ProblemScope, 1)
	f = goodForm("mediahub")
	f.Set("client_secret", "wrong")
	if code, _, body := getToken(t, srv, f); code != 403 || strings.Contains(body, "wrong") {
		t.Errorf("wrong secret: %d %s", code, body)
	}
	code, readTok, body := getToken(t, srv, goodForm("mediahub"))
	if code != 200 || !strings.Contains(body, `"expires_in":7200`) {
		t.Fatalf("token: %d %s", code, body)
	}
	u := srv.URL + "/v1/files/uploads/?object_key=a.mp4&pipeline_id=" + xvidtest.DefaultPipeline
	if code, body := call(t, "POST", u, readTok, "", nil, nil); code != 403 || !strings.Contains(body, xvidtest.CodeScope) {
		t.Errorf("create with a read-only token: %d %s", code, body)
	}
	wantProblem(t, srv, xvidtest.ProblemWriteScope, 1)
	if code, body := call(t, "POST", u, "not-a-token", "", nil, nil); code != 403 || !strings.Contains(body, xvidtest.CodeInvalidToken) {
		t.Errorf("create with a wrong token: %d %s", code, body)
	}
	wantProblem(t, srv, xvidtest.ProblemBadToken, 1)
	_, tok, _ := getToken(t, srv, goodForm("mediahub,mediahub_write"))
	if code, _ := call(t, "POST", srv.URL+"/v1/files/uploads/?object_key=a.mp4", tok, "", nil, nil); code != 400 {
		t.Errorf("create without pipeline_id: %d, want 400", code)
	}
	if code, _ := call(t, "POST", srv.URL+"/v1/files/uploads/?object_key=a.mp4&pipeline_id=ffff", tok, "", nil, nil); code != 404 {
		t.Errorf("create with an unknown pipeline: %d, want 404", code)
	}
	rec := create(t, srv, tok, "early.mp4")
	if code, body := finish(t, srv, tok, rec.Upload.ID, 1); code != 400 {
		t.Errorf("finish before the file: %d %s", code, body)
	}
	wantProblem(t, srv, xvidtest.ProblemEarlyFinish, 1)
	if code, body := post(t, rec, []byte("hello"), nil); code != 201 {
		t.Fatalf("form POST: %d %s", code, body)
	}
	if code, _ := finish(t, srv, tok, rec.Upload.ID, 2); code != 400 {
		t.Errorf("finish with nb_chunks 2: %d", code)
	}
	wantProblem(t, srv, xvidtest.ProblemNbChunks, 1)
	if code, _ := finish(t, srv, tok, "000000000000000000000000", 1); code != 404 {
		t.Errorf("finish of an unknown upload: %d", code)
	}
	if un, _ := srv.Unfinished(context.Background()); len(un) != 1 || un[0].ID != rec.Upload.ID {
		t.Errorf("unfinished: %v, want %s", un, rec.Upload.ID)
	}
	// A form missing a field, or with the file not last, is recorded (and S3 refuses what
	// its policy does not allow).
	rec2 := create(t, srv, tok, "bad-form.mp4")
	code, body = post(t, rec2, []byte("x"), func(mw *multipart.Writer) bool {
		for _, f := range rec2.Upload.FormPostParams {
			if f[0] != "name" {
				mw.WriteField(f[0], f[1])
			}
		}
		return true
	})
	wantProblem(t, srv, xvidtest.ProblemForm, 1)
	if code != 403 || !strings.Contains(body, "Invalid according to Policy") {
		t.Errorf("form without name: %d %s, want 403 as S3", code, body)
	}
	// A chunked form: S3 refuses it (it needs the length), the emulator records it.
	var fb bytes.Buffer
	mw := multipart.NewWriter(&fb)
	for _, f := range rec2.Upload.FormPostParams {
		mw.WriteField(f[0], f[1])
	}
	fw, _ := mw.CreateFormFile("file", "c.mp4")
	fw.Write([]byte("chunked"))
	mw.Close()
	code, body = call(t, "POST", rec2.Upload.FormPostURL, "", mw.FormDataContentType(), struct{ io.Reader }{&fb}, nil)
	if code/100 == 2 {
		t.Errorf("a chunked form POST was stored: %d %s", code, body)
	}
	wantProblem(t, srv, xvidtest.ProblemChunked, 1)
	srv.ExpireTokens()
	if code, _ := call(t, "GET", srv.URL+"/v1/files/uploads/"+rec.Upload.ID, tok, "", nil, nil); code != 403 {
		t.Errorf("expired token: %d", code)
	}
	wantProblem(t, srv, xvidtest.ProblemExpiredToken, 1)
}

// Fault knobs: API faults carry Retry-After, S3 front faults are S3 XML errors.
func TestFaults(t *testing.T) {
	srv := start(t, nil)
	srv.FailNext(1, 503, 2*time.Second)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/oauth2/token/", strings.NewReader(goodForm("mediahub").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("fault: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, tok, _ := getToken(t, srv, goodForm("mediahub,mediahub_write"))
	rec := create(t, srv, tok, "f.mp4")
	srv.FailUploads(1, 500)
	if code, body := post(t, rec, []byte("abc"), nil); code != 500 || !strings.Contains(body, "<Code>InternalError</Code>") {
		t.Errorf("front fault: %d %s", code, body)
	}
	if code, _ := post(t, rec, []byte("abc"), nil); code != 201 {
		t.Errorf("after the fault: %d", code)
	}
}
