package service

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chute-dev/chute/watcher"
)

func TestInflightRate(t *testing.T) {
	sent := new(atomic.Int64)
	f := newInflight("p", sent)
	t0 := f.start
	if r, _ := f.rate(t0.Add(100 * time.Millisecond)); r != 0 {
		t.Errorf("rate after 100ms = %v, want 0 (too soon to say)", r)
	}
	// A burst at the start (socket buffers filling), then 1000 B/s.
	sent.Store(5000)
	if r, _ := f.rate(t0.Add(time.Second)); r != 5000 {
		t.Errorf("rate since the start = %v, want 5000", r)
	}
	for i := 2; i <= 30; i++ {
		sent.Store(5000 + int64(i-1)*1000)
		f.rate(t0.Add(time.Duration(i) * time.Second))
	}
	r, n := f.rate(t0.Add(30 * time.Second))
	if n != 34000 || r < 990 || r > 1010 {
		t.Errorf("rate over the window = %v (sent %d), want 1000", r, n)
	}
	if len(f.samples) > int(rateWindow/(250*time.Millisecond))+2 {
		t.Errorf("%d samples kept", len(f.samples))
	}
}

func TestHealthSaysWhatIsWrong(t *testing.T) {
	d := &Daemon{scrub: &scrubber{}}
	if bad := d.health(); len(bad) != 1 || !strings.Contains(bad[0], "not started") {
		t.Errorf("before the watcher: %q", bad)
	}
	d.watchState.Store(&watchSnapshot{at: time.Now(), folders: []watcher.FolderState{{Path: "/a", Dirs: 1}, {Path: "/b", Err: errors.New("the folder was removed")}}})
	if bad := d.health(); len(bad) != 1 || bad[0] != "folder /b: the folder was removed" {
		t.Errorf("a folder gone: %q", bad)
	}
	d.watchState.Store(&watchSnapshot{at: time.Now().Add(-time.Minute), folders: []watcher.FolderState{{Path: "/a", Dirs: 1}}})
	if bad := d.health(); len(bad) != 1 || !strings.Contains(bad[0], "has not turned for 1m0s") {
		t.Errorf("a stuck loop: %q", bad)
	}
	d.watchState.Store(&watchSnapshot{at: time.Now(), folders: []watcher.FolderState{{Path: "/a", Dirs: 1}}})
	err := errors.New("no space left on device")
	d.dbErr.Store(&err)
	if bad := d.health(); len(bad) != 1 || !strings.Contains(bad[0], "state database cannot be written (no space left on device)") {
		t.Errorf("database: %q", bad)
	}
	d.dbErr.Store(nil)
	if bad := d.health(); len(bad) != 0 {
		t.Errorf("all well: %q", bad)
	}
}

func TestGateCountsNewPauses(t *testing.T) {
	g := newGate(10*time.Millisecond, time.Second, slog.New(slog.DiscardHandler))
	var pauses []string
	g.onPause = func(r string) { pauses = append(pauses, r) }
	g.rateLimited(50*time.Millisecond, "429")
	g.rateLimited(80*time.Millisecond, "429 again") // made longer: the same pause
	if len(pauses) != 1 || pauses[0] != reasonRateLimited {
		t.Fatalf("pauses %v", pauses)
	}
	time.Sleep(100 * time.Millisecond)
	g.rateLimited(50*time.Millisecond, "429 later")
	for i := range outageAfter {
		g.failed(uint64(i), true, "refused")
	}
	if len(pauses) != 3 || pauses[1] != reasonRateLimited || pauses[2] != "unreachable" {
		t.Errorf("pauses %v", pauses)
	}
}
