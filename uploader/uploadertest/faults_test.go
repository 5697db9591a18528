package uploadertest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

func TestFaults(t *testing.T) {
	var f uploadertest.Faults
	f.Write = func(w http.ResponseWriter, status int) {
		w.WriteHeader(status)
		io.WriteString(w, `{"error":"injected"}`)
	}
	l, err := uploadertest.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := uploadertest.Serve(l, f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
	})))
	defer srv.Close()
	base := "http://" + l.Addr().String()
	c := uploader.NewClient(uploader.ClientOptions{})
	defer c.CloseIdle()
	ctx := context.Background()

	f.FailNext(2, http.StatusTooManyRequests, 1500*time.Millisecond)
	for i := range 2 {
		_, err := c.Send(ctx, &uploader.Request{URL: base + "/a"})
		if cl, after := uploader.Classify(err); cl != uploader.RetryAfter || after != 1500*time.Millisecond || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("failure %d: %v classed %v after %v", i, err, cl, after)
		}
	}
	if _, err := c.Send(ctx, &uploader.Request{Method: "PUT", URL: base + "/b", Form: map[string][]string{"k": {"v"}}, Expect: []int{201}}); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
	recs := f.Requests()
	if len(recs) != 3 || recs[0].Status != 429 || recs[2].Method != "PUT" || recs[2].Path != "/b" || recs[2].BodyBytes != 3 || recs[2].Status != 201 {
		t.Fatalf("records %+v", recs)
	}
	if f.BodyBytes("PUT") != 3 || f.BodyBytes("") != 3 {
		t.Fatalf("body bytes %d", f.BodyBytes("PUT"))
	}

	f.Stall(true)
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c.Send(sctx, &uploader.Request{URL: base + "/c"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled: %v", err)
	}
	f.Stall(false)

	f.Throttle(20 << 10)
	start := time.Now()
	body := strings.Repeat("x", 10<<10)
	if _, err := c.Send(ctx, &uploader.Request{Method: "POST", URL: base + "/d", Form: map[string][]string{"b": {body}}, Expect: []int{201}}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("10 KiB at 20 KiB/s took %v", took)
	}
}

func TestFakeDefaultReadsFile(t *testing.T) {
	path := uploadertest.MakeFile(t, t.TempDir(), "a.mp4", 600<<10)
	f := uploadertest.OpenFile(t, path)
	var seen int64
	f.Observe(func(p []byte, off int64) { seen += int64(len(p)) })
	fake := &uploadertest.Fake{Digests: []uploader.Digest{uploader.MD5}}
	var last int64
	res, err := fake.Upload(context.Background(), &uploader.Job{File: f, Digests: map[uploader.Digest]string{uploader.MD5: "x"}, Progress: func(n int64) { last = n }})
	if err != nil || res.ID != "a.mp4" || seen != f.Size || last != f.Size {
		t.Fatalf("res %+v err %v; observed %d, progress %d of %d", res, err, seen, last, f.Size)
	}
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].Digests[uploader.MD5] != "x" || calls[0].Size != f.Size {
		t.Fatalf("calls %+v", calls)
	}
	fake.UploadFunc = func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error) {
		return uploader.Result{}, uploader.RateLimitError(time.Minute, errors.New("slow down"))
	}
	if _, err := fake.Upload(context.Background(), &uploader.Job{File: f}); err == nil {
		t.Fatal("UploadFunc not used")
	}
	typ := uploadertest.FakeType("fake", fake)
	if p, err := typ.New(uploader.Env{}, typ.NewOptions()); err != nil || p != fake {
		t.Fatalf("FakeType: %v %v", p, err)
	}
}
