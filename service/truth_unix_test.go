//go:build unix

package service_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/store"
)

// writeAt writes data to path and gives it the mtime at, so that a rewrite is seen as one
// even on file systems with coarse timestamps.
func writeAt(t *testing.T, path string, data []byte, at time.Time) {
	t.Helper()
	write(t, path, data)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// waitSidecar waits until the sidecar of path satisfies ok.
func (e *env) waitSidecar(path string, ok func(*service.Sidecar) bool, what string) *service.Sidecar {
	e.t.Helper()
	var sc *service.Sidecar
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s, err := service.ReadSidecar(path); err == nil && ok(s) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	sc, err := service.ReadSidecar(path)
	e.t.Fatalf("timed out waiting for %s: sidecar %+v (%v); logs:\n%s", what, sc, err, e.logs)
	return nil
}

// Item 1: new content of the same size under a name uploaded before is uploaded again, and
// the sidecar tells the new content; the same content touched is not uploaded again.
func TestSameSizeNewContentUploadedAgain(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	p := filepath.Join(e.inbox, "a.bin")
	a := bytes.Repeat([]byte("A"), 1024)
	b := bytes.Repeat([]byte("B"), 1024)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	writeAt(t, p, a, t0)
	e.checkDone(p, a)

	writeAt(t, p, b, t0.Add(10*time.Second))
	e.waitSidecar(p, func(s *service.Sidecar) bool { return s.SHA256 == sha(b) }, "the sidecar of the new content")
	e.checkDone(p, b)
	created := e.srv.Stats().Created
	if created != 2 {
		t.Fatalf("tusd has %d uploads, want 2 (old and new content)", created)
	}

	// The same bytes with another mtime: hashed, found the same, not uploaded again.
	touched := t0.Add(20 * time.Second)
	if err := os.Chtimes(p, touched, touched); err != nil {
		t.Fatal(err)
	}
	e.waitSidecar(p, func(s *service.Sidecar) bool { return s.MTime.Equal(touched) }, "the sidecar to record the new mtime")
	e.checkDone(p, b)
	if got := e.srv.Stats().Created; got != created {
		t.Fatalf("touching a file uploaded it again (%d uploads, want %d)", got, created)
	}
}

// Item 1 with after: delete: every later file reusing a name and size is uploaded.
func TestReusedNameAfterDelete(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.Folders[0].After = configs.AfterDelete
	e.start()
	p := filepath.Join(e.inbox, "DSC0001.JPG")
	for i, c := range []string{"first", "other"} {
		data := bytes.Repeat([]byte(c), 200)
		write(t, p, data)
		sc := e.waitSidecar(p, func(s *service.Sidecar) bool { return s.Status == "done" && s.SHA256 == sha(data) }, "shot "+c)
		waitFor(t, func() bool { _, err := os.Stat(p); return os.IsNotExist(err) }, "the uploaded file to be deleted")
		if got := e.srv.Stats().Created; got != i+1 {
			t.Fatalf("after %d shots tusd has %d uploads", i+1, got)
		}
		if rc, err := e.srv.Stored(sc.ID); err != nil {
			t.Fatal(err)
		} else {
			rc.Close()
		}
	}
}

// Item 2: a file deleted during its upload gets no sidecar beside nothing.
func TestDeletedDuringUpload(t *testing.T) {
	e := newEnv(t, "")
	p := e.uploadUnderWay("big.bin", bytes.Repeat([]byte("x"), 16<<20), 4<<20, 1<<20, "the upload to start")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	e.srv.Throttle(0)
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "deleted during its upload") }, "the deletion to be noticed")
	if _, err := os.Stat(service.SidecarPath(p)); err == nil {
		b, _ := os.ReadFile(service.SidecarPath(p))
		t.Fatalf("a sidecar was written beside a deleted file:\n%s", b)
	}
	// The next file of that name is uploaded as itself.
	write(t, p, []byte("new"))
	e.checkDone(p, []byte("new"))
}

