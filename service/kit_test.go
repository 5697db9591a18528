package service_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

// fakeEnv is a daemon whose providers are uploadertest.Fakes, one inbox each.
type fakeEnv struct {
	t      *testing.T
	dir    string
	inbox  map[string]string
	logs   *syncBuffer
	cancel context.CancelFunc
	cfg    *configs.Config
	reg    *uploader.Registry
	stop   func() // stops the daemon run started last and waits for it (once)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func startFakes(t *testing.T, fakes map[string]*uploadertest.Fake, concurrency int) *fakeEnv {
	t.Helper()
	dir := t.TempDir()
	var types []uploader.Type
	text := fmt.Sprintf("state: %s/state.db\nproviders:\n", dir)
	folders := "folders:\n"
	e := &fakeEnv{t: t, dir: dir, inbox: map[string]string{}, logs: &syncBuffer{}}
	for name, f := range fakes {
		types = append(types, uploadertest.FakeType("fake-"+name, f))
		conc := "" // concurrency 0: not given, the defaults
		if concurrency > 0 {
			conc = fmt.Sprintf(", concurrency: %d", concurrency)
		}
		text += fmt.Sprintf("  %s: {type: fake-%s, endpoint: \"http://127.0.0.1:9/\"%s, max_attempts: 3}\n", name, name, conc)
		e.inbox[name] = filepath.Join(dir, "inbox-"+name)
		if err := os.MkdirAll(e.inbox[name], 0o755); err != nil {
			t.Fatal(err)
		}
		folders += fmt.Sprintf("  - {path: %s, provider: %s, settle: 100ms}\n", e.inbox[name], name)
	}
	reg := uploader.NewRegistry(types...)
	path := filepath.Join(dir, "chute.yaml")
	if err := os.WriteFile(path, []byte(text+folders), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path, configs.Options{Types: func(name string) (configs.TypeInfo, bool) {
		ty, ok := reg.Lookup(name)
		return configs.TypeInfo{NewOptions: ty.NewOptions, EndpointRequired: ty.DefaultEndpoint == ""}, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg, e.reg = cfg, reg
	e.run()
	return e
}

// run starts a daemon on e's config and state; e.stop (or the test's end) stops it.
func (e *fakeEnv) run() {
	t := e.t
	d, err := service.New(service.Options{Config: e.cfg, Registry: e.reg, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e.cancel = cancel
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("daemon did not stop")
			}
		})
	}
	t.Cleanup(e.stop)
}

func (e *fakeEnv) doneSidecar(t *testing.T, path string) *service.Sidecar {
	t.Helper()
	var sc *service.Sidecar
	waitFor(t, func() bool {
		s, err := service.ReadSidecar(path)
		sc = s
		return err == nil && s.Status == "done"
	}, "a done sidecar for "+path)
	return sc
}

// A rate-limit answer holds back every worker of that provider until its time has passed,
// and not those of another provider; the wait is not an attempt.
func TestRateLimitPausesTheProvider(t *testing.T) {
	const pause = 1500 * time.Millisecond
	var mu sync.Mutex
	var limitedAt time.Time
	var startsAfter []time.Time
	limited := &uploadertest.Fake{UploadFunc: func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error) {
		mu.Lock()
		if call == 1 {
			mu.Unlock()
			time.Sleep(100 * time.Millisecond) // the others are queued by now
			mu.Lock()
			limitedAt = time.Now()
			mu.Unlock()
			return uploader.Result{}, uploader.RateLimitError(pause, errors.New("account rate limit"))
		}
		if !limitedAt.IsZero() {
			startsAfter = append(startsAfter, time.Now())
		}
		mu.Unlock()
		return uploadertest.ReadAll(ctx, job)
	}}
	other := &uploadertest.Fake{}
	e := startFakes(t, map[string]*uploadertest.Fake{"limited": limited, "other": other}, 2)
	var lim []string
	for i := 0; i < 4; i++ {
		p := filepath.Join(e.inbox["limited"], fmt.Sprintf("l%d.bin", i))
		write(t, p, []byte(p))
		lim = append(lim, p)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return !limitedAt.IsZero() }, "the rate-limit answer")
	start := time.Now()
	o := filepath.Join(e.inbox["other"], "o.bin")
	write(t, o, []byte("other"))
	e.doneSidecar(t, o)
	if took := time.Since(start); took > pause {
		t.Errorf("another provider's upload waited %v: the pause held it back too", took)
	}
	for _, p := range lim {
		if sc := e.doneSidecar(t, p); sc.Attempts != 1 {
			t.Errorf("%s: attempts %d; a rate-limit wait is not an attempt", p, sc.Attempts)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, at := range startsAfter {
		if early := limitedAt.Add(pause).Sub(at); early > 50*time.Millisecond {
			t.Errorf("an upload of the rate-limited provider started %v before the pause ended", early)
		}
	}
	if len(startsAfter) == 0 {
		t.Fatal("no upload started after the rate limit: the test proves nothing")
	}
}

// A provider that needs an md5 gets it (and the sidecar its SHA-256) from one read before the
// first call; a resumed call gets the same digests without the file being hashed again.
func TestDigestsBeforeUpload(t *testing.T) {
	data := make([]byte, 3<<20+11)
	for i := range data {
		data[i] = byte(i * 31)
	}
	sum := md5.Sum(data)
	want := hex.EncodeToString(sum[:])
	needy := &uploadertest.Fake{Digests: []uploader.Digest{uploader.MD5}, UploadFunc: func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error) {
		if call == 1 {
			// Read a little, then fail: the next call resumes.
			io.CopyN(io.Discard, job.File.Section(0), 1<<20)
			return uploader.Result{}, uploader.TransientError(errors.New("cut"))
		}
		return uploadertest.ReadAll(ctx, job)
	}}
	plain := &uploadertest.Fake{}
	e, p, q := dropInBoth(t, needy, plain, 1, data)
	scP, scQ := e.doneSidecar(t, p), e.doneSidecar(t, q)
	if scP.SHA256 != sha(data) || scQ.SHA256 != sha(data) {
		t.Fatalf("sidecar sha256 %s / %s, want %s", scP.SHA256, scQ.SHA256, sha(data))
	}
	calls := needy.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	for i, c := range calls {
		if c.Digests[uploader.MD5] != want {
			t.Errorf("call %d got md5 %q, want %s", i+1, c.Digests[uploader.MD5], want)
		}
	}
	if c := plain.Calls(); len(c) != 1 || len(c[0].Digests) != 0 {
		t.Errorf("a provider that needs no digest got %+v", c)
	}
}

