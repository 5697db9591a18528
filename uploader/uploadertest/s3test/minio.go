package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/chute-dev/chute/uploader/uploadertest"
)

// MinIOEnv names the variable that can give the MinIO server binary's path.
const MinIOEnv = "CHUTE_MINIO"

// InstallHint says how to get MinIO, or how to run without it.
const InstallHint = "install the MinIO server with `(cd /tmp && go install " + MinIOModule + ")` " +
	"(about 6 minutes and 1.5 GB of memory; it lands in $(go env GOPATH)/bin, or set " + MinIOEnv +
	" to its path), or set " + NoMinIOEnv + "=1 to run the tests on the in-process S3 stand-in instead"

// FindMinIO returns the MinIO server binary: $CHUTE_MINIO, else `minio` in PATH, else
// where `go install` puts it ($(go env GOBIN), else $(go env GOPATH)/bin).
func FindMinIO(ctx context.Context) (string, error) {
	if p := os.Getenv(MinIOEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("s3test: %s=%s: %w; %s", MinIOEnv, p, err, InstallHint)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	name := "minio"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	tried := []string{"$" + MinIOEnv, "minio in PATH"}
	for _, dir := range goBins(ctx) {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("s3test: no MinIO server binary (tried %s): %s", strings.Join(tried, ", "), InstallHint)
}

// goBins are the directories `go install` may have put a binary in: GOBIN, else each
// GOPATH entry's bin, as the go command reports them (the environment when it is absent).
func goBins(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	gobin, gopath := os.Getenv("GOBIN"), os.Getenv("GOPATH")
	if out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		if lines := strings.Split(strings.TrimRight(string(out), "\r\n"), "\n"); len(lines) == 2 {
			gobin, gopath = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
		}
	}
	if gobin != "" {
		return []string{gobin}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	var dirs []string
	for _, d := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	return dirs
}

// StartMinIO starts the MinIO server binary on a free 127.0.0.1 port with a data directory
// under opts.Dir and the fixed test credentials, waits (until ctx ends) until it answers,
// creates the bucket, and puts a relay in front of it whose listener can cut connections.
// Close stops the process.
func StartMinIO(ctx context.Context, opts Options) (*Server, error) {
	if opts.Direct && opts.Wrap != nil {
		return nil, errors.New("s3test: Options.Wrap needs the relay, which Direct leaves out")
	}
	bin, err := FindMinIO(ctx)
	if err != nil {
		return nil, err
	}
	dir, cleanup, err := dataDir(opts.Dir, "chute-minio-")
	if err != nil {
		return nil, err
	}
	bucket := opts.Bucket
	if bucket == "" {
		bucket = Bucket
	}
	var p *minioProcess
	for try := 0; ; try++ {
		p, err = startMinIOProcess(ctx, bin, dir)
		if err == nil || try == 2 || ctx.Err() != nil || !errors.Is(err, errExited) {
			break
		}
		// The free port we picked was taken before MinIO bound it: try another.
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	var (
		r    *relay
		l    *uploadertest.Listener
		host = p.addr
	)
	rc := &recorder{}
	if !opts.Direct {
		if r, err = startRelay(p.addr, func(h http.Handler) http.Handler { return opts.handler(rc, h) }); err != nil {
			p.stop()
			cleanup()
			return nil, err
		}
		l, host = r.l, r.l.Addr().String()
	}
	stop := func() error {
		if r != nil {
			r.close()
		}
		err := p.stop()
		cleanup()
		return err
	}
	store := &minioStore{bucket: bucket}
	s, err := newServer(KindMinIO, l, host, bucket, store, rc, stop)
	if err != nil {
		stop()
		return nil, err
	}
	// Reads go to MinIO itself, not through the relay: they are not the emulator's traffic
	// and stay out of the request log.
	if store.client, err = newClient(p.addr); err != nil {
		s.Close()
		return nil, err
	}
	s.exited = p.exited
	if err := makeBucket(ctx, store.client, bucket, p); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dataDir returns dir, or a new temporary directory and the function that removes it.
func dataDir(dir, pattern string) (string, func(), error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("s3test: %w", err)
		}
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, fmt.Errorf("s3test: %w", err)
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

var errExited = errors.New("exited before it was ready")

// minioProcess is a running MinIO server.
type minioProcess struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	log    *tailBuffer
	err    error // cmd.Wait's error, once exited is closed
}

func startMinIOProcess(ctx context.Context, bin, dir string) (*minioProcess, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	// Not CommandContext: the process outlives ctx (which bounds only the start) until Close.
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, data)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"MINIO_ROOT_USER="+AccessKey,
		"MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_SITE_REGION="+Region,
	)
	log := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("s3test: starting %s: %w", bin, err)
	}
	p := &minioProcess{addr: addr, cmd: cmd, exited: make(chan struct{}), log: log}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/minio/health/live", nil)
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("s3test: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("s3test: MinIO (%s) %w: %v; its output: %s", bin, errExited, p.err, log.String())
		case <-ctx.Done():
			p.stop()
			return nil, fmt.Errorf("s3test: MinIO (%s) not ready on %s: %w; its output: %s", bin, addr, ctx.Err(), log.String())
		case <-tick.C:
		}
	}
}

