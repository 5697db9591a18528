package uploader_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// Stream hands back a success unread: the caller has the answer's first line while the
// server still holds the response open; the body went with its exact length.
func TestStreamEarlyAnswer(t *testing.T) {
	content := pattern(300 << 10)
	release := make(chan struct{})
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.ContentLength != int64(len(content)) || len(r.TransferEncoding) > 0 {
			t.Errorf("Content-Length %d, Transfer-Encoding %v", r.ContentLength, r.TransferEncoding)
		}
		got <- b
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "rest\n")
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, uploader.ClientOptions{})
	f := openTemp(t, content)
	resp, err := c.Stream(context.Background(), &uploader.Request{Method: http.MethodPost, URL: srv.URL, Body: uploader.NewFileBody(f, 0, f.Size)})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if b := <-got; !bytes.Equal(b, content) {
		t.Errorf("the server got %d bytes, want the %d of the file", len(b), len(content))
	}
}

// An answer that is not a success is read and classed as Send classes it, redacted.
func TestStreamFailure(t *testing.T) {
	const secret = "s3cr3t-value"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "overloaded, key "+secret, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newClient(t, uploader.ClientOptions{})
	_, err := c.Stream(context.Background(), &uploader.Request{Method: http.MethodPost, URL: srv.URL + "/up?identity=tok123",
		What: "upload", Redactor: uploader.NewRedactor(secret)})
	class, after := uploader.Classify(err)
	if class != uploader.RetryAfter || after != 3*time.Second {
		t.Fatalf("503 with Retry-After classed %v %v: %v", class, after, err)
	}
	if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "tok123") || !strings.HasPrefix(msg, "upload: ") {
		t.Errorf("error %q", msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Stream(ctx, &uploader.Request{URL: srv.URL}); err != context.Canceled {
		t.Errorf("cancelled: %v", err)
	}
}