// dropInBoth starts a daemon with the providers needy and plain and drops data as v.mp4 into
// each one's folder (p: needy's, q: plain's).
func dropInBoth(t *testing.T, needy, plain *uploadertest.Fake, concurrency int, data []byte) (e *fakeEnv, p, q string) {
	t.Helper()
	e = startFakes(t, map[string]*uploadertest.Fake{"needy": needy, "plain": plain}, concurrency)
	p = filepath.Join(e.inbox["needy"], "v.mp4")
	q = filepath.Join(e.inbox["plain"], "v.mp4")
	write(t, p, data)
	write(t, q, data)
	return e, p, q
}

// The engine hands a provider the file's path under its folder (xvid's object keys use it).
func TestRelPathGiven(t *testing.T) {
	var mu sync.Mutex
	got := map[string]bool{}
	f := &uploadertest.Fake{UploadFunc: func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error) {
		mu.Lock()
		got[job.File.RelPath] = true
		mu.Unlock()
		return uploadertest.ReadAll(ctx, job)
	}}
	e := startFakes(t, map[string]*uploadertest.Fake{"p": f}, 2)
	a := filepath.Join(e.inbox["p"], "cam1", "clip.mp4")
	b := filepath.Join(e.inbox["p"], "cam2", "clip.mp4")
	write(t, a, []byte("a"))
	write(t, b, []byte("b"))
	e.doneSidecar(t, a)
	e.doneSidecar(t, b)
	mu.Lock()
	defer mu.Unlock()
	if !got["cam1/clip.mp4"] || !got["cam2/clip.mp4"] {
		t.Fatalf("RelPath seen: %v", got)
	}
}

