package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/xvid/xvidtest"
)

// The daemon killed with SIGKILL after S3 answered the form POST with 201 and before Xvid
// heard of the finish resumes after a restart with the finish: one upload record, one form
// POST (the file is not sent again), one finished upload, the object in S3 byte for byte,
// and a done sidecar with the file id and the download address.
func TestXvidCrashAfterFormPost(t *testing.T) {
	dir := t.TempDir()
	const id, secret = "crash-client", "crash-client-s3cr3t"
	xv := xvidtest.StartTest(t, xvidtest.Options{ClientID: id, ClientSecret: secret, Completing: 100 * time.Millisecond})
	inbox := filepath.Join(dir, "inbox")
	os.MkdirAll(filepath.Join(inbox, "trips"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`
state: %s/state.db
providers:
  xv:
    type: xvid
    endpoint: "%s"
    client_id: %s
    client_secret_file: %s/secret
    pipeline_id: %s
    poll_interval: 200ms
folders:
  - {path: %s, provider: xv, settle: 300ms, exclude: ["*.part"]}
`, dir, xv.URL, id, dir, xvidtest.DefaultPipeline, inbox))

	const size = 24 << 20
	file := filepath.Join(inbox, "trips", "holiday clip.mp4")
	want := randomFile(t, file, size)
	xv.HoldFinish(true)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return xv.Counters().FinishRequests > 0 }, "the finish request after the form POST", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	mid := xv.Counters()
	if mid.FormPostsStored != 1 || mid.Finished != 0 {
		t.Fatalf("at the kill: %+v; want the form stored and no upload finished", mid)
	}
	xv.HoldFinish(false)

	d2 := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)

	c := xv.Counters()
	if c.UploadsCreated != 1 || c.FormPosts != 1 || c.FormPostsStored != 1 || c.Finished != 1 {
		t.Errorf("counters %+v: want one upload record, one form POST, one finished upload", c)
	}
	if c.FileBytes != size || c.StoredBytes != size {
		t.Errorf("%d file bytes sent, %d stored, for a %d-byte file", c.FileBytes, c.StoredBytes, size)
	}
	if un, err := xv.Unfinished(context.Background()); err != nil || len(un) != 0 {
		t.Errorf("unfinished uploads: %v %v", un, err)
	}
	if p := xv.Problems(); len(p) != 0 {
		t.Errorf("the emulator recorded problems: %v", p)
	}
	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	ups := xv.Uploads()
	if len(ups) != 1 || sc.ID != ups[0].File.ID || sc.Provider != "xvid" || sc.SHA256 != want {
		t.Fatalf("sidecar %+v, upload records %+v", sc, ups)
	}
	if wantURL := xv.URL + "/v1/files/downloads/?file_id=" + url.QueryEscape(sc.ID) + "&redirect=true"; sc.URL != wantURL {
		t.Errorf("sidecar url %q, want %q", sc.URL, wantURL)
	}
	if sc.Extra["object_key"] != ups[0].ObjectKey || sc.Extra["pipeline_id"] != xvidtest.DefaultPipeline {
		t.Errorf("sidecar extra %v, record key %q", sc.Extra, ups[0].ObjectKey)
	}
	t.Logf("object key %q", ups[0].ObjectKey)
	if storedSHA256(t, xv, sc.ID) != want {
		t.Error("the object in S3 differs from the file")
	}
}

// Killed in the middle of the form POST, the daemon posts the file again, whole and once,
// with the same upload record: S3 keeps nothing of a cut form.
func TestXvidCrashDuringFormPost(t *testing.T) {
	dir := t.TempDir()
	const id, secret = "crash-client", "crash-client-s3cr3t"
	xv := xvidtest.StartTest(t, xvidtest.Options{ClientID: id, ClientSecret: secret, Completing: 100 * time.Millisecond})
	inbox := filepath.Join(dir, "inbox")
	os.MkdirAll(inbox, 0o755)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
state: %s/state.db
providers:
  xv: {type: xvid, endpoint: "%s", client_id: %s, client_secret: %s, pipeline_id: %s, poll_interval: 200ms}
folders:
  - {path: %s, provider: xv, settle: 300ms, exclude: ["*.part"]}
`, dir, xv.URL, id, secret, xvidtest.DefaultPipeline, inbox))
	const size = 64 << 20
	file := filepath.Join(inbox, "clip.mp4")
	want := randomFile(t, file, size)
	xv.ThrottleUploads(32 << 20)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return xv.Counters().FileBytes > size*2/5 }, "40% of the file at the S3 front", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if c := xv.Counters(); c.FormPostsStored != 0 {
		t.Fatalf("the form was stored before the kill: the test proves nothing (%+v)", c)
	}
	xv.ThrottleUploads(0)
	d2 := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)
	c := xv.Counters()
	if c.UploadsCreated != 1 || c.FormPostsStored != 1 || c.Finished != 1 || c.StoredBytes != size {
		t.Errorf("counters %+v: want one record, one stored form of %d bytes, one finish", c, size)
	}
	t.Logf("file bytes sent in all: %d (%.2fx the file)", c.FileBytes, float64(c.FileBytes)/size)
	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	if storedSHA256(t, xv, sc.ID) != want || sc.SHA256 != want {
		t.Error("the object in S3 differs from the file")
	}
}

// storedSHA256 is the hex SHA-256 of what S3 holds for the file id.
func storedSHA256(t *testing.T, xv *xvidtest.Server, id string) string {
	t.Helper()
	rc, err := xv.Stored(context.Background(), uploader.Result{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Every key the xvid example shows, commented or not, is a key the real provider takes.
func TestXvidExampleKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "examples", "xvid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment the provider's optional keys (four spaces in, under providers.xv);
	// client_secret_file is the loader's, for every secret.
	text := regexp.MustCompile(`(?m)^    # ([a-z]+(?:_[a-z]+)*): `).ReplaceAllStringFunc(string(b), func(m string) string {
		if m == "    # client_secret_file: " {
			return m
		}
		return "    " + m[len("    # "):]
	})
	path := filepath.Join(t.TempDir(), "xvid.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XVID_CLIENT_ID", "id")
	t.Setenv("XVID_CLIENT_SECRET", "secret")
	reg := registry()
	cfg, err := configs.Load(path, configs.Options{SkipFilesystem: true, Types: func(n string) (configs.TypeInfo, bool) {
		ty, ok := reg.Lookup(n)
		return configs.TypeInfo{NewOptions: ty.NewOptions, EndpointRequired: ty.DefaultEndpoint == ""}, ok
	}})
	if err == nil && cfg.Providers["xv"].Endpoint == "" {
		t.Errorf("the endpoint key was not uncommented:\n%s", text)
	}
	if err != nil {
		t.Errorf("the example with every key uncommented:\n%v\n%s", err, text)
	}
}
