package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

func testFile(t *testing.T, n int) (*File, []byte) {
	t.Helper()
	content := make([]byte, n)
	for i := range content {
		content[i] = byte(i*13 + i/509)
	}
	path := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, content
}

// sums records the SHA-256 and length of every request body a server receives.
type sums struct {
	mu  sync.Mutex
	got map[string][32]byte
	len map[string]int64
}

func (s *sums) handler(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[r.URL.Path] = [32]byte(h.Sum(nil))
	s.len[r.URL.Path] = n
	w.WriteHeader(http.StatusNoContent)
}

// A file body on a plain TCP connection is sent by the kernel from the file (sendfile),
// every byte of the section and nothing else, with progress; with an observer (the engine's
// inline hash) it goes through ReadAt, which the observer sees whole.
func TestFileBodySentByKernel(t *testing.T) {
	f, content := testFile(t, 20<<20+13)
	s := &sums{got: map[string][32]byte{}, len: map[string]int64{}}
	srv := httptest.NewServer(http.HandlerFunc(s.handler))
	defer srv.Close()
	c := NewClient(ClientOptions{})
	defer c.CloseIdle()
	zeroCopy := runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1"

	sections := []struct {
		name   string
		off, n int64
	}{
		{"/whole", 0, f.Size},
		{"/middle", 3<<20 + 1, 9<<20 + 7},
		{"/tail", f.Size - 5, 5},
	}
	for _, sec := range sections {
		before := f.zeroCopied.Load()
		var last int64
		monotonic := true
		body := NewFileBody(f, sec.off, sec.n).WithProgress(func(n int64) {
			if n < last {
				monotonic = false
			}
			last = n
		})
		if _, err := c.Send(context.Background(), &Request{Method: http.MethodPatch, URL: srv.URL + sec.name, Body: body}); err != nil {
			t.Fatalf("%s: %v", sec.name, err)
		}
		want := sha256.Sum256(content[sec.off : sec.off+sec.n])
		if s.got[sec.name] != want || s.len[sec.name] != sec.n {
			t.Fatalf("%s: the server got %d bytes, not the %d of the section (or other bytes)", sec.name, s.len[sec.name], sec.n)
		}
		if last != sec.n || !monotonic {
			t.Fatalf("%s: progress ended at %d of %d (monotonic %v)", sec.name, last, sec.n, monotonic)
		}
		// The headers' buffer takes the first bytes through ReadAt; the rest is the kernel's.
		if kernel := f.zeroCopied.Load() - before; zeroCopy && sec.n > 1<<20 && kernel < sec.n-(64<<10) {
			t.Fatalf("%s: the kernel sent %d of %d bytes", sec.name, kernel, sec.n)
		}
	}

	var seen bytes.Buffer
	f.Observe(func(p []byte, off int64) { seen.Write(p) })
	before := f.zeroCopied.Load()
	if _, err := c.Send(context.Background(), &Request{Method: http.MethodPatch, URL: srv.URL + "/observed", Body: NewFileBody(f, 0, f.Size)}); err != nil {
		t.Fatal(err)
	}
	if f.zeroCopied.Load() != before {
		t.Fatal("an observed file was sent by the kernel: the observer missed bytes")
	}
	if !bytes.Equal(seen.Bytes(), content) || s.got["/observed"] != sha256.Sum256(content) {
		t.Fatalf("the observer saw %d bytes of %d", seen.Len(), len(content))
	}
}

// Two bodies of one file sent at once share its descriptor's offset without mixing bytes.
func TestFileBodiesAtOnce(t *testing.T) {
	f, content := testFile(t, 24<<20)
	s := &sums{got: map[string][32]byte{}, len: map[string]int64{}}
	srv := httptest.NewServer(http.HandlerFunc(s.handler))
	defer srv.Close()
	c := NewClient(ClientOptions{})
	defer c.CloseIdle()
	half := f.Size / 2
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, off := range []int64{0, half} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Send(context.Background(), &Request{Method: http.MethodPut, URL: srv.URL + []string{"/a", "/b"}[i], Body: NewFileBody(f, off, half)})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if s.got["/a"] != sha256.Sum256(content[:half]) || s.got["/b"] != sha256.Sum256(content[half:]) {
		t.Fatal("bodies sent at once mixed their bytes")
	}
}

// A receiver that stops reading cuts the send after the idle timeout, kernel send or not.
func TestFileBodyStalledReceiver(t *testing.T) {
	f, _ := testFile(t, 64<<20)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // read nothing: the sender's socket fills up and stays full
		}
	}()
	c := NewClient(ClientOptions{IdleTimeout: 700 * time.Millisecond})
	defer c.CloseIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Send(ctx, &Request{Method: http.MethodPut, URL: "http://" + ln.Addr().String() + "/x", Body: NewFileBody(f, 0, f.Size)})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a stalled receiver: err %v, context %v (want the idle timeout, well before the context)", err, ctx.Err())
	}
}

// A file that shrinks under its body fails the request; it never hangs or sends short.
func TestFileBodyShrunk(t *testing.T) {
	f, _ := testFile(t, 16<<20)
	got := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got <- n
	}))
	defer srv.Close()
	if err := os.Truncate(f.Path, 8<<20); err != nil {
		t.Fatal(err)
	}
	c := NewClient(ClientOptions{})
	defer c.CloseIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Send(ctx, &Request{Method: http.MethodPut, URL: srv.URL, Body: NewFileBody(f, 0, f.Size)}); err == nil || ctx.Err() != nil {
		t.Fatalf("a body longer than its file: err %v, context %v", err, ctx.Err())
	}
	select {
	case n := <-got:
		if n >= f.Size {
			t.Fatalf("the server read %d bytes of a file cut to %d", n, 8<<20)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server's handler never ended")
	}
}
