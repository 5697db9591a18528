package main

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/redgifs"
	"github.com/chute-dev/chute/uploader/redgifs/redgifstest"
)

const rgToken = "rg-crash-test-token-0123456789"

// redgifsSetup starts the RedGIFs emulator with MinIO behind it (the stand-in with
// CHUTE_TEST_NO_MINIO=1) and writes a config mapping an inbox to it; extra is more YAML for
// the provider, indented as its keys.
func redgifsSetup(t *testing.T, opts redgifstest.Options, token, extra string) (rg *redgifstest.Server, inbox, cfg string) {
	t.Helper()
	dir := t.TempDir()
	opts.S3, opts.Token = redgifstest.StartS3(t), rgToken
	rg, err := redgifstest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rg.Close() })
	inbox = makeInbox(t, dir)
	writeSecret(t, filepath.Join(dir, "token"), token)
	cfg = writeConfig(t, dir, fmt.Sprintf(`
state: %s/state.db
providers:
  rg:
    type: redgifs
    endpoint: "%s"
    token_file: %s/token
    tags: [chute, test]
%s
folders:
  - {path: %s, provider: rg, settle: 300ms, exclude: ["*.part"]}
`, dir, rg.URL, dir, extra, inbox))
	return rg, inbox, cfg
}

func md5File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The daemon killed with SIGKILL right after S3 answered the PUT 200 resumes after a restart
// without a second PUT: one ticket, one gif, a done sidecar with the gif's watch URL, and the
// bytes in S3 are the file's. Killed once the daemon has the 200 (it is held at its next API
// request), and killed while the 200 is still on its way (the daemon never heard it: the
// restart must ask the ticket's status before it decides to PUT).
func TestRedGIFsCrashAfterPut(t *testing.T) {
	t.Run("daemon got the 200", func(t *testing.T) {
		testRedGIFsCrashAfterPut(t, func(rg *redgifstest.Server) { rg.StallAfterPut() }, "")
	})
	t.Run("200 still on its way", func(t *testing.T) {
		testRedGIFsCrashAfterPut(t, func(rg *redgifstest.Server) { rg.HoldNextPutAnswer() }, "the platform has the file already")
	})
}

// testRedGIFsCrashAfterPut kills the daemon once arm's knob has caught the PUT's 200;
// wantLog is what the restarted daemon must say about it.
func testRedGIFsCrashAfterPut(t *testing.T, arm func(*redgifstest.Server), wantLog string) {
	rg, inbox, cfg := redgifsSetup(t, redgifstest.Options{ReadyAfter: 500 * time.Millisecond}, rgToken, "")
	const size = 48 << 20
	rg.Throttle(32 << 20) // the PUT takes about 1.5 s
	arm(rg)
	file := filepath.Join(inbox, "beach clip.mp4")
	want := randomFile(t, file, size)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return rg.Counters().PutsOK == 1 }, "the PUT's 200", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	rg.Throttle(0)
	// Let the emulator notice the dead daemon's held request before releasing it, or it
	// would count it as a poll just before the new daemon's.
	time.Sleep(300 * time.Millisecond)
	rg.Stall(false)

	d2 := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)
	if !strings.Contains(d2.logs.String(), wantLog) {
		t.Errorf("the restarted daemon does not say %q:\n%s", wantLog, d2.logs)
	}

	c := rg.Counters()
	if c.Puts != 1 || c.PutsOK != 1 {
		t.Errorf("%d PUTs (%d answered 200), want exactly 1: the file was sent again after the crash", c.Puts, c.PutsOK)
	}
	if c.TicketsCreated != 1 || c.GifsCreated != 1 {
		t.Errorf("%d tickets and %d gifs, want 1 and 1", c.TicketsCreated, c.GifsCreated)
	}
	if c.FastPolls != 0 {
		t.Errorf("%d status polls less than 1 s apart", c.FastPolls)
		for _, r := range rg.APIRequests() {
			t.Logf("%s %s %s -> %d", r.At.Format("15:04:05.000"), r.Method, r.Path, r.Status)
		}
		t.Log(d.logs.String())
		t.Log(d2.logs.String())
	}
	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := rg.Gif(sc.ID)
	if !ok {
		t.Fatalf("sidecar id %q names no gif at the emulator", sc.ID)
	}
	if sc.Provider != "redgifs" || sc.URL != redgifs.WatchURL+sc.ID || sc.SHA256 != want ||
		sc.Extra["ticket"] != g.Ticket || sc.Extra["md5"] != md5File(t, file) {
		t.Errorf("sidecar %+v", sc)
	}
	rc, err := rg.Stored(uploader.Result{ID: sc.ID})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, rc)
	rc.Close()
	if err != nil || hex.EncodeToString(h.Sum(nil)) != want {
		t.Errorf("the object in S3 differs from the file (%v)", err)
	}
}

