//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/service"
)

// mountTmpfs mounts a tmpfs of size bytes at dir for the test (it needs root, as CI has).
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}

// fill writes into dir until its file system is full; it returns the filler's path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler.part")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return p
			}
			t.Fatal(err)
		}
	}
}

func readSidecarDone(t *testing.T, path string) *service.Sidecar {
	t.Helper()
	sc, err := service.ReadSidecar(path)
	if err != nil || sc.Status != "done" {
		t.Fatalf("%q: sidecar %+v, %v", path, sc, err)
	}
	return sc
}

// Item 4: names that are not valid UTF-8 are uploaded and reported, escaped.
func TestNonUTF8Names(t *testing.T) {
	srv, _, inbox, cfg := tusSetup(t, "", `, settle: 300ms, exclude: ["*.part"]`)
	latin := filepath.Join(inbox, "caf\xe9.bin")
	below := filepath.Join(inbox, "d\xe9j\xe0", "x.bin")
	if err := os.MkdirAll(filepath.Dir(below), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{latin, below} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, cfg, nil)
	for _, p := range []string{latin, below} {
		waitFor(t, 20*time.Second, func() bool { return doneSidecar(p) }, fmt.Sprintf("the sidecar of %q", p), d.logs)
		sc := readSidecarDone(t, p)
		rc, err := srv.Stored(sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != p {
			t.Fatalf("%q: tusd holds %q", p, got)
		}
		if base := filepath.Base(p); base != strings.ToValidUTF8(base, "") && string(sc.FileBytes) != base {
			t.Fatalf("%q: sidecar file_bytes %q", p, sc.FileBytes)
		}
	}
	if sc := readSidecarDone(t, latin); sc.File != `caf\xe9.bin` {
		t.Fatalf("sidecar file %q, want it escaped", sc.File)
	}
	out, _, err := runCLI(t, "status", "--config", cfg)
	if err != nil || !strings.Contains(out, `caf\xe9.bin`) || !strings.Contains(out, `d\xe9j\xe0/x.bin`) {
		t.Fatalf("status (%v) does not show the names escaped:\n%s", err, out)
	}
	d.stop(t)
}

// Item 12: runs cut by SIGKILL are not attempts.
func TestCrashesAreNotAttempts(t *testing.T) {
	srv, _, inbox, cfg := tusSetup(t, ", max_attempts: 3", `, settle: 300ms, exclude: ["*.part"]`)
	const size = 64 << 20
	srv.Throttle(16 << 20)
	file := filepath.Join(inbox, "big.mp4")
	want := randomFile(t, file, size)
	for i := 0; i < 3; i++ {
		d := startDaemon(t, cfg, nil)
		before := srv.Stats().BytesReceived
		waitFor(t, 30*time.Second, func() bool { return srv.Stats().BytesReceived > before+4<<20 }, "the upload to make progress", d.logs)
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
	srv.FailNext(1, 503, 0)
	srv.Throttle(0)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { _, err := service.ReadSidecar(file); return err == nil }, "the sidecar", d.logs)
	sc, _ := service.ReadSidecar(file)
	if sc.Status != "done" || sc.SHA256 != want {
		t.Fatalf("after three crashes and one transient error: %+v", sc)
	}
	if sc.Attempts != 2 {
		t.Errorf("attempts %d, want 2 (one 503, one success; crashes are not attempts)", sc.Attempts)
	}
	d.stop(t)
}

// Item 15: SIGHUP is caught and logged; the daemon goes on and stops cleanly later.
func TestSIGHUPKeepsRunning(t *testing.T) {
	_, dir, inbox, cfg := tusSetup(t, "", `, settle: 300ms, exclude: ["*.part"]`)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(d.logs.String(), "chute is running") }, "the daemon to start", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(d.logs.String(), "SIGHUP") }, "SIGHUP to be logged", d.logs)
	select {
	case <-d.done:
		t.Fatalf("SIGHUP stopped the daemon (exit %d); logs:\n%s", d.cmd.ProcessState.ExitCode(), d.logs)
	case <-time.After(500 * time.Millisecond):
	}
	p := filepath.Join(inbox, "after-hup.mp4")
	randomFile(t, p, 1000)
	waitFor(t, 20*time.Second, func() bool { return doneSidecar(p) }, "a file uploaded after SIGHUP", d.logs)
	d.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "state", "state.db.sock")); err == nil {
		t.Error("the control socket was left behind")
	}
}

