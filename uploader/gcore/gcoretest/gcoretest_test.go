package gcoretest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/gcore/gcoretest"
	"github.com/chute-dev/chute/uploader/tus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const key = "emulator-key"

func start(t *testing.T, opts gcoretest.Options) *gcoretest.Server {
	t.Helper()
	opts.Dir, opts.APIKey = t.TempDir(), key
	srv, err := gcoretest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// call sends one API request and returns the status and body.
func call(t *testing.T, srv *gcoretest.Server, method, path, auth, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func create(t *testing.T, srv *gcoretest.Server, body string) gcoretest.Video {
	t.Helper()
	code, out, _ := call(t, srv, "POST", "/streaming/videos/", "APIKey "+key, body)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	var v gcoretest.Video
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("create answered %s: %v", out, err)
	}
	return v
}

func TestAuthorization(t *testing.T) {
	srv := start(t, gcoretest.Options{})
	for _, auth := range []string{"", "APIKey wrong", "Bearer " + key, key} {
		code, body, _ := call(t, srv, "GET", "/streaming/videos/", auth, "")
		if code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
			t.Errorf("Authorization %q: %d %s", auth, code, body)
		}
	}
	for _, auth := range []string{"APIKey " + key, "apikey " + key} {
		if code, body, _ := call(t, srv, "GET", "/streaming/videos/", auth, ""); code != http.StatusOK {
			t.Errorf("Authorization %q: %d %s", auth, code, body)
		}
	}
}

func TestCreateValidation(t *testing.T) {
	srv := start(t, gcoretest.Options{})
	cases := map[string]string{
		`{"video":{"name":"  "}}`: `{"errors":{"name":["can't be blank"]}}`,
		`{"name":"flat"}`:         `{"errors":{"name":["can't be blank"]}}`,
		`{"video":{"name":"a","origin_url":"http://x/a.mp4"}}`:     `{"errors":{"origin_url":["must be an https URL"]}}`,
		`{"video":{"name":"a","origin_url":"https://x/a.m3u8?q"}}`: "HLS and DASH",
		`{"video":{"name":"a","priority":11}}`:                     "priority",
		`{"video":{"name":"a","directory_id":-2}}`:                 "directory_id",
		`{"video":{"name":"a","origin_url":"https://x/v.MPD"}}`:    "HLS and DASH",
		`{"video":{"name":"","origin_url":"https://x/clip.mp4"}}`:  "can't be blank",
		`{"video":{"name":"a","origin_url":"not a url at all"}}`:   "origin_url",
		`{"video":{"name":"a","origin_url":"https://x/file.mp4"}}`: "",
		`{"video":{"name":"ok","description":"d","priority":-10}}`: "",
	}
	for body, want := range cases {
		code, out, _ := call(t, srv, "POST", "/streaming/videos/", "APIKey "+key, body)
		if want == "" {
			if code != http.StatusCreated {
				t.Errorf("%s: %d %s", body, code, out)
			}
			continue
		}
		if code != http.StatusUnprocessableEntity || !strings.Contains(out, want) {
			t.Errorf("%s: %d %s, want 422 with %s", body, code, out, want)
		}
	}
	if code, out, _ := call(t, srv, "POST", "/streaming/videos/", "APIKey "+key, "{"); code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d %s", code, out)
	}
}

func TestCreateAsArray(t *testing.T) {
	srv := start(t, gcoretest.Options{CreateAsArray: true})
	code, out, _ := call(t, srv, "POST", "/streaming/videos", "APIKey "+key, `{"video":{"name":"a"}}`)
	var vs []gcoretest.Video
	if code != http.StatusCreated || json.Unmarshal([]byte(out), &vs) != nil || len(vs) != 1 || vs[0].ID == 0 {
		t.Fatalf("%d %s", code, out)
	}
}

func TestUnknownVideo(t *testing.T) {
	srv := start(t, gcoretest.Options{})
	for _, path := range []string{"/streaming/videos/999", "/streaming/videos/999/upload", "/streaming/videos/abc", "/streaming/nothing"} {
		if code, out, _ := call(t, srv, "GET", path, "APIKey "+key, ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %s", path, code, out)
		}
	}
	v := create(t, srv, `{"video":{"name":"a"}}`)
	id := strconv.FormatInt(v.ID, 10)
	if code, _, _ := call(t, srv, "DELETE", "/streaming/videos/"+id, "APIKey "+key, ""); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	if code, _, _ := call(t, srv, "GET", "/streaming/videos/"+id, "APIKey "+key, ""); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d", code)
	}
}

