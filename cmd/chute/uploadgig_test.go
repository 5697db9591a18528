package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/uploader/uploadgig/uploadgigtest"
)

const ugUser, ugPass = "crash@example.com", "crash-test-pass-0123"

// startUploadGig starts the emulator and writes a config with one UploadGig inbox; extra is
// added to the provider's block.
func startUploadGig(t *testing.T, opts uploadgigtest.Options, extra string) (srv *uploadgigtest.Server, cfg, inbox string) {
	t.Helper()
	dir := t.TempDir()
	opts.Dir, opts.User, opts.Pass = filepath.Join(dir, "uploadgig"), ugUser, ugPass
	if opts.LoginsPerMinute == 0 {
		opts.LoginsPerMinute = 1000
	}
	srv, err := uploadgigtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	inbox = makeInbox(t, dir)
	writeSecret(t, filepath.Join(dir, "pass"), ugPass)
	cfg = writeConfig(t, dir, fmt.Sprintf(`
state: %s/state.db
providers:
  ug:
    type: uploadgig
    endpoint: "%s"
    user: %s
    pass_file: %s/pass
    login_interval: 50ms
%sfolders:
  - {path: %s, provider: ug, settle: 300ms, exclude: ["*.part"]}
`, dir, srv.URL, ugUser, dir, extra, inbox))
	return srv, cfg, inbox
}

// uploadRequestsSettled tells whether the emulator has finished with every upload request it got
// (a cut one included), so that its counters are final.
func uploadRequestsSettled(srv *uploadgigtest.Server) bool {
	return len(srv.UploadRequests()) == srv.Counters().UploadRequests
}

// SIGKILL during the upload: UploadGig cannot resume, so after the restart the file is sent
// once more, whole, with a fresh upload action, and exactly one file is stored.
func TestUploadGigCrashMidUpload(t *testing.T) {
	srv, cfg, inbox := startUploadGig(t, uploadgigtest.Options{}, "")
	const size = 96 << 20
	srv.Throttle(24 << 20)
	file := filepath.Join(inbox, "holiday clip %41 ü.mp4")
	want := randomFile(t, file, size)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool {
		return srv.Counters().BytesReceived > 30<<20
	}, "the upload under way", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	waitFor(t, 10*time.Second, func() bool { return uploadRequestsSettled(srv) }, "the emulator to see the cut", d.logs)
	mid := srv.Counters()
	if mid.Uploads != 0 || mid.BytesReceived >= size {
		t.Fatalf("the upload finished before the kill: the test proves nothing (%+v)", mid)
	}
	srv.Throttle(0)
	d2 := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)

	c := srv.Counters()
	if c.UploadRequests != 2 || c.ActionsIssued != 2 || c.Uploads != 1 {
		t.Errorf("counters %+v: want 2 upload requests (the cut one and one re-send), 2 actions, 1 file stored", c)
	}
	if got := c.BytesReceived - mid.BytesReceived; got != size {
		t.Errorf("the re-send carried %d bytes, the file has %d", got, size)
	}
	files := srv.Files()
	if len(files) != 1 {
		t.Fatalf("%d files stored, want 1", len(files))
	}
	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	f := files[0]
	if f.Name != filepath.Base(file) || f.SHA256 != want || f.Size != size {
		t.Errorf("stored %+v, want %q with sha256 %s", f, filepath.Base(file), want)
	}
	if sc.ID != f.ID || !strings.Contains(sc.URL, "/file/download/"+f.ID+"/") || sc.Extra["file_name"] != f.Name || sc.Provider != "uploadgig" || sc.SHA256 != want {
		t.Errorf("sidecar %+v, stored %+v", sc, f)
	}
	if !strings.Contains(d2.logs.String(), "sending it whole again") {
		t.Errorf("the restarted daemon did not see the earlier, cut upload in the checkpoint; logs:\n%s", d2.logs)
	}
	t.Logf("bytes at the kill %d of %d; in all %d", mid.BytesReceived, size, c.BytesReceived)
}