// Without a concurrency in the config, small files run many at once (up to
// DefaultSmallConcurrency in all), and files of SmallFile or more at most DefaultConcurrency
// at once; with one, it bounds files of every size.
func TestSmallFilesManyInFlight(t *testing.T) {
	for _, given := range []int{0, 3} {
		t.Run(fmt.Sprintf("concurrency %d", given), func(t *testing.T) {
			var mu sync.Mutex
			var small, large, maxSmall, maxLarge, maxAll int
			f := &uploadertest.Fake{UploadFunc: func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error) {
				isLarge := job.File.Size >= configs.SmallFile
				mu.Lock()
				if isLarge {
					large++
				} else {
					small++
				}
				maxSmall, maxLarge, maxAll = max(maxSmall, small), max(maxLarge, large), max(maxAll, small+large)
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				if isLarge {
					large--
				} else {
					small--
				}
				mu.Unlock()
				if _, err := io.Copy(io.Discard, job.File.Section(0)); err != nil {
					return uploader.Result{}, err
				}
				return uploader.Result{ID: job.File.Name, URL: "http://127.0.0.1:9/" + job.File.Name}, nil
			}}
			e := startFakes(t, map[string]*uploadertest.Fake{"p": f}, given)
			var paths []string
			for i := range 5 {
				p := filepath.Join(e.inbox["p"], fmt.Sprintf("large%d.bin", i))
				write(t, p, make([]byte, configs.SmallFile))
				paths = append(paths, p)
			}
			for i := range 40 {
				p := filepath.Join(e.inbox["p"], fmt.Sprintf("small%02d.bin", i))
				write(t, p, []byte(p))
				paths = append(paths, p)
			}
			for _, p := range paths {
				e.doneSidecar(t, p)
			}
			mu.Lock()
			defer mu.Unlock()
			wantLarge, wantAll := configs.DefaultConcurrency, configs.DefaultSmallConcurrency
			if given > 0 {
				wantLarge, wantAll = given, given
			}
			if maxLarge > wantLarge || maxAll > wantAll {
				t.Fatalf("at most %d large files and %d in all at once, want <= %d and <= %d", maxLarge, maxAll, wantLarge, wantAll)
			}
			if given == 0 && maxSmall <= configs.DefaultConcurrency {
				t.Fatalf("at most %d small files at once with the default config: they wait like large ones", maxSmall)
			}
		})
	}
}

// A large file is hashed once, off its upload's path (ahead while it settles, or beside the
// upload): the digests its provider needs first and the sidecar's SHA-256 come from that one
// pass, for a provider that needs an MD5 before it uploads and for one that needs none.
func TestLargeFileHashedOnce(t *testing.T) {
	data := make([]byte, 6<<20+5)
	for i := range data {
		data[i] = byte(i * 13)
	}
	m := md5.Sum(data)
	needy := &uploadertest.Fake{Digests: []uploader.Digest{uploader.MD5}}
	plain := &uploadertest.Fake{}
	e, p, q := dropInBoth(t, needy, plain, 0, data)
	for _, path := range []string{p, q} {
		if sc := e.doneSidecar(t, path); sc.SHA256 != sha(data) {
			t.Fatalf("%s: sidecar sha256 %s, want %s", path, sc.SHA256, sha(data))
		}
		if n := strings.Count(e.logs.String(), "msg=hashed file="+path+" "); n != 1 {
			t.Fatalf("%s hashed %d times, want once; logs:\n%s", path, n, e.logs)
		}
	}
	if c := needy.Calls(); len(c) != 1 || c[0].Digests[uploader.MD5] != hex.EncodeToString(m[:]) {
		t.Fatalf("the provider that needs an MD5 got %+v", c)
	}
}

// A stop that comes as a large file's upload ends, before its hash (ahead of and beside the
// upload) has, loses neither: the result is kept, and the next start hashes the file and
// writes a true sidecar without uploading it again. The file is large enough that its hash
// outlasts the settle and the (instant) upload.
func TestStopBeforeTheHashEnds(t *testing.T) {
	uploaded := make(chan struct{})
	var once sync.Once
	var e *fakeEnv
	fake := &uploadertest.Fake{UploadFunc: func(ctx context.Context, job *uploader.Job, call int) (uploader.Result, error) {
		once.Do(func() {
			e.cancel() // the stop comes with the upload's answer
			close(uploaded)
		})
		return uploader.Result{ID: "x1", URL: "https://fake.example/x1"}, nil
	}}
	e = startFakes(t, map[string]*uploadertest.Fake{"f": fake}, 0)
	p := filepath.Join(e.inbox["f"], "big.mp4")
	want := writeLarge(t, p, 256<<20)
	select {
	case <-uploaded:
	case <-time.After(20 * time.Second):
		t.Fatalf("no upload; logs:\n%s", e.logs)
	}
	e.stop()
	if sc, err := service.ReadSidecar(p); err == nil && sc.SHA256 != want {
		t.Fatalf("a sidecar with sha256 %q, want %s", sc.SHA256, want)
	}
	cut := !strings.Contains(e.logs.String(), "msg=hashed")
	e.run()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs)
		}
	})
	if sc := e.doneSidecar(t, p); sc.SHA256 != want || sc.URL != "https://fake.example/x1" {
		t.Fatalf("sidecar after the restart: sha256 %q url %q", sc.SHA256, sc.URL)
	}
	if n := len(fake.Calls()); n != 1 {
		t.Fatalf("the file was uploaded %d times, want once", n)
	}
	t.Logf("the stop cut the hash: %v", cut)
}

// writeLarge writes n bytes of a pattern to path a MiB at a time and returns their SHA-256.
func writeLarge(t *testing.T, path string, n int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for i := 0; i < n; i += len(buf) {
		for j := range buf {
			buf[j] = byte(j*7 + i>>20)
		}
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