func TestFailNext(t *testing.T) {
	srv := start(t, gcoretest.Options{})
	srv.FailNext(2, 429, 3*time.Second)
	for range 2 {
		code, _, h := call(t, srv, "GET", "/streaming/videos/", "APIKey "+key, "")
		if code != 429 || h.Get("Retry-After") != "3" {
			t.Errorf("%d Retry-After %q", code, h.Get("Retry-After"))
		}
	}
	srv.FailNext(1, 503, 1500*time.Millisecond)
	if code, _, h := call(t, srv, "GET", "/streaming/videos/", "APIKey "+key, ""); code != 503 || h.Get("Retry-After-Ms") != "1500" {
		t.Errorf("%d Retry-After-Ms %q", code, h.Get("Retry-After-Ms"))
	}
	if code, _, _ := call(t, srv, "GET", "/streaming/videos/", "APIKey "+key, ""); code != 200 {
		t.Errorf("after the faults: %d", code)
	}
}

type uploadAnswer struct {
	Servers []struct {
		Role     string `json:"role"`
		Hostname string `json:"hostname"`
		Active   bool   `json:"active"`
		SSL      bool   `json:"ssl"`
	} `json:"servers"`
	Token string          `json:"token"`
	Video gcoretest.Video `json:"video"`
}

func uploadInfo(t *testing.T, srv *gcoretest.Server, id int64) uploadAnswer {
	t.Helper()
	code, out, _ := call(t, srv, "GET", "/streaming/videos/"+strconv.FormatInt(id, 10)+"/upload", "APIKey "+key, "")
	var a uploadAnswer
	if code != 200 || json.Unmarshal([]byte(out), &a) != nil || a.Token == "" {
		t.Fatalf("upload info: %d %s", code, out)
	}
	return a
}

// tusCreate creates a TUS upload on the first active server with the given metadata.
func tusCreate(t *testing.T, a uploadAnswer, server int, size int64, meta map[string]string) (string, error) {
	t.Helper()
	var hosts []string
	for _, s := range a.Servers {
		if s.Active && s.Role == "upload" && !s.SSL {
			hosts = append(hosts, s.Hostname)
		}
	}
	if len(hosts) != 2 {
		t.Fatalf("servers listed: %+v", a.Servers)
	}
	client := uploader.NewClient(uploader.ClientOptions{})
	t.Cleanup(client.CloseIdle)
	c := tus.NewClient(tus.ClientOptions{HTTP: client})
	return c.Create(context.Background(), "http://"+hosts[server]+"/upload/", size, meta)
}