// Item 10: the database deleted under a running daemon: no second daemon runs beside it,
// and the first one stops by itself.
func TestStateDeletedUnderDaemon(t *testing.T) {
	_, dir, inbox, cfg := tusSetup(t, "", `, settle: 300ms, exclude: ["*.part"]`)
	a := startDaemon(t, cfg, nil)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(a.logs.String(), "chute is running") }, "the first daemon to start", a.logs)
	if err := os.Remove(filepath.Join(dir, "state", "state.db")); err != nil {
		t.Fatal(err)
	}
	b := startDaemon(t, cfg, nil)
	select {
	case <-b.done:
		if b.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(b.logs.String(), "in use") {
			t.Fatalf("second daemon exited %d; logs:\n%s", b.cmd.ProcessState.ExitCode(), b.logs)
		}
	case <-time.After(10 * time.Second):
		p := filepath.Join(inbox, "twice.mp4")
		randomFile(t, p, 1000)
		t.Fatalf("a second daemon runs beside the first; logs:\n%s", b.logs)
	}
	select {
	case <-a.done:
		if a.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(a.logs.String(), "deleted or replaced") {
			t.Fatalf("first daemon exited %d; logs:\n%s", a.cmd.ProcessState.ExitCode(), a.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the first daemon did not notice its database was deleted; logs:\n%s", a.logs)
	}
}

// Item 8: a state database that cannot be written stalls nothing for good: the daemon
// retries, says so on /healthz, and carries on by itself once it can write again.
func TestStateUnwritableThenBack(t *testing.T) {
	srv, dir, inbox, _ := tusSetup(t, "", "")
	statefs := filepath.Join(dir, "statefs")
	mountTmpfs(t, statefs, 8<<20)
	port := freePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
state: %s/state.db
listen: 127.0.0.1:%d
providers:
  own: {type: tus, endpoint: "%s"}
folders:
  - {path: %s, provider: own, settle: 300ms, exclude: ["*.part"]}
`, statefs, port, srv.URL, inbox))
	d := startDaemon(t, cfg, nil)
	first := filepath.Join(inbox, "first.mp4")
	randomFile(t, first, 1000)
	waitFor(t, 20*time.Second, func() bool { return doneSidecar(first) }, "the first file", d.logs)

	filler := fill(t, statefs)
	var files []string
	for _, n := range []string{"a", "b", "c"} {
		p := filepath.Join(inbox, n+".mp4")
		randomFile(t, p, 2000)
		files = append(files, p)
	}
	health := func() int {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, 20*time.Second, func() bool { return health() == http.StatusServiceUnavailable }, "/healthz to say the database is unwritable", d.logs)
	time.Sleep(2 * time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		waitFor(t, 60*time.Second, func() bool { return doneSidecar(p) }, "a file dropped while the database was unwritable", d.logs)
	}
	waitFor(t, 20*time.Second, func() bool { return health() == http.StatusOK }, "/healthz to be ok again", d.logs)
	d.stop(t)
}

// Item 7 on a real full disk: the sidecar due while the folder's disk is full is written
// once space is back, also across a restart.
func TestSidecarAfterDiskFull(t *testing.T) {
	srv, dir, _, _ := tusSetup(t, "", "")
	inbox := filepath.Join(dir, "smallfs")
	mountTmpfs(t, inbox, 4<<20)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
state: %s/state/state.db
providers:
  own: {type: tus, endpoint: "%s"}
folders:
  - {path: %s, provider: own, settle: 500ms, exclude: ["*.part"]}
`, dir, srv.URL, inbox))
	srv.Stall(true)
	d := startDaemon(t, cfg, nil)
	p := filepath.Join(inbox, "a.mp4")
	want := randomFile(t, p, 100<<10)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(d.logs.String(), "msg=uploading") }, "the upload to start", d.logs)
	filler := fill(t, inbox)
	srv.Stall(false)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(d.logs.String(), "sidecar failed") }, "the sidecar to fail on the full disk", d.logs)
	d.kill()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return doneSidecar(p) }, "the sidecar once space is back", d.logs)
	if sc := readSidecarDone(t, p); sc.SHA256 != want {
		t.Fatalf("sidecar sha256 %s, want %s", sc.SHA256, want)
	}
	if got := srv.Stats().Created; got != 1 {
		t.Errorf("tusd has %d uploads, want 1", got)
	}
	d.stop(t)
}

// Item 14: an upload URL with a token in its query, and a server echoing the Authorization
// value back, leave no secret in logs, sidecars or status.
func TestServerEchoedSecrets(t *testing.T) {
	srv, dir, inbox, _ := tusSetup(t, "", "")
	target, _ := url.Parse(srv.URL)
	const locToken, header = "LOCTOKEN-5f2a9c", "Bearer HDRSECRET-77e1"
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
			r.Out.URL.RawQuery = ""
		},
		ModifyResponse: func(resp *http.Response) error {
			if loc := resp.Header.Get("Location"); loc != "" {
				resp.Header.Set("Location", loc+"?token="+locToken)
			}
			return nil
		},
	}
	front := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.Header.Get("Upload-Metadata"), "ZGVueS5tcDQ") { // deny.mp4
			http.Error(w, "credentials refused: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost && r.URL.Query().Get("token") != locToken {
			http.Error(w, "missing token", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	cfg := writeConfig(t, dir, fmt.Sprintf(`
state: %s/state/state.db
providers:
  own: {type: tus, endpoint: "%s/files/", headers: {Authorization: "%s"}}
folders:
  - {path: %s, provider: own, settle: 300ms, exclude: ["*.part"]}
`, dir, front, header, inbox))
	d := startDaemon(t, cfg, nil)
	ok := filepath.Join(inbox, "ok.mp4")
	deny := filepath.Join(inbox, "deny.mp4")
	randomFile(t, ok, 5000)
	randomFile(t, deny, 5000)
	waitFor(t, 20*time.Second, func() bool { return doneSidecar(ok) }, "the upload through the proxy", d.logs)
	waitFor(t, 20*time.Second, func() bool { sc, err := service.ReadSidecar(deny); return err == nil && sc.Status == "failed" }, "the refused upload", d.logs)
	status, _, _ := runCLI(t, "status", "--config", cfg)
	statusJSON, _, _ := runCLI(t, "status", "--json", "--config", cfg)
	d.stop(t)
	var seen bytes.Buffer
	seen.WriteString(d.logs.String() + status + statusJSON)
	b, _ := os.ReadFile(service.SidecarPath(deny))
	seen.Write(b)
	for _, secret := range []string{"HDRSECRET", locToken} {
		if strings.Contains(seen.String(), secret) {
			t.Errorf("%s appears in logs, status or the failed sidecar:\n%s", secret, seen.String())
		}
	}
	if !strings.Contains(seen.String(), "401") {
		t.Errorf("the refusal is not reported:\n%s", seen.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startHTTP serves h on loopback for the test and returns its base URL.
func startHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
