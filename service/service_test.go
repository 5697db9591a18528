package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/tus"
	"github.com/chute-dev/chute/uploader/tus/tustest"
)

// env is a daemon on a temporary folder mapped to an in-process tusd.
type env struct {
	t      *testing.T
	dir    string
	inbox  string
	state  string
	srv    *tustest.Server
	cfg    *configs.Config
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	// tune, when set, adjusts the daemon's options before each start.
	tune func(*service.Options)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func registry() *uploader.Registry { return uploader.NewRegistry(tus.Type()) }

// loadConfig parses a config through the real loader.
func loadConfig(t *testing.T, dir, text string) *configs.Config {
	t.Helper()
	reg := registry()
	path := filepath.Join(dir, "chute.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path, configs.Options{Types: func(name string) (configs.TypeInfo, bool) {
		ty, ok := reg.Lookup(name)
		return configs.TypeInfo{NewOptions: ty.NewOptions, EndpointRequired: ty.DefaultEndpoint == ""}, ok
	}})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	srv, err := tustest.Start(tustest.Options{Dir: filepath.Join(dir, "tusd"), MaxSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, dir: dir, inbox: filepath.Join(dir, "inbox"), state: filepath.Join(dir, "state.db"), srv: srv}
	if err := os.MkdirAll(e.inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg = loadConfig(t, dir, fmt.Sprintf(`
state: %s
providers:
  own:
    type: tus
    endpoint: %s
    max_attempts: 3
%s
folders:
  - path: %s
    provider: own
    settle: 200ms
`, e.state, srv.URL, extra, e.inbox))
	return e
}

func (e *env) start() {
	e.t.Helper()
	e.logs = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := service.Options{Config: e.cfg, Registry: registry(), Logger: log, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if e.tune != nil {
		e.tune(&opts)
	}
	d, err := service.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- d.Run(ctx) }()
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("daemon stopped with %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("daemon did not stop within 10s")
	}
	e.cancel = nil
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sidecar waits for the file's sidecar and returns it.
func (e *env) sidecar(path string) *service.Sidecar {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sc, err := service.ReadSidecar(path)
		if err == nil {
			return sc
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no sidecar for %s after 20s; logs:\n%s", path, e.logs)
	return nil
}

// checkDone asserts a done sidecar whose url names an upload at tusd holding the file's bytes.
func (e *env) checkDone(path string, want []byte) {
	e.t.Helper()
	sc := e.sidecar(path)
	for deadline := time.Now().Add(20 * time.Second); sc.Status != "done" && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		sc = e.sidecar(path)
	}
	if sc.Status != "done" {
		e.t.Fatalf("%s: sidecar status %q, error %q", path, sc.Status, sc.Error)
	}
	if sc.Size != int64(len(want)) || sc.File != filepath.Base(path) || sc.Provider != "tus" || sc.ProviderName != "own" {
		e.t.Fatalf("%s: sidecar %+v", path, sc)
	}
	sum := sha256.Sum256(want)
	if sc.SHA256 != hex.EncodeToString(sum[:]) {
		e.t.Fatalf("%s: sidecar sha256 %s, want %x", path, sc.SHA256, sum)
	}
	if !strings.HasPrefix(sc.URL, e.srv.URL) || !strings.HasSuffix(sc.URL, "/"+sc.ID) {
		e.t.Fatalf("%s: sidecar url %q id %q do not name an upload at %s", path, sc.URL, sc.ID, e.srv.URL)
	}
	rc, err := e.srv.Stored(sc.ID)
	if err != nil {
		e.t.Fatalf("%s: tusd has no upload %s: %v", path, sc.ID, err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, want) {
		e.t.Fatalf("%s: tusd holds %d bytes that differ from the file's %d", path, len(got), len(want))
	}
}

func TestEndToEnd(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	files := map[string][]byte{
		"a.mp4":                      bytes.Repeat([]byte("a"), 1<<20),
		"with space 'and' \"q\".mp4": []byte("quotes"),
		"ünïcødé ファイル.webm":          []byte("non-ascii"),
		"empty.mp4":                  {},
	}
	for name, data := range files {
		write(t, filepath.Join(e.inbox, name), data)
	}
	// A file written in slow appends: one upload, of the whole file, after the last write.
	slow := filepath.Join(e.inbox, "slow.mp4")
	var slowData []byte
	f, err := os.Create(slow)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		chunk := bytes.Repeat([]byte{byte('0' + i)}, 4096)
		slowData = append(slowData, chunk...)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond)
	}
	f.Close()
	// A file in a subdirectory made while running.
	sub := filepath.Join(e.inbox, "new", "deeper", "clip.mp4")
	write(t, sub, []byte("in a new subdirectory"))

	for name, data := range files {
		e.checkDone(filepath.Join(e.inbox, name), data)
	}
	e.checkDone(slow, slowData)
	e.checkDone(sub, []byte("in a new subdirectory"))
	if got := e.srv.Stats().Created; got != len(files)+2 {
		t.Errorf("tusd created %d uploads for %d files", got, len(files)+2)
	}

	// A restart after everything is done uploads nothing.
	e.stop()
	before := e.srv.Stats()
	e.start()
	time.Sleep(time.Second) // several settle periods: the initial scan has reported everything
	e.stop()
	if after := e.srv.Stats(); after != before {
		t.Errorf("a restart with everything done uploaded again: %+v -> %+v", before, after)
	}
	st, err := store.Open(e.state, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts, _ := st.Counts()
	if counts[store.Done] != len(files)+2 || counts[store.Done] != sum(counts) {
		t.Errorf("state database counts %v, want %d done", counts, len(files)+2)
	}
}

func sum(m map[store.State]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// A file the server refuses gets a failed sidecar that says what to do; the daemon goes on.
func TestPermanentFailureWritesFailedSidecar(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	big := filepath.Join(e.inbox, "too big.mp4")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(65 << 20); err != nil { // over the server's 64 MiB limit
		t.Fatal(err)
	}
	f.Close()
	ok := filepath.Join(e.inbox, "ok.mp4")
	write(t, ok, []byte("fine"))
	sc := e.sidecar(big)
	if sc.Status != "failed" || sc.URL != "" {
		t.Fatalf("sidecar of a refused file: %+v", sc)
	}
	if !strings.Contains(sc.Error, "413") || !strings.Contains(sc.Error, "chute retry") {
		t.Fatalf("failed sidecar's error does not say what happened and what to do: %q", sc.Error)
	}
	if sc.Attempts != 1 {
		t.Errorf("a permanent error was tried %d times", sc.Attempts)
	}
	e.checkDone(ok, []byte("fine"))
}

// Transient server errors are retried; retries used up give a failed sidecar.
func TestTransientErrorsRetriedThenGiveUp(t *testing.T) {
	e := newEnv(t, "")
	e.srv.FailNext(2, 503, 0)
	e.start()
	p := filepath.Join(e.inbox, "flaky.mp4")
	write(t, p, []byte("flaky"))
	e.checkDone(p, []byte("flaky"))
	if sc := e.sidecar(p); sc.Attempts != 3 {
		t.Errorf("two 503s then success took %d attempts, want 3", sc.Attempts)
	}

	e.srv.FailNext(100, 503, 0)
	q := filepath.Join(e.inbox, "down.mp4")
	write(t, q, []byte("server down"))
	sc := e.sidecar(q)
	if sc.Status != "failed" || sc.Attempts != 3 || !strings.Contains(sc.Error, "gave up after 3 attempts") {
		t.Fatalf("after max_attempts: %+v", sc)
	}
	e.srv.FailNext(0, 0, 0)
}

// queueBehindStall starts the daemon with its one worker held by an upload to a stalled
// server (first.mp4), then queues a second file behind it. The caller unstalls the server.
func (e *env) queueBehindStall(name string, data []byte) (first, second string) {
	e.t.Helper()
	e.cfg.Providers["own"].Concurrency, e.cfg.Providers["own"].SmallConcurrency = 1, 1
	e.srv.Stall(true)
	e.start()
	first = filepath.Join(e.inbox, "first.mp4")
	write(e.t, first, []byte("first"))
	waitFor(e.t, func() bool { return strings.Contains(e.logs.String(), "msg=uploading") }, "the first upload to start")
	second = filepath.Join(e.inbox, name)
	write(e.t, second, data)
	waitFor(e.t, func() bool { return strings.Contains(e.logs.String(), fmt.Sprintf("%s size=%d", name, len(data))) }, "the second file to be queued")
	return first, second
}

// uploadUnderWay starts the daemon with tusd throttled to rate bytes a second, drops data as
// name and waits until more than past bytes of it have arrived. It returns the file's path;
// the caller lifts the throttle.
func (e *env) uploadUnderWay(name string, data []byte, rate, past int64, what string) string {
	e.t.Helper()
	e.srv.Throttle(rate)
	e.start()
	p := filepath.Join(e.inbox, name)
	write(e.t, p, data)
	waitFor(e.t, func() bool { return e.srv.Stats().BytesReceived > past }, what)
	return p
}

// A file deleted before its upload starts is dropped with a clear log line; others go on.
func TestDeletedBeforeUpload(t *testing.T) {
	e := newEnv(t, "")
	first, gone := e.queueBehindStall("gone.mp4", []byte("gone"))
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	e.srv.Stall(false)
	e.checkDone(first, []byte("first"))
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "deleted before it was uploaded") }, "the deleted file to be reported")
	if _, err := os.Stat(service.SidecarPath(gone)); err == nil {
		t.Error("a sidecar was written for a deleted file")
	}
	after := filepath.Join(e.inbox, "after.mp4")
	write(t, after, []byte("after"))
	e.checkDone(after, []byte("after"))
}

