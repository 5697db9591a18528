package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/gcore/gcoretest"
)

// The daemon killed with SIGKILL during the TUS upload to Gcore resumes after a restart: one
// video entity, one TUS upload, about the file's size on the wire, and a done sidecar with
// the video's iframe_url.
func TestGcoreCrashResume(t *testing.T) {
	dir := t.TempDir()
	const key = "crash-test-key"
	gc, err := gcoretest.Start(gcoretest.Options{Dir: filepath.Join(dir, "gcore"), APIKey: key, Step: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	inbox := filepath.Join(dir, "inbox")
	os.MkdirAll(inbox, 0o755)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
state: %s/state.db
providers:
  gc:
    type: gcore
    endpoint: "%s"
    api_key_file: %s/key
    poll_interval: 200ms
folders:
  - {path: %s, provider: gc, settle: 300ms, exclude: ["*.part"]}
`, dir, gc.URL, dir, inbox))
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	const size = 128 << 20
	gc.UploadServer(0).Throttle(32 << 20)
	gc.UploadServer(1).Throttle(32 << 20)
	file := filepath.Join(inbox, "holiday clip.mp4")
	want := randomFile(t, file, size)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return gc.Stats().BytesReceived > size*2/5 }, "40% of the file at the upload server", d.logs)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	mid := gc.Counters()
	if mid.BytesReceived[0]+mid.BytesReceived[1] >= size {
		t.Fatal("the upload finished before the kill: the test proves nothing")
	}
	gc.UploadServer(0).Throttle(0)
	gc.UploadServer(1).Throttle(0)
	d2 := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "a done sidecar after the restart", d2.logs)
	d2.stop(t)

	c := gc.Counters()
	if c.VideosCreated != 1 {
		t.Errorf("%d video entities created, want 1", c.VideosCreated)
	}
	if c.Uploads[0]+c.Uploads[1] != 1 {
		t.Errorf("%v TUS uploads created, want 1", c.Uploads)
	}
	got := c.BytesReceived[0] + c.BytesReceived[1]
	if got > size*12/10 {
		t.Errorf("upload servers received %d bytes for a %d-byte file (%.2fx), want <= 1.2x", got, size, float64(got)/size)
	}
	t.Logf("bytes at the kill %d, in all %d (%.3fx the file)", mid.BytesReceived[0]+mid.BytesReceived[1], got, float64(got)/size)
	sc, err := service.ReadSidecar(file)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.ParseInt(sc.ID, 10, 64)
	v, ok := gc.Video(id)
	if !ok {
		t.Fatalf("sidecar id %q names no video at the emulator", sc.ID)
	}
	if sc.URL != v.IframeURL || sc.URL == "" {
		t.Errorf("sidecar url %q, the video's iframe_url is %q", sc.URL, v.IframeURL)
	}
	if sc.Provider != "gcore" || sc.Extra["hls_url"] == "" || sc.SHA256 != want {
		t.Errorf("sidecar %+v", sc)
	}
	rc, err := gc.Stored(uploader.Result{ID: sc.ID})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, rc)
	rc.Close()
	if hex.EncodeToString(h.Sum(nil)) != want {
		t.Error("the bytes at the upload server differ from the file")
	}
}

// The example configs of the providers this build has load with the real option structs.
func TestExamplesLoadWithRealProviders(t *testing.T) {
	reg := registry()
	t.Setenv("GCORE_API_KEY", "k")
	t.Setenv("REDGIFS_TOKEN", "t0ken")
	t.Setenv("UPLOADGIG_PASS", "p")
	t.Setenv("XVID_CLIENT_ID", "id")
	t.Setenv("XVID_CLIENT_SECRET", "secret")
	for _, name := range []string{"tus.yaml", "gcore.yaml", "redgifs.yaml", "uploadgig.yaml", "xvid.yaml"} {
		path := filepath.Join("..", "..", "configs", "examples", name)
		_, err := configs.Load(path, configs.Options{SkipFilesystem: true, Types: func(n string) (configs.TypeInfo, bool) {
			ty, ok := reg.Lookup(n)
			return configs.TypeInfo{NewOptions: ty.NewOptions, EndpointRequired: ty.DefaultEndpoint == ""}, ok
		}})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
