package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chute-dev/chute/store"
)

// A damaged state database: `chute run`, `status` and `retry` exit 3 with the file's name and
// what to do, never with a Go crash (which exits 2 like a bad config and, under a service
// manager, loops).
func TestDamagedStateDatabase(t *testing.T) {
	// A real database of a few thousand jobs, to damage.
	good := filepath.Join(t.TempDir(), "good.db")
	st, err := store.Open(good, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var files []store.NewJob
	for i := range 3000 {
		files = append(files, store.NewJob{Path: fmt.Sprintf("/srv/in/clip-%05d.mp4", i), Size: int64(1000 + i),
			ModTime: time.Unix(1700000000+int64(i), 0), Folder: "/srv/in", Provider: "own"})
	}
	if _, err := st.AddBatch(context.Background(), files, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const ps = 4096 // bbolt's page size here; only where the garbage goes depends on it
	cases := map[string]func([]byte) []byte{
		"cut to half": func(b []byte) []byte { return b[:len(b)/2] },
		"garbage in pages": func(b []byte) []byte {
			rng := rand.New(rand.NewPCG(7, 7))
			for _, page := range []int{len(b) / ps / 3, len(b) / ps / 2, len(b) / ps * 2 / 3} {
				for i := page * ps; i < (page+1)*ps; i++ {
					b[i] = byte(rng.Uint32())
				}
			}
			return b
		},
		"empty": func([]byte) []byte { return nil },
		"zeros": func(b []byte) []byte { return make([]byte, len(b)) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			inbox := filepath.Join(dir, "in")
			if err := os.Mkdir(inbox, 0o755); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(dir, "state.db")
			if err := os.WriteFile(state, damage(append([]byte(nil), orig...)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := writeConfig(t, dir, fmt.Sprintf("state: %s\nproviders:\n  own: {type: tus, endpoint: \"http://127.0.0.1:1/files/\"}\nfolders:\n  - {path: %s, provider: own}\n", state, inbox))
			for _, args := range [][]string{{"run"}, {"status"}, {"status", "--json"}, {"retry", "--failed"}} {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				cmd := exec.CommandContext(ctx, chuteBin, append(args, "--config", cfg)...)
				out, err := cmd.CombinedOutput()
				cancel()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 3 {
					t.Errorf("chute %s: %v, want exit status 3; output:\n%s", strings.Join(args, " "), err, out)
					continue
				}
				msg := string(out)
				for _, want := range []string{state, "is damaged", "mv " + state + " " + state + ".damaged", "start chute again", "sidecars say done are not uploaded again"} {
					if !strings.Contains(msg, want) {
						t.Errorf("chute %s: the message lacks %q:\n%s", strings.Join(args, " "), want, msg)
					}
				}
				for _, crash := range []string{"panic", "goroutine", "fatal error", "SIGBUS", "SIGSEGV"} {
					if strings.Contains(msg, crash) {
						t.Errorf("chute %s crashed (%q):\n%s", strings.Join(args, " "), crash, msg)
					}
				}
			}
			// As the message says: moved aside, chute starts afresh.
			if err := os.Rename(state, state+".damaged"); err != nil {
				t.Fatal(err)
			}
			if out, _, err := runCLI(t, "status", "--config", cfg); err != nil || !strings.Contains(out, "no jobs yet") {
				t.Errorf("status once the file is moved aside: %v %q", err, out)
			}
			d := startDaemon(t, cfg, nil)
			waitFor(t, 15*time.Second, func() bool { _, err := os.Stat(state); return err == nil }, "a new state database", d.logs)
			d.stop(t)
		})
	}
}