// A graceful stop in the middle of an upload leaves it resumable: the next start continues
// from the server's offset, with the same upload.
func TestGracefulStopResumes(t *testing.T) {
	e := newEnv(t, "")
	data := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB: 4s at 8 MiB/s
	p := e.uploadUnderWay("big.mp4", data, 8<<20, 8<<20, "a quarter of the file to arrive")
	e.stop()
	mid := e.srv.Stats()
	if mid.BytesReceived >= int64(len(data)) {
		t.Fatal("the upload finished before the stop: the test proves nothing")
	}
	e.srv.Throttle(0)
	e.start()
	e.checkDone(p, data)
	end := e.srv.Stats()
	if end.Created != 1 {
		t.Errorf("resume created %d uploads, want 1", end.Created)
	}
	if end.BytesReceived > int64(len(data))*11/10 {
		t.Errorf("tusd received %d bytes for a %d-byte file", end.BytesReceived, len(data))
	}
	if sc := e.sidecar(p); sc.Attempts != 1 {
		t.Errorf("a stop counted as a failed attempt: attempts %d", sc.Attempts)
	}
}

func TestAfterMoveAndDelete(t *testing.T) {
	e := newEnv(t, "")
	moved := filepath.Join(e.dir, "done")
	e.cfg.Folders[0].After = configs.AfterMove
	e.cfg.Folders[0].MoveTo = moved
	e.start()
	p := filepath.Join(e.inbox, "sub", "m.mp4")
	write(t, p, []byte("move me"))
	dest := filepath.Join(moved, "sub", "m.mp4")
	e.checkDone(dest, []byte("move me"))
	if _, err := os.Stat(p); err == nil {
		t.Error("the original is still in the inbox after after: move")
	}
	e.stop()

	e.cfg.Folders[0].After = configs.AfterDelete
	e.start()
	q := filepath.Join(e.inbox, "d.mp4")
	write(t, q, []byte("delete me"))
	sc := e.sidecar(q)
	if sc.Status != "done" {
		t.Fatalf("sidecar %+v", sc)
	}
	waitFor(t, func() bool { _, err := os.Stat(q); return os.IsNotExist(err) }, "the uploaded file to be deleted")
}

