package s3test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMinIO runs the contract against a real MinIO. It fails when MinIO is not installed;
// only CHUTE_TEST_NO_MINIO=1 makes it skip (TestStandIn then covers the same contract).
func TestMinIO(t *testing.T) {
	if os.Getenv(NoMinIOEnv) == "1" {
		t.Skip(NoMinIOEnv + "=1: MinIO not used; TestStandIn runs the same contract")
	}
	s := Start(t)
	if s.Kind() != KindMinIO {
		t.Fatalf("Start gave a %s server, want MinIO", s.Kind())
	}
	contract(t, s)
	t.Run("own presigner accepted", func(t *testing.T) {
		// The stand-in verifies with the same SigV4 code ExpiredPutURL signs with: MinIO
		// accepting a URL it signed shows that code is S3's algorithm.
		u, err := url.Parse(s.URL() + "/" + s.Bucket() + "/own/signer.bin")
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(t, 1000)
		resp := do(t, http.MethodPut, presignV4(http.MethodPut, u, time.Now(), time.Minute), bytes.NewReader(data), int64(len(data)), "")
		wantStatus(t, resp, http.StatusOK, "")
		sameObject(t, s, "own/signer.bin", data)
	})
}

// TestStandIn runs the contract against the in-process stand-in, then the checks where it is
// stricter than MinIO (as S3 is).
func TestStandIn(t *testing.T) {
	s, err := StartStandIn(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	contract(t, s)
	t.Run("chunked POST 411", func(t *testing.T) {
		form := xvidForm(t, s, "tmp/p1/chunked.mp4")
		body, ctype := formBody(t, form.Values(), nil, []byte("x"))
		resp := do(t, http.MethodPost, form.URL, io.MultiReader(body), -1, ctype)
		wantStatus(t, resp, http.StatusLengthRequired, "MissingContentLength")
	})
	t.Run("field of the policy missing", func(t *testing.T) {
		// MinIO checks conditions only on the fields it knows; S3 checks them all.
		form := xvidForm(t, s, "tmp/p1/noname.mp4")
		resp := post(t, form, map[string]bool{"name": true}, nil, []byte("x"))
		wantStatus(t, resp, http.StatusForbidden, "AccessDenied")
		gone(t, s, "tmp/p1/noname.mp4")
	})
	t.Run("streamed, not held in memory", func(t *testing.T) {
		// 64 MiB through the stand-in (client and server in this process) must allocate a
		// small fraction of that: the bytes go to disk as they come.
		const size = 64 << 20
		ctx := context.Background()
		u, err := s.PresignPut(ctx, "big/put.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		form := xvidForm(t, s, "tmp/p1/big.bin")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		wantStatus(t, do(t, http.MethodPut, u, io.LimitReader(zeros{}, size), size, ""), http.StatusOK, "")
		head, ctype := formBody(t, form.Values(), nil, nil)
		// formBody wrote the closing boundary after an empty file: put the file before it.
		tail := "\r\n--" + strings.TrimPrefix(ctype, "multipart/form-data; boundary=") + "--\r\n"
		headBytes := bytes.TrimSuffix(head.Bytes(), []byte(tail))
		body := io.MultiReader(bytes.NewReader(headBytes), io.LimitReader(zeros{}, size), strings.NewReader(tail))
		wantStatus(t, do(t, http.MethodPost, form.URL, body, int64(len(headBytes))+size+int64(len(tail)), ctype), http.StatusCreated, "")
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		t.Logf("two %d MiB uploads allocated %d KiB", size>>20, got>>10)
		if got > size/4 {
			t.Errorf("the bodies are not streamed: %d bytes allocated for two of %d", got, size)
		}
		for _, key := range []string{"big/put.bin", "tmp/p1/big.bin"} {
			if obj, err := s.Stat(ctx, key); err != nil || obj.Size != size {
				t.Errorf("%s: %+v, %v; want %d bytes", key, obj, err, size)
			}
		}
	})
	t.Run("PUT without Content-Length 411", func(t *testing.T) {
		// MinIO takes a PUT with no Content-Length as an empty object; S3 refuses it.
		u, err := s.PresignPut(context.Background(), "put/nolength", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", pu.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", pu.RequestURI(), pu.Host)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodPut, URL: pu})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, resp, http.StatusLengthRequired, "MissingContentLength")
		gone(t, s, "put/nolength")
	})
	t.Run("fields before the file over 20 KB", func(t *testing.T) {
		form := withField(xvidForm(t, s, "tmp/p1/big.mp4"), "name", strings.Repeat("n", 21<<10))
		wantStatus(t, post(t, form, nil, nil, []byte("x")), http.StatusBadRequest, "MaxPostPreDataLengthExceeded")
	})
	t.Run("header-signed request refused", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPut, s.URL()+"/"+s.Bucket()+"/k", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, resp, http.StatusNotImplemented, "NotImplemented")
	})
	t.Run("stored on disk", func(t *testing.T) {
		st := s.objects.(*standIn)
		u, err := s.PresignPut(context.Background(), "disk/obj", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(t, 4096)
		wantStatus(t, do(t, http.MethodPut, u, bytes.NewReader(data), int64(len(data)), ""), http.StatusOK, "")
		got, err := os.ReadFile(st.path("disk/obj"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the object's file holds %d bytes (%v), want the %d sent", len(got), err, len(data))
		}
	})
}

// contract is what an emulator relies on, whichever server is behind s.
func contract(t *testing.T, s *Server) {
	ctx := context.Background()
	t.Run("PUT exact length", func(t *testing.T) {
		for _, size := range []int{0, 1, 3 << 20} {
			key := fmt.Sprintf("put/exact-%d.bin", size)
			u, err := s.PresignPut(ctx, key, 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(t, size)
			resp := do(t, http.MethodPut, u, bytes.NewReader(data), int64(size), "video/mp4")
			wantStatus(t, resp, http.StatusOK, "")
			if etag := strings.Trim(resp.Header.Get("ETag"), `"`); etag != md5hex(data) {
				t.Errorf("PUT answered ETag %q, want the md5 %s", etag, md5hex(data))
			}
			sameObject(t, s, key, data)
		}
	})
	t.Run("PUT chunked 411", func(t *testing.T) {
		u, err := s.PresignPut(ctx, "put/chunked.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// A reader of unknown length: net/http sends it chunked.
		resp := do(t, http.MethodPut, u, io.MultiReader(bytes.NewReader(randomBytes(t, 1000))), -1, "")
		wantStatus(t, resp, http.StatusLengthRequired, "MissingContentLength")
		gone(t, s, "put/chunked.bin")
	})
	t.Run("PUT altered 403", func(t *testing.T) {
		u, err := s.PresignPut(ctx, "put/signed.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		sig := strings.LastIndex(u, "X-Amz-Signature=") + len("X-Amz-Signature=")
		flip := map[byte]byte{'0': '1'}[u[sig]]
		if flip == 0 {
			flip = '0'
		}
		for name, bad := range map[string]string{
			"signature": u[:sig] + string(flip) + u[sig+1:],
			"key":       strings.Replace(u, "/put/signed.bin?", "/put/other.bin?", 1),
			"expiry":    strings.Replace(u, "X-Amz-Expires=60", "X-Amz-Expires=600", 1),
		} {
			if bad == u {
				t.Fatalf("%s: the URL did not change: %s", name, u)
			}
			resp := do(t, http.MethodPut, bad, strings.NewReader("data"), 4, "")
			wantStatus(t, resp, http.StatusForbidden, "SignatureDoesNotMatch")
		}
		gone(t, s, "put/signed.bin")
		gone(t, s, "put/other.bin")
	})
	t.Run("keys with spaces and more", func(t *testing.T) {
		for _, key := range []string{"put/a file (1) ü+&=.mp4", "put/%41?#.bin", "put/~tilde/x"} {
			u, err := s.PresignPut(ctx, key, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, do(t, http.MethodPut, u, strings.NewReader(key), int64(len(key)), ""), http.StatusOK, "")
			sameObject(t, s, key, []byte(key))
			form := xvidForm(t, s, "tmp/p1/"+key)
			wantStatus(t, post(t, form, nil, nil, []byte(key)), http.StatusCreated, "")
			sameObject(t, s, "tmp/p1/"+key, []byte(key))
		}
	})
	t.Run("PUT refusals", func(t *testing.T) {
		u, err := s.PresignPut(ctx, "put/refused.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPut, u, strings.NewReader("data"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==") // the md5 of nothing
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, resp, http.StatusBadRequest, "BadDigest")
		other := strings.Replace(u, "X-Amz-Credential="+AccessKey, "X-Amz-Credential=someoneelse", 1)
		wantStatus(t, do(t, http.MethodPut, other, strings.NewReader("data"), 4, ""), http.StatusForbidden, "InvalidAccessKeyId")
		gone(t, s, "put/refused.bin")
	})
	t.Run("POST refusals", func(t *testing.T) {
		form, err := s.PresignPost(PostPolicy{Fields: xvidFields("tmp/p1/small.mp4"), MaxSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, post(t, form, nil, nil, []byte("0123456789")), http.StatusCreated, "")
		wantStatus(t, post(t, form, nil, nil, []byte("0123456789A")), http.StatusBadRequest, "EntityTooLarge")
		sameObject(t, s, "tmp/p1/small.mp4", []byte("0123456789"))
		// No file at all.
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for _, f := range form.Values() {
			mw.WriteField(f[0], f[1])
		}
		mw.Close()
		wantStatus(t, do(t, http.MethodPost, form.URL, &b, int64(b.Len()), mw.FormDataContentType()), http.StatusBadRequest, "MalformedPOSTRequest")
	})
	t.Run("PUT URL used to GET", func(t *testing.T) {
		u, err := s.PresignPut(context.Background(), "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, do(t, http.MethodGet, u, nil, 0, ""), http.StatusForbidden, "SignatureDoesNotMatch")
	})
	t.Run("expired 403", func(t *testing.T) {
		t.Parallel() // it waits for its URLs to expire
		old, err := s.ExpiredPutURL("put/expired.bin")
		if err != nil {
			t.Fatal(err)
		}
		resp := do(t, http.MethodPut, old, strings.NewReader("data"), 4, "")
		wantStatus(t, resp, http.StatusForbidden, "AccessDenied")
		body := errorOf(t, resp)
		if !strings.Contains(body.Message, "Request has expired") {
			t.Errorf("expired URL refused with %q, want \"Request has expired\"", body.Message)
		}
		short, err := s.PresignPut(ctx, "put/expired.bin", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		form, err := s.PresignPost(PostPolicy{Fields: xvidFields("tmp/p1/expired.mp4"), Expires: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2100 * time.Millisecond)
		resp = do(t, http.MethodPut, short, strings.NewReader("data"), 4, "")
		wantStatus(t, resp, http.StatusForbidden, "AccessDenied")
		resp = post(t, form, nil, nil, []byte("data"))
		wantStatus(t, resp, http.StatusForbidden, "AccessDenied")
		gone(t, s, "put/expired.bin")
		gone(t, s, "tmp/p1/expired.mp4")
	})
	t.Run("POST policy 201", func(t *testing.T) {
		for _, size := range []int{1, 2<<20 + 7} {
			key := fmt.Sprintf("tmp/p1/clip-%d.mp4", size)
			form := xvidForm(t, s, key)
			data := randomBytes(t, size)
			resp := post(t, form, nil, nil, data)
			wantStatus(t, resp, http.StatusCreated, "")
			var pr postResponse
			if err := xml.NewDecoder(resp.Body).Decode(&pr); err != nil {
				t.Fatalf("201 without a PostResponse: %v", err)
			}
			resp.Body.Close()
			if pr.Bucket != s.Bucket() || pr.Key != key || strings.Trim(pr.ETag, `"`) != md5hex(data) {
				t.Errorf("PostResponse %+v, want bucket %s, key %s, ETag %s", pr, s.Bucket(), key, md5hex(data))
			}
			sameObject(t, s, key, data)
		}
	})
	t.Run("POST field missing or out of order", func(t *testing.T) {
		cases := []struct {
			name        string
			omit, after map[string]bool
			status      int
			code        string
		}{
			{"acl missing", map[string]bool{"acl": true}, nil, http.StatusForbidden, "AccessDenied"},
			{"key missing", map[string]bool{"key": true}, nil, http.StatusBadRequest, "MalformedPOSTRequest"},
			{"key after the file", nil, map[string]bool{"key": true}, http.StatusBadRequest, "MalformedPOSTRequest"},
			{"policy after the file", nil, map[string]bool{"policy": true}, http.StatusForbidden, ""},
			{"acl after the file", nil, map[string]bool{"acl": true}, http.StatusForbidden, "AccessDenied"},
		}
		for _, c := range cases {
			key := "tmp/p1/" + strings.ReplaceAll(c.name, " ", "-")
			form := xvidForm(t, s, key)
			resp := post(t, form, c.omit, c.after, []byte("payload"))
			if resp.StatusCode == http.StatusCreated || resp.StatusCode < 400 {
				t.Errorf("%s: answered %d, want a refusal", c.name, resp.StatusCode)
			}
			wantStatus(t, resp, c.status, c.code)
			gone(t, s, key)
		}
	})
	t.Run("POST policy violated", func(t *testing.T) {
		form := xvidForm(t, s, "tmp/p1/ok.mp4")
		set := func(name, value string) PostForm { return withField(form, name, value) }
		for _, c := range []struct {
			what, field, value, code string
		}{
			{"a key outside the prefix", "key", "elsewhere/ok.mp4", "AccessDenied"},
			{"another acl", "acl", "public-read", "AccessDenied"},
			{"another success status", "success_action_status", "200", "AccessDenied"},
			{"an altered signature", "x-amz-signature", strings.Repeat("0", 64), "SignatureDoesNotMatch"},
		} {
			resp := post(t, set(c.field, c.value), nil, nil, []byte("payload"))
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: answered %d, want 403", c.what, resp.StatusCode)
			}
			wantStatus(t, resp, http.StatusForbidden, c.code)
		}
		extra := PostForm{URL: form.URL, Fields: append([]FormField{{Name: "x-extra", Value: "1"}}, form.Fields...)}
		wantStatus(t, post(t, extra, nil, nil, []byte("payload")), http.StatusForbidden, "AccessDenied")
		gone(t, s, "tmp/p1/ok.mp4")
		gone(t, s, "elsewhere/ok.mp4")
	})
	t.Run("POST chunked refused", func(t *testing.T) {
		form := xvidForm(t, s, "tmp/p1/chunked.mp4")
		body, ctype := formBody(t, form.Values(), nil, []byte("payload"))
		resp := do(t, http.MethodPost, form.URL, io.MultiReader(body), -1, ctype)
		if resp.StatusCode < 400 {
			t.Errorf("a chunked POST answered %d, want a refusal", resp.StatusCode)
		}
		resp.Body.Close()
		gone(t, s, "tmp/p1/chunked.mp4")
	})
	t.Run("stat, delete", func(t *testing.T) {
		if _, err := s.Stat(ctx, "no/such/key"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat of a missing key: %v, want fs.ErrNotExist", err)
		}
		if _, err := s.Open(ctx, "no/such/key"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open of a missing key: %v, want fs.ErrNotExist", err)
		}
		u, err := s.PresignPut(ctx, "del/me", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, do(t, http.MethodPut, u, strings.NewReader("bye"), 3, ""), http.StatusOK, "")
		if err := s.Delete(ctx, "del/me"); err != nil {
			t.Fatal(err)
		}
		gone(t, s, "del/me")
		if err := s.Delete(ctx, "del/me"); err != nil {
			t.Fatalf("deleting a missing key: %v, want no error (as S3)", err)
		}
	})
	t.Run("request log", func(t *testing.T) {
		before := len(s.Requests())
		u, err := s.PresignPut(ctx, "log/put.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, do(t, http.MethodPut, u, strings.NewReader("12345"), 5, ""), http.StatusOK, "")
		sameObject(t, s, "log/put.bin", []byte("12345")) // s3test's own reads are not logged
		wantStatus(t, do(t, http.MethodPut, u, io.MultiReader(strings.NewReader("12345")), -1, ""), http.StatusLengthRequired, "")
		wantStatus(t, post(t, xvidForm(t, s, "tmp/p1/log.mp4"), nil, nil, []byte("abc")), http.StatusCreated, "")
		bad := withField(xvidForm(t, s, "tmp/p1/log2.mp4"), "key", "elsewhere/log.mp4")
		wantStatus(t, post(t, bad, nil, nil, []byte("abc")), http.StatusForbidden, "")
		got := s.Requests()[before:]
		if len(got) != 4 {
			t.Fatalf("logged %d requests, want 4: %+v", len(got), got)
		}
		want := []Request{
			{Method: "PUT", Key: "log/put.bin", Length: 5, Received: 5, Status: 200},
			{Method: "PUT", Key: "log/put.bin", Length: -1, Status: 411, Code: "MissingContentLength"},
			{Method: "POST", Key: "tmp/p1/log.mp4", Status: 201},
			{Method: "POST", Status: 403, Code: "AccessDenied"},
		}
		for i, w := range want {
			g := got[i]
			if g.Method != w.Method || g.Key != w.Key || g.Status != w.Status || g.Code != w.Code ||
				(w.Length != 0 && g.Length != w.Length) || (w.Received != 0 && g.Received != w.Received) {
				t.Errorf("request %d logged %+v, want %+v", i, g, w)
			}
		}
	})
	t.Run("stall", func(t *testing.T) {
		u, err := s.PresignPut(ctx, "stall/put.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		s.Stall(true)
		defer s.Stall(false)
		client := &http.Client{Timeout: 300 * time.Millisecond}
		req, err := http.NewRequest(http.MethodPut, u, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("a stalled server answered %d", resp.StatusCode)
		}
		s.Stall(false)
		wantStatus(t, do(t, http.MethodPut, u, strings.NewReader("x"), 1, ""), http.StatusOK, "")
	})
	t.Run("curl PUT and POST", func(t *testing.T) {
		Curl(t)
		data := randomBytes(t, 1<<20+3)
		path := filepath.Join(t.TempDir(), "clip.mp4")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		u, err := s.PresignPut(ctx, "curl/put.mp4", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		CurlPut(t, u, path)
		sameObject(t, s, "curl/put.mp4", data)
		CurlPost(t, xvidForm(t, s, "tmp/p1/curl.mp4"), path)
		sameObject(t, s, "tmp/p1/curl.mp4", data)
	})
	t.Run("cut mid-PUT stores nothing", func(t *testing.T) {
		const size = 8 << 20
		u, err := s.PresignPut(ctx, "put/cut.bin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		s.Listener.CutAfter(size / 3)
		req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(randomBytes(t, size)))
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("a PUT through a cut connection succeeded")
			}
		}
		// The server may take a moment to notice the reset.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := s.Stat(ctx, "put/cut.bin")
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a cut PUT, Stat says %v, want nothing stored", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// xvidFields are the fields of an Xvid MediaHub upload form, with the conditions its policy
// puts on them.
func xvidFields(key string) []FormField {
	return []FormField{
		{Name: "name", Value: "clip.mp4", StartsWith: true},
		{Name: "success_action_status", Value: "201"},
		{Name: "filename", Value: "", StartsWith: true},
		{Name: "chunk", Value: "0", StartsWith: true},
		{Name: "chunks", Value: "1", StartsWith: true},
		{Name: "policy"}, // the signing fields go here, before key and acl, as Xvid's order has them
		{Name: "key", Value: key, StartsWith: true, Prefix: "tmp/p1/"},
		{Name: "acl", Value: "private"},
	}
}

// withField is form with one field's value changed (the signature no longer covers it).
func withField(form PostForm, name, value string) PostForm {
	f := PostForm{URL: form.URL, Fields: append([]FormField(nil), form.Fields...)}
	for i := range f.Fields {
		if f.Fields[i].Name == name {
			f.Fields[i].Value = value
		}
	}
	return f
}

func xvidForm(t *testing.T, s *Server, key string) PostForm {
	t.Helper()
	f, err := s.PresignPost(PostPolicy{Fields: xvidFields(key), Expires: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// formBody is a multipart body: fields in order (less omit), the file, then the fields in
// after (S3 ignores what follows the file).
func formBody(t *testing.T, fields [][2]string, after map[string]bool, data []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		if !after[f[0]] {
			if err := mw.WriteField(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	fw, err := mw.CreateFormFile("file", "clip.mp4")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	for _, f := range fields {
		if after[f[0]] {
			if err := mw.WriteField(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, mw.FormDataContentType()
}

func post(t *testing.T, form PostForm, omit, after map[string]bool, data []byte) *http.Response {
	t.Helper()
	var fields [][2]string
	for _, f := range form.Values() {
		if !omit[f[0]] {
			fields = append(fields, f)
		}
	}
	body, ctype := formBody(t, fields, after, data)
	return do(t, http.MethodPost, form.URL, body, int64(body.Len()), ctype)
}

func do(t *testing.T, method, u string, body io.Reader, size int64, ctype string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, redact(u), err)
	}
	return resp
}

func redact(u string) string {
	s, _, _ := strings.Cut(u, "?")
	return s
}

// wantStatus checks the answer's status and, when code is set, its S3 error code.
func wantStatus(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("%s %s answered %d, want %d: %s", resp.Request.Method, redact(resp.Request.URL.String()), resp.StatusCode, status, b)
	}
	if code == "" {
		return
	}
	if e := errorOf(t, resp); e.Code != code {
		t.Fatalf("%s answered %d %s (%s), want code %s", resp.Request.Method, status, e.Code, e.Message, code)
	}
}

// errorOf decodes an S3 XML error answer, leaving the body to be read again.
func errorOf(t *testing.T, resp *http.Response) *s3Error {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var e s3Error
	if err := xml.Unmarshal(b, &e); err != nil || e.Code == "" {
		t.Fatalf("answer %d is not an S3 XML error (%v): %q", resp.StatusCode, err, b)
	}
	if strings.Contains(string(b), SecretKey) {
		t.Fatalf("the error shows the secret key: %s", b)
	}
	return &e
}

func sameObject(t *testing.T, s *Server, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	obj, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || obj.ETag != md5hex(data) {
		t.Errorf("%s: stored %d bytes, ETag %s; want %d bytes, md5 %s", key, obj.Size, obj.ETag, len(data), md5hex(data))
	}
	sum, err := s.MD5(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if sum != md5hex(data) {
		t.Errorf("%s: the stored bytes' md5 is %s, want %s", key, sum, md5hex(data))
	}
}

func gone(t *testing.T, s *Server, key string) {
	t.Helper()
	if _, err := s.Stat(context.Background(), key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: Stat says %v, want nothing stored", key, err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestMinIOClose checks that Close ends MinIO's process and frees its port.
func TestMinIOClose(t *testing.T) {
	if os.Getenv(NoMinIOEnv) == "1" {
		t.Skip(NoMinIOEnv + "=1: MinIO not used")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartMinIO(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignPut(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	default:
		t.Fatal("MinIO's process still runs after Close")
	}
	req, err := http.NewRequest(http.MethodPut, u, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the server answered %d after Close", resp.StatusCode)
	}
}

func TestFindMinIOMissing(t *testing.T) {
	t.Setenv(MinIOEnv, "/nonexistent/minio")
	_, err := FindMinIO(context.Background())
	if err == nil {
		t.Fatal("FindMinIO found a binary that does not exist")
	}
	t.Setenv(MinIOEnv, "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOPATH", t.TempDir())
	_, err = FindMinIO(context.Background())
	if err == nil {
		t.Fatal("FindMinIO found a binary with an empty PATH and GOPATH")
	}
	for _, want := range []string{"go install " + MinIOModule, NoMinIOEnv + "=1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
}

// TestPresignPostForm checks the form's field order (the signing fields where "policy"
// stood), its ordered JSON, and the conditions its policy carries.
func TestPresignPostForm(t *testing.T) {
	s, err := StartStandIn(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	form := xvidForm(t, s, "tmp/p1/a.mp4")
	var names []string
	for _, f := range form.Fields {
		names = append(names, f.Name)
	}
	want := "name success_action_status filename chunk chunks policy x-amz-algorithm x-amz-credential x-amz-date x-amz-signature key acl"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("fields %s, want %s", got, want)
	}
	raw, err := form.FieldsJSON()
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	var keys []string
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Token(); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
	}
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("FieldsJSON keys %s, want %s", got, want)
	}
	var policy string
	for _, f := range form.Fields {
		if f.Name == "policy" {
			policy = f.Value
		}
	}
	doc, err := base64.StdEncoding.DecodeString(policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{`["starts-with","$name",""]`, `["starts-with","$key","tmp/p1/"]`, `["starts-with","$filename",""]`,
		`["starts-with","$chunk",""]`, `["starts-with","$chunks",""]`, `["eq","$acl","private"]`, `["eq","$success_action_status","201"]`, `{"bucket":"chute"}`} {
		if !strings.Contains(string(doc), c) {
			t.Errorf("the policy %s lacks %s", doc, c)
		}
	}
	if _, err := s.PresignPost(PostPolicy{Fields: []FormField{{Name: "acl", Value: "private"}}}); err == nil {
		t.Error("a form without a key was signed")
	}
}

// TestWrap checks that an emulator's own handler wrapper sees every S3 request, and that
// what it answers is in the request log, on both backends.
func TestWrap(t *testing.T) {
	for _, kind := range []Kind{KindStandIn, KindMinIO} {
		t.Run(string(kind), func(t *testing.T) {
			var seen atomic.Int64
			opts := Options{Dir: t.TempDir(), Wrap: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if seen.Add(1) == 1 {
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					}
					next.ServeHTTP(w, r)
				})
			}}
			var (
				s   *Server
				err error
			)
			if kind == KindStandIn {
				s, err = StartStandIn(opts)
			} else {
				if os.Getenv(NoMinIOEnv) == "1" {
					t.Skip(NoMinIOEnv + "=1: MinIO not used")
				}
				s, err = StartMinIO(context.Background(), opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			u, err := s.PresignPut(context.Background(), "wrapped", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, do(t, http.MethodPut, u, strings.NewReader("x"), 1, ""), http.StatusServiceUnavailable, "")
			wantStatus(t, do(t, http.MethodPut, u, strings.NewReader("x"), 1, ""), http.StatusOK, "")
			reqs := s.Requests()
			if seen.Load() != 2 || len(reqs) != 2 || reqs[0].Status != 503 || reqs[1].Status != 200 {
				t.Fatalf("the wrapper saw %d requests, the log %+v; want 2, answered 503 then 200", seen.Load(), reqs)
			}
		})
	}
	if _, err := StartMinIO(context.Background(), Options{Direct: true, Wrap: func(h http.Handler) http.Handler { return h }}); err == nil || !strings.Contains(err.Error(), "Wrap") {
		t.Errorf("StartMinIO with Wrap and Direct: %v, want Wrap refused", err)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