// A refused token ends in a failed sidecar after one attempt, saying what to do, without
// the token.
func TestRedGIFsRefusedToken(t *testing.T) {
	bad := "expired-" + rgToken
	rg, inbox, cfg := redgifsSetup(t, redgifstest.Options{}, bad, "")
	file := filepath.Join(inbox, "clip.mp4")
	randomFile(t, file, 64<<10)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool {
		sc, err := service.ReadSidecar(file)
		return err == nil && sc.Status == "failed"
	}, "a failed sidecar", d.logs)
	d.stop(t)
	sc, _ := service.ReadSidecar(file)
	if !strings.Contains(sc.Error, "refused the token") || !strings.Contains(sc.Error, "upload scope") {
		t.Errorf("sidecar error %q does not tell the user what to do", sc.Error)
	}
	if strings.Contains(sc.Error, bad) || strings.Contains(d.logs.String(), bad) {
		t.Error("the token shows in the sidecar or the logs")
	}
	if c := rg.Counters(); c.Unauthorized > 3 || sc.Attempts > 3 {
		t.Errorf("%d refused requests, %d attempts: a refused token must fail within a few", c.Unauthorized, sc.Attempts)
	}
}

// A 429 (error.delay only in the body) holds back every RedGIFs job, also one that never got
// it: three files, two workers, both refused at once; nothing reaches the API until the
// delay has passed, then all three are done.
func TestRedGIFsRateLimitHoldsProvider(t *testing.T) {
	rg, inbox, cfg := redgifsSetup(t, redgifstest.Options{}, rgToken, "    concurrency: 2")
	var files []string
	for i := range 3 {
		f := filepath.Join(inbox, fmt.Sprintf("clip-%d.mp4", i))
		randomFile(t, f, 256<<10)
		files = append(files, f)
	}
	const delay = 3
	rg.RateLimitNext(2, delay)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool {
		for _, f := range files {
			if !doneSidecar(f) {
				return false
			}
		}
		return true
	}, "three done sidecars", d.logs)
	d.stop(t)

	var limited []time.Time
	reqs := rg.APIRequests()
	for _, r := range reqs {
		if r.Status == 429 {
			limited = append(limited, r.At)
		}
	}
	if len(limited) != 2 {
		t.Fatalf("%d answers 429, want 2", len(limited))
	}
	first, last := limited[0], limited[1]
	// Requests already under way when the first 429 came may still arrive just after it.
	quietFrom, quietTo := last.Add(300*time.Millisecond), first.Add(delay*time.Second-200*time.Millisecond)
	for _, r := range reqs {
		if r.At.After(quietFrom) && r.At.Before(quietTo) {
			t.Errorf("%s %s reached the API %v after the 429, during the %ds pause", r.Method, r.Path, r.At.Sub(first).Round(time.Millisecond), delay)
		}
	}
	if c := rg.Counters(); c.GifsCreated != 3 || c.TicketsCreated != 3 {
		t.Errorf("%d gifs and %d tickets for 3 files", c.GifsCreated, c.TicketsCreated)
	}
}
