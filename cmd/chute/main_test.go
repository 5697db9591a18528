package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/uploader/tus/tustest"
)

// chuteBin is the chute binary built for the tests that run it as a child process.
var chuteBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chute-bin-")
	if err != nil {
		panic(err)
	}
	chuteBin = filepath.Join(dir, "chute")
	out, err := exec.Command("go", "build", "-o", chuteBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build chute: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is the chute binary running as a child process.
type daemon struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon runs `chute run --config config` as a child process, as the user cred names
// when it is not nil (Unix only: see runAs).
func startDaemon(t *testing.T, config string, cred *credential) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(chuteBin, "run", "--config", config), logs: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if cred != nil {
		runAs(t, d.cmd, cred)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.kill() })
	return d
}

func (d *daemon) kill() {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("chute exited %d after SIGTERM; logs:\n%s", code, d.logs)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("chute did not stop within 15s of SIGTERM; logs:\n%s", d.logs)
	}
}

// makeInbox creates dir/inbox, the watched folder of a test's config.
func makeInbox(t *testing.T, dir string) string {
	t.Helper()
	inbox := filepath.Join(dir, "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	return inbox
}

// writeSecret writes a provider's secret file (a token, a password), one line, private.
func writeSecret(t *testing.T, path, secret string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "chute.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs)
}

func doneSidecar(path string) bool {
	sc, err := service.ReadSidecar(path)
	return err == nil && sc.Status == "done"
}

func randomFile(t *testing.T, path string, size int64) string {
	t.Helper()
	tmp := path + ".part" // excluded by the folder's config until renamed
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tusSetup starts an in-process tusd and writes a config that maps an inbox to it; provider
// and folder are extra flow-style keys for the provider and the folder.
func tusSetup(t *testing.T, provider, folder string) (srv *tustest.Server, dir, inbox, cfg string) {
	t.Helper()
	dir = t.TempDir()
	srv, err := tustest.Start(tustest.Options{Dir: filepath.Join(dir, "tusd")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	inbox = filepath.Join(dir, "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg = writeConfig(t, dir, fmt.Sprintf(`
state: %s/state/state.db
providers:
  own: {type: tus, endpoint: "%s"%s}
folders:
  - {path: %s, provider: own%s}
`, dir, srv.URL, provider, inbox, folder))
	return srv, dir, inbox, cfg
}

// The daemon killed with SIGKILL half-way through a large upload resumes it after a restart:
// one TUS upload, and not much more than the file's size on the wire.
func TestCrashResume(t *testing.T) {
	srv, _, inbox, cfg := tusSetup(t, "", `, settle: 300ms, exclude: ["*.part"]`)

	const size = 128 << 20
	srv.Throttle(32 << 20) // about 4s for the whole file
	file := filepath.Join(inbox, "big clip.mp4")
	want := randomFile(t, file, size)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return srv.Stats().BytesReceived > size*2/5 }, "40% of the file at tusd", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	mid := srv.Stats()
	if mid.BytesReceived >= size {
		t.Fatal("the upload finished before the kill: the test proves nothing")
	}
	if _, err := os.Stat(service.SidecarPath(file)); err == nil {
		t.Fatal("a sidecar exists before the upload finished")
	}
	srv.Throttle(0)
	d2 := startDaemon(t, cfg, nil)
	sidecar := service.SidecarPath(file)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)

	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	end := srv.Stats()
	if end.Created != 1 {
		t.Errorf("%d TUS uploads created; want exactly 1 (sidecar %s)", end.Created, sidecar)
	}
	if end.BytesReceived > size*12/10 {
		t.Errorf("tusd received %d bytes for a %d-byte file: %.2fx, want <= 1.2x", end.BytesReceived, size, float64(end.BytesReceived)/size)
	}
	t.Logf("bytes at the kill %d, in all %d (%.3fx the file)", mid.BytesReceived, end.BytesReceived, float64(end.BytesReceived)/size)
	if sc.SHA256 != want {
		t.Errorf("sidecar sha256 %s, file's %s", sc.SHA256, want)
	}
	rc, err := srv.Stored(sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, rc)
	rc.Close()
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("tusd holds bytes with sha256 %s, the file's is %s", got, want)
	}
	if !strings.Contains(d2.logs.String(), "resume=true") {
		t.Errorf("the restarted daemon did not resume from the checkpoint; logs:\n%s", d2.logs)
	}
}

// Bad input never stops the daemon: an unreadable file is reported and waits, names with
// spaces, quotes and non-ASCII letters and an empty file are uploaded.
func TestBadInputKeepsRunning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("permissions differ on windows")
	}
	_, dir, inbox, cfg := tusSetup(t, "", ", settle: 200ms")
	os.Chmod(dir, 0o777)
	os.Chmod(inbox, 0o777)
	// Root reads every file: run the daemon as nobody so that an unreadable file is one.
	var cred *credential
	if os.Geteuid() == 0 {
		cred = &credential{Uid: 65534, Gid: 65534}
		os.MkdirAll(filepath.Join(dir, "state"), 0o777)
		os.Chmod(filepath.Join(dir, "state"), 0o777)
		if err := os.Chmod(filepath.Dir(chuteBin), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Dir(dir), 0o755) // the test's own temporary directory
		for p := dir; p != "/" && p != "."; p = filepath.Dir(p) {
			if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
				t.Skipf("%s is not searchable by nobody; cannot run the daemon as another user", p)
			}
		}
	}
	locked := filepath.Join(inbox, "locked.mp4")
	os.WriteFile(locked, []byte("secret"), 0o000)
	names := []string{"empty.mp4", "with space 'single' \"double\".mp4", "ünïcødé ファイル.mp4"}
	for i, n := range names {
		data := bytes.Repeat([]byte{'x'}, i*100)
		if err := os.WriteFile(filepath.Join(inbox, n), data, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, cfg, cred)
	for _, n := range names {
		p := filepath.Join(inbox, n)
		waitFor(t, 30*time.Second, func() bool { return doneSidecar(p) }, "a done sidecar for "+n, d.logs)
	}
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(d.logs.String(), "not readable (permission denied)") && strings.Contains(d.logs.String(), "locked.mp4")
	}, "a warning naming the unreadable file", d.logs)
	// Once readable, it is uploaded.
	os.Chmod(locked, 0o644)
	waitFor(t, 30*time.Second, func() bool { return doneSidecar(locked) }, "the fixed file's done sidecar", d.logs)
	d.stop(t)
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func TestCheckBrokenConfigs(t *testing.T) {
	dir := t.TempDir()
	inbox := filepath.Join(dir, "in")
	os.MkdirAll(filepath.Join(inbox, "sub"), 0o755)
	valid := fmt.Sprintf("state: %s/s.db\nproviders:\n  own: {type: tus, endpoint: \"http://127.0.0.1:1/files/\"}\nfolders:\n  - {path: %s, provider: own}\n", dir, inbox)
	cases := []struct {
		name, config string
		want         []string // each must appear in the report
	}{
		{"unknown key", valid + "colour: blue\n", []string{`line 6: colour: unknown key "colour"`}},
		{"unknown provider", strings.Replace(valid, "provider: own}", "provider: nope}", 1), []string{`folders[0].provider: unknown provider "nope"`}},
		{"missing credential", fmt.Sprintf("providers:\n  gc: {type: tus}\nfolders:\n  - {path: %s, provider: gc}\n", inbox), []string{"providers.gc.endpoint: required"}},
		{"bad duration", strings.Replace(valid, "provider: own}", "provider: own, settle: 3}", 1), []string{"folders[0].settle", `bad duration "3"`}},
		{"overlapping folders", valid + fmt.Sprintf("  - {path: %s/sub, provider: own}\n", inbox), []string{"folders[1].path", "overlaps"}},
		{"missing folder", strings.Replace(valid, inbox, inbox+"/nothing-here", 1), []string{"folders[0].path"}},
		{"invalid yaml", "providers: [\n", []string{"line "}},
		{"several at once", strings.Replace(valid, "provider: own}", "provider: nope, settle: x}", 1) + "colour: blue\n", []string{"colour", "nope", "settle"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "chute.yaml")
			os.WriteFile(p, []byte(c.config), 0o600)
			_, stderr, err := runCLI(t, "check", "--config", p)
			if code := exitStatus(err); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("report lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "chute.yaml")
		os.WriteFile(p, []byte(valid), 0o600)
		stdout, stderr, err := runCLI(t, "check", "--config", p)
		if err != nil {
			t.Fatalf("valid config: %v\n%s", err, stderr)
		}
		if !strings.Contains(stdout, "watch "+inbox+" -> own (tus)") {
			t.Errorf("check does not say what it would watch:\n%s", stdout)
		}
	})
}

// status and retry read the database when no daemon runs, as a script would use them.
func TestStatusAndRetryOffline(t *testing.T) {
	srv, _, inbox, cfg := tusSetup(t, ", max_attempts: 1", ", settle: 200ms")
	if out, _, _ := runCLI(t, "status", "--config", cfg); !strings.Contains(out, "no jobs yet") {
		t.Errorf("status before any run: %q", out)
	}
	srv.FailNext(1, 500, 0)
	os.WriteFile(filepath.Join(inbox, "a.mp4"), []byte("a"), 0o644)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool {
		sc, err := service.ReadSidecar(filepath.Join(inbox, "a.mp4"))
		return err == nil && sc.Status == "failed"
	}, "a failed sidecar", d.logs)
	// While the daemon runs, status goes through its socket. The failed sidecar is written
	// just before the state: wait for the state.
	var out string
	var jobs []service.JobStatus
	waitFor(t, 10*time.Second, func() bool {
		o, _, err := runCLI(t, "status", "--config", cfg, "--json")
		out = o
		return err == nil && json.Unmarshal([]byte(o), &jobs) == nil && len(jobs) == 1 && jobs[0].State == "failed"
	}, "status --json to show the job failed", d.logs)
	if len(jobs) != 1 || jobs[0].State != "failed" {
		t.Fatalf("status --json while running: %s", out)
	}
	d.stop(t)

	out, _, err := runCLI(t, "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "a.mp4") || !strings.Contains(out, "failed") || !strings.Contains(out, "500") {
		t.Fatalf("status table: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "retry", "--failed", "--config", cfg)
	if err != nil || !strings.Contains(out, "job 1 queued again") {
		t.Fatalf("retry --failed: %v %s", err, out)
	}
	d = startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return doneSidecar(filepath.Join(inbox, "a.mp4")) }, "the retried job done", d.logs)
	d.stop(t)
	if _, _, err := runCLI(t, "retry", "--config", cfg, "1"); err == nil {
		t.Error("retry of a done job succeeded")
	}
	if _, _, err := runCLI(t, "retry", "--config", cfg, "x"); exitStatus(err) != 2 {
		t.Errorf("retry x: %v", err)
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, _, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "chute ") {
		t.Fatalf("version: %v %q", err, out)
	}
	if _, _, err := runCLI(t, "frobnicate"); exitStatus(err) != 2 {
		t.Fatalf("unknown command: %v", err)
	}
}

// The demo uploads its samples through every emulator and stops cleanly.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"demo", "--dir", dir}, &stdout, &stderr) }()
	inboxes, _ := filepath.Glob(filepath.Join(dir, "inbox", "*"))
	waitFor(t, 20*time.Second, func() bool {
		inboxes, _ = filepath.Glob(filepath.Join(dir, "inbox", "*"))
		return len(inboxes) > 0
	}, "the demo's inboxes", &stderr)
	for _, in := range inboxes {
		sample := filepath.Join(in, "sample.mp4")
		waitFor(t, 30*time.Second, func() bool { return doneSidecar(sample) }, "the sample in "+in, &stderr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "drop files into") {
		t.Errorf("demo does not tell the user what to do:\n%s", stdout.String())
	}
}