func TestUploadTokenChecks(t *testing.T) {
	srv := start(t, gcoretest.Options{})
	v := create(t, srv, `{"video":{"name":"a"}}`)
	other := create(t, srv, `{"video":{"name":"b"}}`)
	a := uploadInfo(t, srv, v.ID)
	id := strconv.FormatInt(v.ID, 10)
	good := map[string]string{"filename": "a.mp4", "filetype": "video/mp4", "token": a.Token, "video_id": id, "client_id": "2675"}
	with := func(k, val string) map[string]string {
		m := map[string]string{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if val == "" {
			delete(m, k)
		} else {
			m[k] = val
		}
		return m
	}
	cases := []struct {
		meta map[string]string
		want string
	}{
		{with("token", ""), "token invalid (null)"},
		{with("token", "made-up"), "token invalid"},
		{with("video_id", strconv.FormatInt(other.ID, 10)), "token video (" + id + ") does not match this video (" + strconv.FormatInt(other.ID, 10) + ")"},
		{with("video_id", ""), "token video (" + id + ") does not match this video (null)"},
		{with("client_id", "1"), "token client (2675) does not match this client (1)"},
	}
	for _, tc := range cases {
		_, err := tusCreate(t, a, 0, 10, tc.meta)
		var se *uploader.StatusError
		if !errors.As(err, &se) || se.StatusCode != 500 || !strings.Contains(se.Body, tc.want) {
			t.Errorf("metadata %v: %v, want 500 %q", tc.meta, err, tc.want)
		}
	}
	if _, err := tusCreate(t, a, 1, 10, good); err != nil {
		t.Errorf("good metadata on the second server: %v", err)
	}
	if c := srv.Counters(); c.TokenRejections != len(cases) || c.Uploads != [2]int{0, 1} {
		t.Errorf("counters %+v", c)
	}
	srv.ExpireTokens()
	if _, err := tusCreate(t, a, 0, 10, good); err == nil || !strings.Contains(err.Error(), "token expired") {
		t.Errorf("expired token: %v", err)
	}
}

func TestStatusProgress(t *testing.T) {
	srv := start(t, gcoretest.Options{Step: time.Hour})
	v := create(t, srv, `{"video":{"name":"a"}}`)
	if v.Status != "empty" || v.Slug == "" || v.ClientID != 2675 || !strings.HasSuffix(v.IframeURL, "/videos/2675_"+v.Slug) {
		t.Fatalf("new video %+v", v)
	}
	a := uploadInfo(t, srv, v.ID)
	data := bytes.Repeat([]byte("x"), 1000)
	meta := map[string]string{"token": a.Token, "video_id": strconv.FormatInt(v.ID, 10), "client_id": "2675"}
	loc, err := tusCreate(t, a, 0, int64(len(data)), meta)
	if err != nil {
		t.Fatal(err)
	}
	status := func() gcoretest.Video {
		got, ok := srv.Video(v.ID)
		if !ok {
			t.Fatal("video gone")
		}
		return got
	}
	if s := status().Status; s != "empty" {
		t.Errorf("status %q before any byte", s)
	}
	client := uploader.NewClient(uploader.ClientOptions{})
	defer client.CloseIdle()
	req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(data[:500]))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := client.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := status().Status; s != "empty" {
		t.Errorf("status %q with half the file", s)
	}
	req, _ = http.NewRequest(http.MethodPatch, loc, bytes.NewReader(data[500:]))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "500")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	if resp, err = client.HTTP.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := status().Status; s != "pending" {
		t.Errorf("status %q once uploaded, want pending", s)
	}
	srv.SetStep(time.Nanosecond)
	got := status()
	if got.Status != "ready" || got.HLSURL == "" || len(got.ConvertedVideos) == 0 || got.Error != nil {
		t.Errorf("processed video %+v", got)
	}
	rc, err := srv.Stored(uploader.Result{ID: strconv.FormatInt(v.ID, 10)})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(stored, data) {
		t.Errorf("stored %d bytes", len(stored))
	}
	// The player page iframe_url names is served.
	if resp, err := client.HTTP.Get(got.IframeURL); err != nil || resp.StatusCode != 200 {
		t.Errorf("player page: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestOriginAndTranscodeFailures(t *testing.T) {
	srv := start(t, gcoretest.Options{Step: time.Nanosecond})
	ok := create(t, srv, `{"video":{"name":"a","origin_url":"https://x/clip.mp4"}}`)
	bad := create(t, srv, `{"video":{"name":"b","origin_url":"https://x/fail.mp4"}}`)
	srv.FailTranscode("codec not supported")
	broken := create(t, srv, `{"video":{"name":"c","origin_url":"https://x/c.mp4"}}`)
	time.Sleep(time.Millisecond)
	if v, _ := srv.Video(ok.ID); v.Status != "ready" {
		t.Errorf("origin video %q", v.Status)
	}
	if v, _ := srv.Video(bad.ID); v.Status != "empty" || v.Error == nil || *v.Error == "" {
		t.Errorf("failed download %+v", v)
	}
	if v, _ := srv.Video(broken.ID); v.Status != "error" || v.Error == nil || *v.Error != "codec not supported" {
		t.Errorf("failed transcode %+v", v)
	}
}

func TestUploadFaults(t *testing.T) {
	srv := start(t, gcoretest.Options{})
	v := create(t, srv, `{"video":{"name":"a"}}`)
	a := uploadInfo(t, srv, v.ID)
	meta := map[string]string{"token": a.Token, "video_id": strconv.FormatInt(v.ID, 10), "client_id": "2675"}
	srv.FailUpload(0, gcoretest.UploadBadGateway)
	var se *uploader.StatusError
	if _, err := tusCreate(t, a, 0, 1, meta); !errors.As(err, &se) || se.StatusCode != 502 {
		t.Errorf("502 fault: %v", err)
	}
	srv.FailUpload(1, gcoretest.UploadRefuse)
	if _, err := tusCreate(t, a, 1, 1, meta); err == nil || errors.As(err, &se) && se.StatusCode == 502 {
		t.Errorf("refused connection: %v", err)
	}
	srv.FailUpload(0, gcoretest.UploadOK)
	if _, err := tusCreate(t, a, 0, 1, meta); err != nil {
		t.Errorf("after the fault: %v", err)
	}
}