// status and retry reach a running daemon through its control socket.
func TestControlSocket(t *testing.T) {
	e := newEnv(t, "")
	e.srv.FailNext(1000, 503, 0)
	e.start()
	p := filepath.Join(e.inbox, "outage.mp4")
	write(t, p, []byte("during an outage"))
	if sc := e.sidecar(p); sc.Status != "failed" {
		t.Fatalf("sidecar %+v", sc)
	}
	// The failed sidecar is written just before the state: wait for it.
	var jobs []service.JobStatus
	waitFor(t, func() bool {
		var err error
		jobs, err = service.QueryJobs(context.Background(), e.state)
		return err == nil && len(jobs) == 1 && jobs[0].State == store.Failed
	}, "the job to be failed")
	if len(jobs) != 1 || jobs[0].State != store.Failed || !strings.Contains(jobs[0].LastError, "503") {
		t.Fatalf("jobs from the socket: %+v", jobs)
	}
	e.srv.FailNext(0, 0, 0) // the outage ends
	ids, err := service.RequestRetry(context.Background(), e.state, nil, true)
	if err != nil || len(ids) != 1 || ids[0] != jobs[0].ID {
		t.Fatalf("retry --failed: %v %v", ids, err)
	}
	e.checkDone(p, []byte("during an outage"))
	if _, err := service.RequestRetry(context.Background(), e.state, []uint64{jobs[0].ID}, false); err == nil || !strings.Contains(err.Error(), "not failed") {
		t.Fatalf("retry of a done job: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// Secrets in the config (headers, credentials in the endpoint URL) never reach logs, sidecars
// or status, through failures and success alike.
func TestSecretsStayOut(t *testing.T) {
	e := newEnv(t, `    headers: {Authorization: "Bearer TOPSECRET-header"}`)
	e.cfg.Providers["own"].Endpoint = strings.Replace(e.srv.URL, "http://", "http://user:TOPSECRET-pass@", 1)
	e.srv.FailNext(1, 500, 0)
	e.start()
	p := filepath.Join(e.inbox, "a.mp4")
	write(t, p, []byte("a"))
	e.checkDone(p, []byte("a"))
	e.srv.FailNext(100, 401, 0)
	q := filepath.Join(e.inbox, "b.mp4")
	write(t, q, []byte("b"))
	if sc := e.sidecar(q); sc.Status != "failed" {
		t.Fatalf("sidecar %+v", sc)
	}
	jobs, err := service.QueryJobs(context.Background(), e.state)
	if err != nil {
		t.Fatal(err)
	}
	e.stop()
	var seen bytes.Buffer
	seen.WriteString(e.logs.String())
	for _, f := range []string{p, q} {
		b, _ := os.ReadFile(service.SidecarPath(f))
		seen.Write(b)
	}
	fmt.Fprintf(&seen, "%+v", jobs)
	if strings.Contains(seen.String(), "TOPSECRET") {
		t.Fatalf("a secret leaked into logs, sidecars or status:\n%s", seen.String())
	}
	if !strings.Contains(seen.String(), "401") {
		t.Fatalf("the failure is not reported at all:\n%s", seen.String())
	}
}

// The optional HTTP listener serves health, jobs and Prometheus metrics.
func TestStatusHTTP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newEnv(t, "")
	e.cfg.Listen = addr
	e.start()
	p := filepath.Join(e.inbox, "a.mp4")
	write(t, p, []byte("a"))
	e.checkDone(p, []byte("a"))
	get := func(path string) string {
		var body string
		waitFor(t, func() bool {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == http.StatusOK
		}, "GET "+path)
		return body
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("/healthz: %q", got)
	}
	// The sidecar is written just before the job is marked done: wait for the state.
	var m string
	waitFor(t, func() bool {
		m = get("/metrics")
		return strings.Contains(m, `chute_jobs{provider="own",state="done"} 1`)
	}, "the job done in /metrics")
	for _, want := range []string{`chute_jobs{provider="own",state="done"} 1`, `chute_jobs_finished_total{provider="own",state="done"} 1`, `chute_uploaded_bytes_total{provider="own"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}
	if j := get("/v1/jobs"); !strings.Contains(j, `"state":"done"`) {
		t.Errorf("/v1/jobs: %s", j)
	}
}
