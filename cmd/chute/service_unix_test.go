//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/service"
)

// notifyListener is what systemd has for a Type=notify service: a unixgram socket, passed
// as $NOTIFY_SOCKET. It records every datagram.
type notifyListener struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd") // short: a socket path has ~100 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifyListener{path: filepath.Join(dir, "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// states returns the notifications received so far, WATCHDOG=1 left out, and how many
// watchdog pings there were.
func (n *notifyListener) states() (states []string, pings int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		if m == "WATCHDOG=1" {
			pings++
			continue
		}
		states = append(states, strings.SplitN(m, "\n", 2)[0])
	}
	return states, pings
}

func (n *notifyListener) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.msgs, " | ")
}

// startDaemonEnv runs `chute run` with extra environment variables.
func startDaemonEnv(t *testing.T, config string, env ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(chuteBin, "run", "--config", config), logs: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.Env = append(os.Environ(), env...)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.kill() })
	return d
}

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// The real binary under a Type=notify contract: READY=1 once it watches (a file dropped
// right after it is uploaded), watchdog pings as WATCHDOG_USEC asks, RELOADING=1 then
// READY=1 around a SIGHUP, a broken config on SIGHUP logged and the running one kept, and
// STOPPING=1 on SIGTERM with a clean exit and no socket left.
func TestNotifySocketAndSIGHUP(t *testing.T) {
	_, dir, inbox, cfg := tusSetup(t, "", ", settle: 200ms")
	n := listenNotify(t)
	d := startDaemonEnv(t, cfg, "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=200000")
	waitFor(t, 20*time.Second, func() bool { s, _ := n.states(); return len(s) > 0 }, "a notification", d.logs)
	if s, _ := n.states(); s[0] != "READY=1" {
		t.Fatalf("first notification %q, want READY=1 (all: %s)", s[0], n)
	}
	first := filepath.Join(inbox, "after-ready.bin")
	if err := os.WriteFile(first, []byte("dropped as soon as chute said it was ready"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { return doneSidecar(first) }, "the file dropped after READY=1 uploaded", d.logs)
	waitFor(t, 10*time.Second, func() bool { _, p := n.states(); return p >= 2 }, "watchdog pings", n)

	// SIGHUP with the same, valid config: RELOADING=1, then READY=1 again; still running.
	sighup := func(what string, want int) {
		t.Helper()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, func() bool { s, _ := n.states(); return len(s) >= want }, what, n)
		s, _ := n.states()
		if s[want-2] != "RELOADING=1" || s[want-1] != "READY=1" {
			t.Fatalf("%s: notifications %q, want RELOADING=1 then READY=1", what, s)
		}
	}
	sighup("a reload of the same config", 3)
	waitFor(t, 10*time.Second, func() bool {
		l := d.logs.String()
		return strings.Contains(l, "reload: applied")
	}, "the reload's log line", d.logs)

	// SIGHUP with a broken config: every problem logged, the running config kept.
	if err := os.WriteFile(cfg, []byte("providers:\n  own: {type: nope}\nfolders:\n  - {path: /does/not/exist, provider: missing}\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sighup("a reload of a broken config", 5)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(d.logs.String(), "the running config stays") }, "the broken config reported", d.logs)
	for _, want := range []string{"reload: config problem", "bogus", "nope"} {
		if !strings.Contains(d.logs.String(), want) {
			t.Errorf("logs do not mention %q:\n%s", want, d.logs)
		}
	}
	if !d.running() {
		t.Fatalf("chute exited on SIGHUP; logs:\n%s", d.logs)
	}
	second := filepath.Join(inbox, "after-bad-reload.bin")
	os.WriteFile(second, []byte("the old folder is still watched"), 0o644)
	waitFor(t, 20*time.Second, func() bool { return doneSidecar(second) }, "a file in the old folder uploaded after the bad reload", d.logs)
	sock := service.ControlSocket(filepath.Join(dir, "state", "state.db"))
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("control socket gone while running: %v", err)
	}

	d.stop(t)
	if s, _ := n.states(); s[len(s)-1] != "STOPPING=1" {
		t.Errorf("last notification %q, want STOPPING=1 (all: %s)", s[len(s)-1], n)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left after the stop: %v", err)
	}
}

// SIGHUP with a folder added: files dropped there are uploaded.
func TestSIGHUPAddsFolder(t *testing.T) {
	srv, dir, inbox, cfg := tusSetup(t, "", ", settle: 200ms")
	d := startDaemonEnv(t, cfg)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(d.logs.String(), "chute is running") }, "the daemon running", d.logs)
	added := filepath.Join(dir, "added")
	os.MkdirAll(added, 0o755)
	text := fmt.Sprintf("state: %s/state/state.db\nproviders:\n  own: {type: tus, endpoint: \"%s\"}\nfolders:\n  - {path: %s, provider: own, settle: 200ms}\n  - {path: %s, provider: own, settle: 200ms}\n", dir, srv.URL, inbox, added)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 20*time.Second, func() bool {
		l := d.logs.String()
		return strings.Contains(l, "reload: applied") || strings.Contains(l, "refused")
	}, "the reload's outcome", d.logs)
	if strings.Contains(d.logs.String(), "refused") {
		t.Fatalf("the engine refused a valid config; logs:\n%s", d.logs)
	}
	f := filepath.Join(added, "new-folder.bin")
	os.WriteFile(f, []byte("in a folder added by a reload"), 0o644)
	waitFor(t, 20*time.Second, func() bool { return doneSidecar(f) }, "a file in the added folder uploaded", d.logs)
	d.stop(t)
}