// Item 3: an older job that ends after a newer one of its path never overwrites the newer
// job's sidecar.
func TestOlderJobNeverOverwritesNewerSidecar(t *testing.T) {
	e := newEnv(t, "")
	p := e.uploadUnderWay("clip.mp4", bytes.Repeat([]byte("o"), 16<<20), 4<<20, 1<<20, "the first upload to start")
	// Replaced the way editors and exporters do: a new file renamed over the old one, so the
	// first upload goes on reading the old bytes through its open handle.
	fresh := []byte("the new content")
	write(t, p+".tmp", fresh)
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	e.waitSidecar(p, func(s *service.Sidecar) bool { return s.Status == "done" && s.SHA256 == sha(fresh) }, "the new content's sidecar")
	e.srv.Throttle(0)
	waitFor(t, func() bool { return e.srv.Stats().BytesReceived >= 16<<20 }, "the old upload to end")
	time.Sleep(500 * time.Millisecond) // the old job's ending
	e.checkDone(p, fresh)
}

// Item 5: long names get their sidecars; a name whose sidecar name cannot fit gets the
// documented fallback name.
func TestLongNames(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	for _, n := range []int{229, 240, 244, 245, 255} {
		name := strings.Repeat("n", n-4) + ".bin"
		p := filepath.Join(e.inbox, name)
		data := []byte(name)
		write(t, p, data)
		e.checkDone(p, data)
		sp := service.SidecarPath(p)
		if base := filepath.Base(sp); len(base) > 255 || !strings.HasSuffix(base, ".chute.json") {
			t.Fatalf("%d-byte name: sidecar name %q (%d bytes)", n, base, len(base))
		}
		if n <= 244 && sp != p+".chute.json" {
			t.Fatalf("%d-byte name: sidecar at %s, want beside as <file>.chute.json", n, sp)
		}
		if sc := e.sidecar(p); sc.File != name {
			t.Fatalf("%d-byte name: sidecar names file %q", n, sc.File)
		}
	}
}

// Item 6: after: move never overwrites a file moved before; both are kept.
func TestMoveKeepsBoth(t *testing.T) {
	e := newEnv(t, "")
	moved := filepath.Join(e.dir, "done")
	e.cfg.Folders[0].After = configs.AfterMove
	e.cfg.Folders[0].MoveTo = moved
	e.start()
	p := filepath.Join(e.inbox, "report.pdf")
	first, second := []byte("first report"), []byte("second report")
	write(t, p, first)
	e.checkDone(filepath.Join(moved, "report.pdf"), first)
	write(t, p, second)
	e.checkDone(filepath.Join(moved, "report (2).pdf"), second)
	e.checkDone(filepath.Join(moved, "report.pdf"), first)
}

// Item 7: a sidecar that cannot be written when it is due is written once it can be, while
// running and after a restart.
func TestSidecarWrittenOnceItCanBe(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	p := filepath.Join(e.inbox, "a.mp4")
	block := service.SidecarPath(p)
	// A directory where the sidecar goes makes its rename fail, as a full disk would.
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, p, []byte("aaa"))
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "sidecar failed") }, "the sidecar to fail")
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	e.checkDone(p, []byte("aaa"))

	// Across a restart.
	q := filepath.Join(e.inbox, "b.mp4")
	blockQ := service.SidecarPath(q)
	if err := os.MkdirAll(filepath.Join(blockQ, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, q, []byte("bbb"))
	waitFor(t, func() bool { return strings.Count(e.logs.String(), "sidecar failed") >= 2 }, "the second sidecar to fail")
	e.stop()
	if err := os.RemoveAll(blockQ); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.checkDone(q, []byte("bbb"))

	// A sidecar deleted by hand is written again at the next start.
	e.stop()
	if err := os.Remove(service.SidecarPath(p)); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.checkDone(p, []byte("aaa"))
	if got := e.srv.Stats().Created; got != 2 {
		t.Fatalf("tusd has %d uploads for 2 files", got)
	}
}