// stop ends the process: an interrupt (MinIO shuts down cleanly on it), then a kill if it is
// still there after 10 s.
func (p *minioProcess) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		_ = p.cmd.Process.Kill() // Windows has no interrupt for another process
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return fmt.Errorf("MinIO did not stop within 10s of an interrupt; killed")
	case <-time.After(10 * time.Second):
		return fmt.Errorf("MinIO (pid %d) did not exit even when killed", p.cmd.Process.Pid)
	}
}

// makeBucket creates bucket, retrying while MinIO finishes starting (live before ready).
func makeBucket(ctx context.Context, c *minio.Client, bucket string, p *minioProcess) error {
	var last error
	for {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.MakeBucket(mctx, bucket, minio.MakeBucketOptions{Region: Region})
		cancel()
		if err == nil {
			return nil
		}
		if minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		last = err
		select {
		case <-p.exited:
			return fmt.Errorf("s3test: MinIO exited while creating bucket %q: %v; its output: %s", bucket, last, p.log.String())
		case <-ctx.Done():
			return fmt.Errorf("s3test: creating bucket %q in MinIO: %w (last: %v)", bucket, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("s3test: finding a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// tailBuffer keeps the last max bytes written to it: MinIO's output, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.b))
	if s == "" {
		return "(none)"
	}
	return s
}

// minioStore reads objects through MinIO's S3 API.
type minioStore struct {
	bucket string
	client *minio.Client
}

func (m *minioStore) stat(ctx context.Context, key string) (Object, error) {
	info, err := m.client.StatObject(ctx, m.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Object{}, notExist(key, err)
	}
	return Object{Key: key, Size: info.Size, ETag: strings.Trim(info.ETag, `"`), ContentType: info.ContentType}, nil
}

func (m *minioStore) open(ctx context.Context, key string) (io.ReadCloser, error) {
	// Stat first: GetObject is lazy and would report a missing key only on the first Read.
	if _, err := m.stat(ctx, key); err != nil {
		return nil, err
	}
	o, err := m.client.GetObject(ctx, m.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3test: open %q: %w", key, err)
	}
	return o, nil
}

func (m *minioStore) remove(ctx context.Context, key string) error {
	if err := m.client.RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("s3test: delete %q: %w", key, err)
	}
	return nil
}

// notExist wraps MinIO's "no such key" so that errors.Is(err, fs.ErrNotExist) holds.
func notExist(key string, err error) error {
	if c := minio.ToErrorResponse(err).Code; c == "NoSuchKey" || c == "NotFound" {
		return fmt.Errorf("s3test: object %q: %w", key, fs.ErrNotExist)
	}
	return fmt.Errorf("s3test: stat %q: %w", key, err)
}