// SIGHUP during a large upload (the same folder and provider in the new config, a second
// folder added) does not restart it: one TUS upload, about the file's size on the wire.
func TestSIGHUPDuringUpload(t *testing.T) {
	srv, dir, inbox, cfg := tusSetup(t, "", `, settle: 300ms, exclude: ["*.part"]`)
	const size = 64 << 20
	srv.Throttle(32 << 20) // about 2s for the whole file
	file := filepath.Join(inbox, "big.bin")
	randomFile(t, file, size)
	d := startDaemonEnv(t, cfg)
	waitFor(t, 30*time.Second, func() bool { return srv.Stats().BytesReceived > size/5 }, "20% of the file at tusd", d.logs)
	added := filepath.Join(dir, "added")
	os.MkdirAll(added, 0o755)
	text, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(text, []byte(fmt.Sprintf("  - {path: %s, provider: own}\n", added))...), 0o644)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool {
		l := d.logs.String()
		return strings.Contains(l, "reload: applied") || strings.Contains(l, "refused")
	}, "the reload's outcome", d.logs)
	if srv.Stats().BytesReceived >= size {
		t.Fatal("the upload finished before the reload: the test proves nothing")
	}
	srv.Throttle(0)
	waitFor(t, 60*time.Second, func() bool { return doneSidecar(file) }, "the upload done after the reload", d.logs)
	if !d.running() {
		t.Fatalf("chute exited on SIGHUP; logs:\n%s", d.logs)
	}
	d.stop(t)
	st := srv.Stats()
	if st.Created != 1 || st.BytesReceived > size*11/10 {
		t.Errorf("%d TUS uploads, %d bytes for a %d-byte file: the reload restarted the upload; logs:\n%s", st.Created, st.BytesReceived, size, d.logs)
	}
}

// journalStream is the JOURNAL_STREAM value naming f, as systemd sets it for the stream it
// connects to a service's stderr.
func journalStream(t *testing.T, f *os.File) string {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// Under the journal every line starts with its priority and has no timestamp of chute's own;
// in JSON mode every line chute prints is JSON, main's "stopping" line included.
func TestJournalAndJSONLogs(t *testing.T) {
	for _, c := range []struct {
		name           string
		format         string
		journal        bool
		wantPriorities bool
	}{
		{"journal text", "text", true, true},
		{"journal json", "json", true, true},
		{"json", "json", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, dir, _, cfg := tusSetup(t, "", "")
			text, _ := os.ReadFile(cfg)
			os.WriteFile(cfg, append(text, []byte("log: {format: "+c.format+"}\n")...), 0o644)
			errFile, err := os.Create(filepath.Join(dir, "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer errFile.Close()
			cmd := exec.Command(chuteBin, "run", "--config", cfg)
			cmd.Stderr = errFile
			cmd.Env = os.Environ()
			if c.journal {
				cmd.Env = append(cmd.Env, "JOURNAL_STREAM="+journalStream(t, errFile))
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer cmd.Process.Kill()
			logs := func() string { b, _ := os.ReadFile(errFile.Name()); return string(b) }
			waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs(), "chute is running") }, "the daemon running", stringer(logs))
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, logs())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("no stop; logs:\n%s", logs())
			}
			out := logs()
			if !strings.Contains(out, "stopping (a second signal stops at once)") {
				t.Errorf("main's stopping line is missing:\n%s", out)
			}
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				line := sc.Text()
				if c.wantPriorities {
					if len(line) < 3 || line[0] != '<' || !strings.Contains("34567", line[1:2]) || line[2] != '>' {
						t.Errorf("line without a priority prefix: %q", line)
						continue
					}
					if strings.Contains(line, "msg=stopped") && line[:3] != "<6>" {
						t.Errorf("info line with priority %s: %q", line[:3], line)
					}
					line = line[3:]
				}
				if c.format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Errorf("not a JSON line: %q", line)
						continue
					}
					if _, ok := m["time"]; ok == c.journal {
						t.Errorf("time key present=%v under journal=%v: %q", ok, c.journal, line)
					}
				} else if strings.HasPrefix(line, "time=") {
					t.Errorf("timestamp under the journal: %q", line)
				}
			}
		})
	}
}

type stringer func() string

func (s stringer) String() string { return s() }