// SIGKILL after the answer arrived (and was recorded) but before the job was done: after
// the restart nothing is sent, not even a login, and the sidecar holds the answer.
func TestUploadGigCrashAfterAnswer(t *testing.T) {
	srv, cfg, inbox := startUploadGig(t, uploadgigtest.Options{}, "")
	// The emulator keeps the response open after the answer, which holds the daemon between
	// recording the answer and finishing the job long enough to kill it there.
	srv.HoldAfterAnswer(true)
	file := filepath.Join(inbox, "answered.mp4")
	want := randomFile(t, file, 1<<20)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(d.logs.String(), "uploadgig: answer recorded") }, "the answer recorded", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if _, err := os.Stat(file + ".chute.json"); err == nil {
		t.Fatal("the sidecar was written before the kill: the test proves nothing")
	}
	srv.HoldAfterAnswer(false)
	before := srv.Counters()
	if before.Uploads != 1 || before.UploadRequests != 1 {
		t.Fatalf("counters before the restart %+v", before)
	}
	d2 := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)
	if c := srv.Counters(); c != before {
		t.Errorf("the restart made requests: %+v -> %+v", before, c)
	}
	if !strings.Contains(d2.logs.String(), "nothing is sent again") {
		t.Errorf("the restarted daemon did not use the recorded answer; logs:\n%s", d2.logs)
	}
	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	f := srv.Files()[0]
	if sc.ID != f.ID || sc.Extra["file_name"] != "answered.mp4" || sc.SHA256 != want || f.SHA256 != want {
		t.Errorf("sidecar %+v, stored %+v", sc, f)
	}
}

// A file too large for the account, and a refused login, each end in a failed sidecar that
// says why; neither sends a byte of the file.
func TestUploadGigFailedSidecars(t *testing.T) {
	srv, cfg, inbox := startUploadGig(t, uploadgigtest.Options{QuotaMB: 1}, "")
	big := filepath.Join(inbox, "too big.mp4")
	randomFile(t, big, 2<<20)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { sc, err := service.ReadSidecar(big); return err == nil && sc.Status == "failed" }, "a failed sidecar", d.logs)
	d.stop(t)
	sc, _ := service.ReadSidecar(big)
	if !strings.Contains(sc.Error, "file too large for the space left on the account (1 MB)") {
		t.Errorf("sidecar error %q", sc.Error)
	}
	if c := srv.Counters(); c.UploadRequests != 0 || c.BytesReceived != 0 {
		t.Errorf("bytes were sent: %+v", c)
	}

	srv2, cfg2, inbox2 := startUploadGig(t, uploadgigtest.Options{}, "")
	os.WriteFile(filepath.Join(filepath.Dir(cfg2), "pass"), []byte("wrong-pass\n"), 0o600)
	denied := filepath.Join(inbox2, "denied.mp4")
	randomFile(t, denied, 1000)
	d2 := startDaemon(t, cfg2, nil)
	waitFor(t, 30*time.Second, func() bool { sc, err := service.ReadSidecar(denied); return err == nil && sc.Status == "failed" }, "a failed sidecar", d2.logs)
	d2.stop(t)
	sc, _ = service.ReadSidecar(denied)
	if !strings.Contains(sc.Error, ugUser) || !strings.Contains(sc.Error, uploadgigtest.MsgBadLogin) || strings.Contains(sc.Error, "wrong-pass") {
		t.Errorf("sidecar error %q", sc.Error)
	}
	if c := srv2.Counters(); c.UploadRequests != 0 || c.Logins != 1 {
		t.Errorf("counters %+v", c)
	}
}

// "-3": every UploadGig job waits, none fails for it (max_attempts: 1), and the waiting
// jobs do not each keep logging in.
func TestUploadGigRateLimitPausesEveryJob(t *testing.T) {
	srv, cfg, inbox := startUploadGig(t, uploadgigtest.Options{}, "    rate_limit_wait: 1s\n    max_attempts: 1\n    concurrency: 3\n")
	srv.LockLogins(2500 * time.Millisecond)
	var files []string
	for i := range 4 {
		p := filepath.Join(inbox, fmt.Sprintf("clip %d.mp4", i))
		randomFile(t, p, 64<<10)
		files = append(files, p)
	}
	d := startDaemon(t, cfg, nil)
	for _, p := range files {
		waitFor(t, 40*time.Second, func() bool { return doneSidecar(p) }, "a done sidecar for "+p, d.logs)
	}
	d.stop(t)
	c := srv.Counters()
	if c.Uploads != 4 || c.RateLimited == 0 {
		t.Errorf("counters %+v", c)
	}
	// Paused together: about one refused login per wait, not one per job per wait.
	if c.RateLimited > 4 {
		t.Errorf("%d logins refused with -3 in 2.5s: the jobs were not paused together", c.RateLimited)
	}
	if c.OverlappingLogins != 0 {
		t.Errorf("%d logins overlapped", c.OverlappingLogins)
	}
}