// Item 11: a queued file replaced by a FIFO does not block a worker, and a stop stops.
func TestFIFODoesNotHang(t *testing.T) {
	e := newEnv(t, "")
	first, fifo := e.queueBehindStall("pipe.mp4", []byte("soon a fifo"))
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv.Stall(false)
	e.checkDone(first, []byte("first"))
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "not a regular file") }, "the FIFO to be refused")
	after := filepath.Join(e.inbox, "after.mp4")
	write(t, after, []byte("after"))
	e.checkDone(after, []byte("after"))
	e.stop() // fails the test if it takes more than 10s
}

// Item 12: a Retry-After wait is not an attempt.
func TestRetryAfterIsNotAnAttempt(t *testing.T) {
	e := newEnv(t, "")
	e.srv.FailNext(4, 429, time.Second)
	e.start()
	p := filepath.Join(e.inbox, "a.mp4")
	write(t, p, []byte("patience"))
	e.checkDone(p, []byte("patience"))
	if sc := e.sidecar(p); sc.Attempts != 1 {
		t.Fatalf("four 429s then success: attempts %d, want 1", sc.Attempts)
	}
}

// Item 13: with the provider down, queued files wait unharmed and go once it is back.
func TestOutageWaitsUnharmed(t *testing.T) {
	e := newEnv(t, "")
	e.srv.FailNext(1<<30, 503, 0)
	e.start()
	var files []string
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		p := filepath.Join(e.inbox, n+".mp4")
		write(t, p, []byte(n))
		files = append(files, p)
	}
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "unreachable or failing every request") }, "the outage to be noticed")
	// Long enough for every job to use up max_attempts (3) at a 50-200ms backoff.
	time.Sleep(3 * time.Second)
	for _, p := range files {
		if sc, err := service.ReadSidecar(p); err == nil {
			t.Fatalf("%s got a sidecar during the outage: %+v", p, sc)
		}
	}
	e.srv.FailNext(0, 0, 0)
	for _, p := range files {
		e.checkDone(p, []byte(filepath.Base(p)[:1]))
		if sc := e.sidecar(p); sc.Attempts > 3 {
			t.Errorf("%s: attempts %d", p, sc.Attempts)
		}
	}
}

// With after: keep the result is committed with the done state, after the sidecar. A crash
// between the two (the job still uploading, no result in the database, the sidecar on disk)
// takes the sidecar's result by hash at the next start: nothing is uploaded again. A done
// sidecar a power loss left empty (it is not fsynced by itself) is written again at start.
func TestCrashBetweenSidecarAndDoneCommit(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	p := filepath.Join(e.inbox, "a.bin")
	data := bytes.Repeat([]byte("k"), 4096)
	write(t, p, data)
	e.checkDone(p, data)
	url := e.sidecar(p).URL
	e.stop()
	created := e.srv.Stats().Created

	st, err := store.Open(e.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(context.Background(), 1, func(j *store.Job) error {
		j.State, j.Result, j.SHA256, j.Sent, j.Checkpoint, j.Sidecar = store.Uploading, nil, "", 0, nil, ""
		j.Attempts = 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	e.start()
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "msg=done") }, "the job to end")
	e.checkDone(p, data)
	if got := e.srv.Stats().Created; got != created {
		t.Fatalf("the file was uploaded again after the crash (%d uploads, want %d)", got, created)
	}
	if !strings.Contains(e.logs.String(), "not uploading again") || e.sidecar(p).URL != url {
		t.Fatalf("the sidecar's result was not adopted; logs:\n%s", e.logs)
	}
	e.stop()

	if err := os.Truncate(service.SidecarPath(p), 0); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitSidecar(p, func(s *service.Sidecar) bool { return s.Status == "done" && s.URL == url }, "the empty sidecar to be written again")
	e.checkDone(p, data)
	if got := e.srv.Stats().Created; got != created {
		t.Fatalf("an empty sidecar made the file upload again (%d uploads, want %d)", got, created)
	}
}
