package service

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
)

func hashFixture(t *testing.T, n int, seed byte) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7) ^ seed
	}
	p := filepath.Join(t.TempDir(), "big.mp4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func openForUpload(t *testing.T, p string) (*uploader.File, os.FileInfo) {
	t.Helper()
	f, err := uploader.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, info
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func newTestHashes(t *testing.T) *hashes {
	ctx, cancel := context.WithCancel(context.Background())
	h := newHashes(ctx, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		cancel()
		h.wait()
	})
	return h
}

// A run started ahead is the one an upload of the same file takes, with every digest asked
// for; once used it is forgotten, and a failed upload leaves it for the next attempt.
func TestHashAheadTaken(t *testing.T) {
	h := newTestHashes(t)
	p, data := hashFixture(t, 5<<20+3, 1)
	f, info := openForUpload(t, p)
	need := withSHA256([]uploader.Digest{uploader.MD5})
	h.ahead(p, f.Size, f.ModTime, need)
	h.mu.Lock()
	ahead := h.byPath[p]
	h.mu.Unlock()
	r := h.forUpload(p, f, info, need, true)
	if r != ahead {
		t.Fatal("the upload started a second run beside the one ahead")
	}
	sums, err := r.result(context.Background(), info)
	if err != nil {
		t.Fatal(err)
	}
	s, m := sha256.Sum256(data), md5.Sum(data)
	if sums[uploader.SHA256] != hexOf(s[:]) || sums[uploader.MD5] != hexOf(m[:]) {
		t.Fatalf("digests %v", sums)
	}
	h.release(r, false) // the upload failed: kept
	if again := h.forUpload(p, f, info, withSHA256(nil), true); again != r {
		t.Fatal("a finished run was not kept for the next attempt")
	} else {
		h.release(again, true)
	}
	if again := h.forUpload(p, f, info, withSHA256(nil), true); again == r {
		t.Fatal("a used run was handed out again")
	} else {
		h.release(again, true)
	}
	// A run ahead lacking a digest the upload needs is not taken.
	h.ahead(p, f.Size, f.ModTime, withSHA256(nil))
	if r := h.forUpload(p, f, info, need, true); !covers(r.need, need) {
		t.Fatalf("the upload took a run without the MD5 it needs: %v", r.need)
	}
}

// A run over another file than the upload's, or over a file that changed, gives no digest:
// the caller hashes its own file instead of trusting it.
func TestHashAheadOfAnotherFile(t *testing.T) {
	h := newTestHashes(t)
	p, _ := hashFixture(t, 3<<20, 2)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	h.ahead(p, st.Size(), st.ModTime(), withSHA256(nil))
	h.mu.Lock()
	r := h.byPath[p]
	h.mu.Unlock()
	<-r.done
	// The same name, size and mtime, other content and another inode.
	other := p + ".new"
	if err := os.WriteFile(other, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(other, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, p); err != nil {
		t.Fatal(err)
	}
	f, info := openForUpload(t, p)
	got := h.forUpload(p, f, info, withSHA256(nil), true)
	if got == r {
		t.Fatal("the upload took a run over the file its name held before")
	}
	h.release(got, true)
	if _, err := r.result(context.Background(), info); !errors.Is(err, errChangedWhileHashed) {
		t.Fatalf("the old run's result for the new file: %v", err)
	}

	// Changed after the run began: the run says so.
	p2, _ := hashFixture(t, 2<<20, 3)
	st2, _ := os.Stat(p2)
	h.ahead(p2, st2.Size()+1, st2.ModTime(), withSHA256(nil)) // the watcher saw another size
	h.mu.Lock()
	r2 := h.byPath[p2]
	h.mu.Unlock()
	<-r2.done
	if !errors.Is(r2.err, errChangedWhileHashed) {
		t.Fatalf("a run over a file unlike what the watcher saw: %v", r2.err)
	}
}

// With every slot taken, an upload that may not wait gets no run (it hashes in its own
// reads), and one that may waits; a stop ends every run, those waiting included.
func TestHashRunsEndWithTheDaemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := newHashes(ctx, slog.New(slog.DiscardHandler))
	for range hashSlots() {
		h.slots <- struct{}{} // the machine is busy hashing
	}
	var waiting []*hashRun
	for i := range 3 {
		p, _ := hashFixture(t, 2<<20, byte(i))
		f, info := openForUpload(t, p)
		h.ahead(p, f.Size, f.ModTime, withSHA256(nil))
		if r := h.forUpload(p, f, info, withSHA256(nil), false); r != nil {
			t.Fatal("a run was started without a free slot for an upload that hashes in its own reads otherwise")
		}
		waiting = append(waiting, h.forUpload(p, f, info, withSHA256(nil), true))
	}
	select {
	case <-waiting[0].done:
		t.Fatal("a run read without a slot")
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	done := make(chan struct{})
	go func() { h.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hash runs did not end after the stop")
	}
	for _, r := range waiting {
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("a waiting run ended with %v", r.err)
		}
	}
}
