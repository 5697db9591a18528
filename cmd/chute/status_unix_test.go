//go:build unix

package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// uploadingRow matches a job row of `chute status` under way: its progress, rate and time
// left, e.g. "uploading  4.0 MiB/24.0 MiB 16%  2.0 MiB/s  10s".
var uploadingRow = regexp.MustCompile(`uploading\s+[\d.]+ [KMG]?i?B/[\d.]+ [KMG]?i?B \d+%\s+([\d.]+ [KMG]?i?B/s)\s+((\d+h)?(\d+m)?\d+s)`)

// `chute status --watch` under a pseudo-terminal redraws in place and shows the rate and time
// left of a throttled upload; with no daemon, the upload a crash cut says so; `chute status
// ID` shows every error the job had.
func TestStatusWatchUnderTerminal(t *testing.T) {
	srv, _, inbox, cfg := tusSetup(t, "", ", settle: 200ms")
	const size = 24 << 20
	srv.FailNext(2, 500, 0) // two errors for the job's history
	srv.Throttle(2 << 20)   // about 12s for the file
	file := filepath.Join(inbox, "slow clip.mp4")
	randomFile(t, file, size)
	d := startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return srv.Stats().BytesReceived > 4<<20 }, "4 MiB at tusd", d.logs)

	cmd := exec.Command(chuteBin, "status", "--watch", "--interval", "300ms", "--config", cfg)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	screen := &lockedBuffer{}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(screen, tty); close(copied) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGINT)
		werr := cmd.Wait()
		tty.Close()
		<-copied
		if werr != nil {
			t.Errorf("status --watch after SIGINT: %v", werr)
		}
	}
	t.Cleanup(stop)
	var m []string
	waitFor(t, 20*time.Second, func() bool {
		m = uploadingRow.FindStringSubmatch(screen.String())
		return m != nil && strings.Count(screen.String(), "\x1b[H") >= 3
	}, "a redrawn row with the upload's rate and time left", screen)
	stop()
	t.Logf("rate %s, left %s", m[1], m[2])
	if !strings.Contains(m[1], "MiB/s") && !strings.Contains(m[1], "KiB/s") {
		t.Errorf("rate %q: the throttle is 2 MiB/s", m[1])
	}

	// Plain lines when the output is not a terminal.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	var plain, stderr lockedBuffer
	err = run(ctx, []string{"status", "--watch", "--interval", "500ms", "--config", cfg}, &plain, &stderr)
	cancel()
	if err != nil || strings.Contains(plain.String(), "\x1b") || strings.Count(plain.String(), "chute status at") < 2 {
		t.Errorf("status --watch to a pipe: %v %q", err, plain.String())
	}

	// A crash mid-upload: status without a daemon says the upload was interrupted.
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	out, _, err := runCLI(t, "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "interrupted; resumes at the next start") {
		t.Errorf("status after a crash: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "status", "--config", cfg, "--state", "uploading")
	if err != nil || !strings.Contains(out, "slow clip.mp4") {
		t.Errorf("status --state uploading: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "status", "--config", cfg, "--state", "done,failed")
	if err != nil || strings.Contains(out, "slow clip.mp4") || !strings.Contains(out, "no jobs yet") {
		t.Errorf("status --state done,failed: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "status", "--config", cfg, "--state", "sleeping"); exitStatus(err) != 2 {
		t.Errorf("status --state sleeping: %v", err)
	}

	srv.Throttle(0)
	d = startDaemon(t, cfg, nil)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "the file done after the restart", d.logs)
	waitFor(t, 10*time.Second, func() bool {
		out, _, err = runCLI(t, "status", "--config", cfg, "1")
		return err == nil && regexp.MustCompile(`state:\s+done`).MatchString(out)
	}, "job 1 done in its status", d.logs)
	d.stop(t)
	errorsSeen := regexp.MustCompile(`(?m)^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  error \(transient\): .*500`).FindAllString(out, -1)
	for _, want := range []string{"job 1", "file:", file, "provider:", "own", "attempts:", "result:", "sidecar:", file + ".chute.json", "history:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status 1 lacks %q:\n%s", want, out)
		}
	}
	if len(errorsSeen) != 2 || strings.Contains(out, "last error") {
		t.Errorf("status 1 shows %d errors with their times, want 2 (and no current error):\n%s", len(errorsSeen), out)
	}
	if _, _, err := runCLI(t, "status", "--config", cfg, "99"); err == nil || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("status 99: %v", err)
	}
}

// reupload without a daemon records a new job that the next start uploads.
func TestReuploadOffline(t *testing.T) {
	srv, _, inbox, cfg := tusSetup(t, "", ", settle: 200ms")
	file := filepath.Join(inbox, "again.mp4")
	if err := os.WriteFile(file, []byte("again"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool { return doneSidecar(file) }, "the first upload", d.logs)
	d.stop(t)
	out, _, err := runCLI(t, "reupload", "--config", cfg, file)
	if err != nil || !strings.Contains(out, "job 2 queued") {
		t.Fatalf("reupload: %v %s", err, out)
	}
	if _, _, err := runCLI(t, "reupload", "--config", cfg, filepath.Join(inbox, "nope.mp4")); err == nil {
		t.Error("reupload of an unknown file worked")
	}
	d = startDaemon(t, cfg, nil)
	waitFor(t, 30*time.Second, func() bool {
		out, _, err = runCLI(t, "status", "--config", cfg, "2")
		return err == nil && strings.Contains(out, "done")
	}, "job 2 done", d.logs)
	d.stop(t)
	if got := srv.Stats().Created; got != 2 {
		t.Errorf("tusd created %d uploads, want 2", got)
	}
	if !strings.Contains(out, "reupload: uploaded again on purpose") {
		t.Errorf("job 2's history:\n%s", out)
	}
	var ee *exitError
	if _, _, err := runCLI(t, "reupload", "--config", cfg); !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("reupload without a path: %v", err)
	}
}
