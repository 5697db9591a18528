package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait for an outcome; it is generous because the
// race detector and a shared machine slow things down.
const waitLimit = 20 * time.Second

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// received is a Ready and when the test received it.
type received struct {
	Ready
	at time.Time
}

// harness runs a Watcher and collects what it reports.
type harness struct {
	t      *testing.T
	w      *Watcher
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error // Run's result
	out    chan []Ready
	drain  chan struct{} // closed when the collector has stopped
	stopMu sync.Once
	runErr error

	mu      sync.Mutex
	got     []received
	batches int
	empty   int // empty batches seen (must stay 0)
	markers int
}

// start runs a watcher over folders; prep, if not nil, adjusts it before Run.
func start(t *testing.T, folders []Folder, opts Options, prep func(*Watcher)) *harness {
	t.Helper()
	h := &harness{t: t, logs: &syncBuffer{}, done: make(chan error, 1), out: make(chan []Ready), drain: make(chan struct{})}
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := New(folders, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if prep != nil {
		prep(w)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- w.Run(ctx, h.out) }()
	go func() {
		defer close(h.drain)
		for b := range h.out {
			now := time.Now()
			h.mu.Lock()
			h.batches++
			if len(b) == 0 {
				h.empty++
			}
			for _, r := range b {
				h.got = append(h.got, received{r, now})
			}
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		if h.empty > 0 {
			t.Errorf("got %d empty batches, want none", h.empty)
		}
	})
	return h
}

// stop cancels Run, waits for it, and stops the collector.
func (h *harness) stop() error {
	h.stopMu.Do(func() {
		h.cancel()
		select {
		case h.runErr = <-h.done:
		case <-time.After(waitLimit):
			h.t.Fatalf("Run did not return within %v of cancel", waitLimit)
		}
		close(h.out)
		<-h.drain
	})
	return h.runErr
}

// waitFor polls until cond holds on what was received so far.
func (h *harness) waitFor(what string, cond func(got []received) bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		h.mu.Lock()
		ok := cond(h.got)
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s; got %v", waitLimit, what, h.paths())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog polls until the log has a line containing every one of parts.
func (h *harness) waitLog(parts ...string) {
	h.t.Helper()
	h.waitLogCount(1, parts...)
}

// waitLogCount polls until the log has n lines containing every one of parts.
func (h *harness) waitLogCount(n int, parts ...string) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for logCount(h.logs.String(), parts...) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for a log line with %q; log:\n%s", parts, h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logCount counts log lines containing every one of parts.
func logCount(log string, parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func logHas(log string, parts ...string) bool { return logCount(log, parts...) > 0 }

// count returns how often path was reported, and the last report.
func (h *harness) count(path string) (int, received) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, last := 0, received{}
	for _, r := range h.got {
		if r.Path == path {
			n++
			last = r
		}
	}
	return n, last
}

func (h *harness) paths() []string {
	var ps []string
	for _, r := range h.got {
		ps = append(ps, fmt.Sprintf("%s(%d)", r.Path, r.Size))
	}
	return ps
}

// waitReported waits until path has been reported at least n times.
func (h *harness) waitReported(path string, n int) received {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%s reported %d time(s)", path, n), func(got []received) bool {
		c := 0
		for _, r := range got {
			if r.Path == path {
				c++
			}
		}
		return c >= n
	})
	_, last := h.count(path)
	return last
}

// barrier drops a fresh marker file (named to pass the test's filters) in
// dir and waits until it is reported. Anything that was pending before the
// marker was written has then had at least as long to settle, so a file not
// reported by now is not going to be.
func (h *harness) barrier(dir string) {
	h.t.Helper()
	h.markers++
	p := filepath.Join(dir, fmt.Sprintf("zz-barrier-%d.mark", h.markers))
	writeFile(h.t, p, 1)
	h.waitReported(p, 1)
}

// wantCount fails unless path was reported exactly n times.
func (h *harness) wantCount(path string, n int) {
	h.t.Helper()
	if c, _ := h.count(path); c != n {
		h.t.Errorf("%s reported %d time(s), want %d; got %v", path, c, n, h.paths())
	}
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("y"), size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestDroppedFilesReportedOnceWithSize(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	h := start(t, []Folder{
		{Path: a, Recursive: true, Settle: 150 * time.Millisecond},
		{Path: b, Recursive: true, Settle: 150 * time.Millisecond},
	}, Options{}, nil)

	files := map[string]struct {
		size, folder int
	}{
		filepath.Join(a, "one.mp4"):   {10, 0},
		filepath.Join(a, "two.webm"):  {2000, 0},
		filepath.Join(b, "three.bin"): {0, 1},
	}
	for p, f := range files {
		writeFile(t, p, f.size)
	}
	for p, f := range files {
		r := h.waitReported(p, 1)
		if r.Size != int64(f.size) || r.Folder != f.folder {
			t.Errorf("%s: got size %d folder %d, want size %d folder %d", p, r.Size, r.Folder, f.size, f.folder)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !r.ModTime.Equal(st.ModTime()) {
			t.Errorf("%s: ModTime %v, want %v", p, r.ModTime, st.ModTime())
		}
	}
	h.barrier(a)
	for p := range files {
		h.wantCount(p, 1)
	}
}

func TestSlowAppendsGiveOneReady(t *testing.T) {
	dir := t.TempDir()
	h := start(t, []Folder{{Path: dir, Settle: 200 * time.Millisecond}}, Options{}, nil)

	p := filepath.Join(dir, "slow.mp4")
	var lastWrite time.Time
	for i := range 10 {
		if i > 0 {
			time.Sleep(60 * time.Millisecond) // the writer's pace, not an assertion
		}
		appendFile(t, p, 100)
		lastWrite = time.Now()
	}
	r := h.waitReported(p, 1)
	if r.Size != 1000 {
		t.Errorf("size %d, want 1000 (the final size)", r.Size)
	}
	if !r.at.After(lastWrite) {
		t.Errorf("reported at %v, before the last write at %v", r.at, lastWrite)
	}
	h.barrier(dir)
	h.wantCount(p, 1)
}

func TestNewSubdirectory(t *testing.T) {
	rec, flat := t.TempDir(), t.TempDir()
	h := start(t, []Folder{
		{Path: rec, Recursive: true, Settle: 150 * time.Millisecond},
		{Path: flat, Recursive: false, Settle: 150 * time.Millisecond},
	}, Options{}, nil)

	// mkdir -p then write at once: the watch on the new directories cannot
	// exist yet, so only the scan on Create finds these.
	deep := filepath.Join(rec, "a", "b", "c")
	mkdir(t, deep)
	inDeep := filepath.Join(deep, "deep.mp4")
	inA := filepath.Join(rec, "a", "top.mp4")
	writeFile(t, inDeep, 5)
	writeFile(t, inA, 6)
	h.waitReported(inDeep, 1)
	h.waitReported(inA, 1)

	// A tree moved in arrives with its files: only the scan of the new
	// directory can find them, and its subdirectories get watches too.
	staging := t.TempDir()
	mkdir(t, filepath.Join(staging, "tree", "x", "y"))
	writeFile(t, filepath.Join(staging, "tree", "moved.mp4"), 3)
	writeFile(t, filepath.Join(staging, "tree", "x", "y", "moved-deep.mp4"), 4)
	if err := os.Rename(filepath.Join(staging, "tree"), filepath.Join(rec, "tree")); err != nil {
		t.Fatal(err)
	}
	h.waitReported(filepath.Join(rec, "tree", "moved.mp4"), 1)
	h.waitReported(filepath.Join(rec, "tree", "x", "y", "moved-deep.mp4"), 1)
	movedLater := filepath.Join(rec, "tree", "x", "y", "later.mp4")
	writeFile(t, movedLater, 5)
	h.waitReported(movedLater, 1)

	// Once watched, later files in the new directory come from events.
	later := filepath.Join(deep, "later.mp4")
	writeFile(t, later, 7)
	h.waitReported(later, 1)

	// A non-recursive folder ignores subdirectories.
	sub := filepath.Join(flat, "sub")
	mkdir(t, sub)
	ignored := filepath.Join(sub, "ignored.mp4")
	writeFile(t, ignored, 8)
	h.barrier(flat)
	h.wantCount(ignored, 0)
}

func TestInitialScanRescanAndModify(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	mkdir(t, sub)
	old1, old2 := filepath.Join(dir, "old1.mp4"), filepath.Join(sub, "old2.mp4")
	writeFile(t, old1, 11)
	writeFile(t, old2, 12)
	// Make them old on disk; they must still settle from when they are seen.
	past := time.Now().Add(-time.Hour)
	for _, p := range []string{old1, old2} {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}

	h := start(t, []Folder{{Path: dir, Recursive: true, Settle: 150 * time.Millisecond}},
		Options{Rescan: 100 * time.Millisecond}, nil)
	h.waitReported(old1, 1)
	h.waitReported(old2, 1)

	// Periodic rescans and an explicit one report nothing again.
	h.waitLogCount(3, "rescan done", "why=periodic")
	h.w.Rescan()
	h.waitLog("rescan done", "why=requested")
	h.barrier(dir)
	h.wantCount(old1, 1)
	h.wantCount(old2, 1)

	// A reported file that changes is reported again, with its new size.
	appendFile(t, old2, 8)
	r := h.waitReported(old2, 2)
	if r.Size != 20 {
		t.Errorf("re-reported size %d, want 20", r.Size)
	}
	h.barrier(dir)
	h.wantCount(old2, 2)
	h.wantCount(old1, 1)
}

func TestForget(t *testing.T) {
	dir := t.TempDir()
	h := start(t, []Folder{{Path: dir, Settle: 100 * time.Millisecond}}, Options{}, nil)
	p := filepath.Join(dir, "f.mp4")
	writeFile(t, p, 3)
	h.waitReported(p, 1)

	h.w.Forget(p)
	h.waitReported(p, 2)

	// Forgetting a file that is gone reports nothing.
	gone := filepath.Join(dir, "gone.mp4")
	writeFile(t, gone, 3)
	h.waitReported(gone, 1)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	h.w.Forget(gone)
	h.barrier(dir)
	h.wantCount(gone, 1)
	h.wantCount(p, 2)
}

func TestIncludeExclude(t *testing.T) {
	media, plain := t.TempDir(), t.TempDir()
	h := start(t, []Folder{
		{
			Path: media, Recursive: true, Settle: 100 * time.Millisecond,
			Include: []string{"*.mp4", "*.mark", "docs/*.txt"},
			Exclude: []string{"*.part", ".*", "skip/*"},
		},
		{Path: plain, Recursive: true, Settle: 100 * time.Millisecond},
	}, Options{}, nil)

	for _, d := range []string{"docs", "skip", "sub"} {
		mkdir(t, filepath.Join(media, d))
	}
	cases := []struct {
		rel  string
		want bool
	}{
		{"a.mp4", true},
		{"sub/b.mp4", true},          // base-name glob matches at any depth
		{"docs/c.txt", true},         // glob with '/' matches the relative path
		{"sub/docs-like.txt", false}, // no include matches
		{"d.txt", false},             // "docs/*.txt" is not a base-name glob
		{"e.mp4.part", false},
		{"docs/f.txt.part", false},
		{".hidden.mp4", false},
		{"sub/.hidden.mp4", false},
		{"skip/g.mp4", false}, // exclude wins over include
		{"h.mp4.chute.json", false},
	}
	for _, c := range cases {
		writeFile(t, filepath.Join(media, filepath.FromSlash(c.rel)), 4)
	}

	// With no filters, every file is reported except chute's own.
	data := filepath.Join(plain, "clip.bin")
	writeFile(t, data, 4)
	sidecar := filepath.Join(plain, "clip.bin"+SidecarSuffix)
	writeFile(t, sidecar, 4)
	tmp, err := os.CreateTemp(plain, ".clip.bin"+SidecarTempPattern)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString("{}"); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if !IsChuteFile(tmp.Name()) {
		t.Errorf("IsChuteFile(%q) = false for a temp made with SidecarTempPattern", tmp.Name())
	}

	h.waitReported(data, 1)
	h.barrier(media)
	h.barrier(plain)
	for _, c := range cases {
		want := 0
		if c.want {
			want = 1
		}
		h.wantCount(filepath.Join(media, filepath.FromSlash(c.rel)), want)
	}
	h.wantCount(sidecar, 0)
	h.wantCount(tmp.Name(), 0)
}

func TestIsChuteFile(t *testing.T) {
	for name, want := range map[string]bool{
		"clip.mp4.chute.json":                       true,
		"/a/b/clip.mp4.chute.json":                  true,
		".clip.mp4.chute.json.123456.tmp":           true,
		".clip.mp4.chute.json.abc.tmp":              true,
		"clip.mp4":                                  false,
		"clip.chute.json.mp4":                       false,
		"clip.mp4.tmp":                              false,
		".clip.mp4.tmp":                             false,
		"clip.mp4.chute.json.123.tmp":               false, // not hidden: not ours
		".chute.json":                               true,
		"notes.chute.jsonx":                         false,
		filepath.Join("dir", ".x.chute.json.1.tmp"): true,
	} {
		if got := IsChuteFile(name); got != want {
			t.Errorf("IsChuteFile(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	bad := map[string][]Folder{
		"relative path":          {{Path: "drop"}},
		"bad include glob":       {{Path: dir, Include: []string{"[a-"}}},
		"bad exclude glob":       {{Path: dir, Exclude: []string{"x\\"}}},
		"empty glob":             {{Path: dir, Include: []string{""}}},
		"negative settle":        {{Path: dir, Settle: -time.Second}},
		"same folder twice":      {{Path: dir}, {Path: dir + "/"}},
		"inside recursive":       {{Path: dir, Recursive: true}, {Path: filepath.Join(dir, "x")}},
		"recursive around later": {{Path: filepath.Join(dir, "x")}, {Path: dir, Recursive: true}},
	}
	for name, folders := range bad {
		if _, err := New(folders, Options{}); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
	if _, err := New([]Folder{{Path: dir}, {Path: filepath.Join(dir, "x")}}, Options{}); err != nil {
		t.Errorf("a folder inside a non-recursive one: %v", err)
	}
	if _, err := New(nil, Options{Poll: -1}); err == nil {
		t.Errorf("negative poll accepted")
	}
}

func TestUnreadableFileStaysPending(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "locked.mp4")

	// As root, chmod 000 does not stop reading; simulate the open failure.
	var locked atomic.Bool
	var prep func(*Watcher)
	if os.Geteuid() == 0 {
		t.Log("running as root: simulating EACCES from open instead of chmod 000")
		prep = func(w *Watcher) {
			w.open = func(name string) (*os.File, error) {
				if name == p && locked.Load() {
					return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
				}
				return os.Open(name)
			}
		}
	}
	lock := func(on bool) {
		locked.Store(on)
		if prep == nil {
			mode := os.FileMode(0o644)
			if on {
				mode = 0
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}

	h := start(t, []Folder{{Path: dir, Settle: 100 * time.Millisecond}}, Options{}, prep)
	writeFile(t, p, 9)
	lock(true)
	h.waitLog("not readable", "path="+p)
	h.barrier(dir)
	h.barrier(dir) // more ticks: the warning must stay single
	h.wantCount(p, 0)
	if n := logCount(h.logs.String(), "not readable", "path="+p); n != 1 {
		t.Errorf("permission warning logged %d times, want once", n)
	}

	// Once readable it is reported (the retry happens on later ticks).
	lock(false)
	r := h.waitReported(p, 1)
	if r.Size != 9 {
		t.Errorf("size %d, want 9", r.Size)
	}
}

func TestDeletedPendingFileDropped(t *testing.T) {
	dir := t.TempDir()
	h := start(t, []Folder{{Path: dir, Recursive: true, Settle: 300 * time.Millisecond}}, Options{}, nil)

	// A file deleted while pending is never reported.
	p := filepath.Join(dir, "brief.mp4")
	writeFile(t, p, 5)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}

	// A directory removed while its files are pending: dropped too, and a
	// directory created again under the same name is watched again.
	sub := filepath.Join(dir, "sub")
	mkdir(t, sub)
	inSub := filepath.Join(sub, "x.mp4")
	writeFile(t, inSub, 5)
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	h.barrier(dir)
	h.wantCount(p, 0)
	h.wantCount(inSub, 0)

	mkdir(t, sub)
	again := filepath.Join(sub, "again.mp4")
	writeFile(t, again, 6)
	h.waitReported(again, 1)
	later := filepath.Join(sub, "later.mp4")
	writeFile(t, later, 6)
	h.waitReported(later, 1)
}

func TestVanishedFileDroppedByPoll(t *testing.T) {
	// The poll, not only the Remove event, drops a file that is gone: a
	// deletion the watcher missed (simulated by Forget on a missing path,
	// which marks it pending without any event).
	dir := t.TempDir()
	h := start(t, []Folder{{Path: dir, Settle: 100 * time.Millisecond}}, Options{}, nil)
	ghost := filepath.Join(dir, "ghost.mp4")
	h.barrier(dir) // Run is up
	h.w.Forget(ghost)
	h.waitLog("pending file vanished", "path="+ghost)
	h.barrier(dir)
	h.wantCount(ghost, 0)
}

func TestTenThousandFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 files: skipped with -short")
	}
	const n = 10_000
	dir := t.TempDir()
	h := start(t, []Folder{{Path: dir, Settle: 200 * time.Millisecond}}, Options{}, nil)
	h.barrier(dir) // Run is up

	// Write them elsewhere on the same file system, then move them in as
	// fast as renames go, so they land (nearly) at once.
	staging := t.TempDir()
	for i := range n {
		writeFile(t, filepath.Join(staging, fmt.Sprintf("f%05d.mp4", i)), i%97)
	}
	begin := time.Now()
	for i := range n {
		name := fmt.Sprintf("f%05d.mp4", i)
		if err := os.Rename(filepath.Join(staging, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	lastWrite := time.Now()
	h.waitFor(fmt.Sprintf("%d files", n), func(got []received) bool { return len(got) >= n+1 })
	all, tail := time.Since(begin), time.Since(lastWrite)
	h.mu.Lock()
	batches := h.batches - 1 // less the barrier's
	h.mu.Unlock()
	t.Logf("%d files: moving them in took %v; all reported %v after the first move, %v after the last (settle 200ms), in %d batches; overflow rescans: %d",
		n, lastWrite.Sub(begin).Round(time.Millisecond), all.Round(time.Millisecond), tail.Round(time.Millisecond), batches,
		logCount(h.logs.String(), "rescan done", "why=overflow"))

	h.barrier(dir)
	h.mu.Lock()
	seen := make(map[string]int, n)
	for _, r := range h.got {
		seen[r.Path]++
	}
	h.mu.Unlock()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("f%05d.mp4", i))
		if seen[p] != 1 {
			t.Fatalf("%s reported %d times, want once", p, seen[p])
		}
	}
}

func TestRunStopsPromptlyOnCancel(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := New([]Folder{{Path: dir, Recursive: true, Settle: 50 * time.Millisecond}}, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads out: Run is blocked on handing over a batch when the
	// context is cancelled, and must still return at once.
	out := make(chan []Ready)
	writeFile(t, filepath.Join(dir, "a.mp4"), 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, out) }()

	// Wait (with a deadline) until Run has a batch for us, without taking it.
	deadline := time.Now().Add(waitLimit)
	for !logHas(logs.String(), "files ready", "count=1") {
		if time.Now().After(deadline) {
			t.Fatalf("no batch became ready; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	cancel()
	begin := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v on cancel, want nil", err)
		}
		t.Logf("Run returned %v after cancel", time.Since(begin))
		if d := time.Since(begin); d > time.Second {
			t.Errorf("Run took %v to return after cancel", d)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
	goleak.VerifyNone(t)

	// A second Run starts afresh and reports the file again.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- w.Run(ctx2, out) }()
	select {
	case b := <-out:
		if len(b) != 1 {
			t.Errorf("second Run: batch %v, want the one file", b)
		}
	case <-time.After(waitLimit):
		t.Fatal("second Run reported nothing")
	}
	cancel2()
	if err := <-done; err != nil {
		t.Errorf("second Run: %v", err)
	}
	goleak.VerifyNone(t)
}

func TestRunFailsToStart(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	file := filepath.Join(dir, "file")
	writeFile(t, file, 1)
	for name, path := range map[string]string{"missing folder": missing, "not a directory": file} {
		w, err := New([]Folder{{Path: dir, Settle: time.Second}, {Path: path}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.Run(context.Background(), make(chan []Ready)) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: Run returned %v, want an error naming %s", name, err, path)
			}
			if name == "missing folder" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %v does not wrap fs.ErrNotExist", name, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%s: Run did not return", name)
		}
	}
	goleak.VerifyNone(t)
}

func TestMaxWaitWarning(t *testing.T) {
	dir := t.TempDir()
	h := start(t, []Folder{{Path: dir, Settle: 300 * time.Millisecond, MaxWait: 350 * time.Millisecond}}, Options{}, nil)
	p := filepath.Join(dir, "growing.mp4")

	// Keep the file changing until the warning shows up.
	deadline := time.Now().Add(waitLimit)
	for !logHas(h.logs.String(), "still changing", "path="+p) {
		if time.Now().After(deadline) {
			t.Fatalf("no max-wait warning for %s; log:\n%s", p, h.logs.String())
		}
		appendFile(t, p, 10)
		time.Sleep(40 * time.Millisecond) // the writer's pace
	}
	if c, _ := h.count(p); c != 0 {
		t.Fatalf("a file still being written was reported")
	}
	// Watching goes on: when the writes stop, it is reported once.
	h.waitReported(p, 1)
	h.barrier(dir)
	h.wantCount(p, 1)
	if n := logCount(h.logs.String(), "still changing", "path="+p); n != 1 {
		t.Errorf("max-wait warning logged %d times, want once", n)
	}
}

func TestOverflowTriggersRescan(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("no inotify queue limit to overflow: %v", err)
	}
	var queue int
	if _, err := fmt.Sscan(string(raw), &queue); err != nil || queue > 1<<20 {
		t.Skipf("inotify queue of %q events: too large to overflow here", raw)
	}

	dir := t.TempDir()
	stall := filepath.Join(dir, "stall.mp4")
	stalled, gate := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	// The first open of stall.mp4 blocks the watcher's loop, so that events
	// pile up in the kernel until its queue overflows.
	prep := func(w *Watcher) {
		w.open = func(name string) (*os.File, error) {
			if name == stall && once.CompareAndSwap(false, true) {
				close(stalled)
				<-gate
			}
			return os.Open(name)
		}
	}
	rec := &recorder{}
	h := start(t, []Folder{{Path: dir, Settle: 100 * time.Millisecond}}, Options{Observer: rec}, prep)
	var openGate sync.Once
	release := func() { openGate.Do(func() { close(gate) }) }
	t.Cleanup(release) // runs before the harness stops Run

	a, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin")
	writeFile(t, a, 1)
	writeFile(t, b, 1)
	writeFile(t, stall, 1)
	select {
	case <-stalled:
	case <-time.After(waitLimit):
		t.Fatal("the watcher never opened stall.mp4")
	}
	// Alternate between two files so the kernel cannot merge the events.
	for i := range queue + 2*eventBuffer + 1000 {
		if err := os.Chmod([]string{a, b}[i%2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lost := filepath.Join(dir, "lost.mp4") // its Create event is dropped
	writeFile(t, lost, 3)
	release()

	h.waitLog("rescan done", "why=overflow")
	h.waitReported(lost, 1)
	h.waitReported(stall, 1)
	h.barrier(dir)
	for _, p := range []string{a, b, stall, lost} {
		h.wantCount(p, 1)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.overflow < 1 || rec.rescans[dir+" overflow"] < 1 {
		t.Errorf("the observer heard of %d overflows and %d overflow rescans", rec.overflow, rec.rescans[dir+" overflow"])
	}
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	rescans  map[string]int // folder+" "+why -> count
	last     []FolderState
	lastAt   time.Time
	overflow int
}

func (r *recorder) Rescanned(folder, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rescans == nil {
		r.rescans = make(map[string]int)
	}
	r.rescans[folder+" "+why]++
}

func (r *recorder) Overflowed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overflow++
}

func (r *recorder) Observe(at time.Time, fs []FolderState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.lastAt = fs, at
}

func (r *recorder) state() ([]FolderState, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]FolderState(nil), r.last...), r.lastAt
}

// waitState polls the recorder until cond holds on its last report.
func (r *recorder) waitState(t *testing.T, what string, cond func([]FolderState) bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s, _ := r.state()
		if len(s) > 0 && cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state %+v", what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRemovedFolderWatchedAgainWhenBack(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "inbox")
	other := t.TempDir()
	mkdir(t, filepath.Join(dir, "sub"))
	rec := &recorder{}
	// No periodic rescan: only the lookup may bring the folder back.
	h := start(t, []Folder{{Path: dir, Recursive: true, Settle: 50 * time.Millisecond}, {Path: other, Settle: 50 * time.Millisecond}},
		Options{Rescan: -1, Lookup: 100 * time.Millisecond, Observer: rec}, nil)
	h.waitLog("watching")
	rec.waitState(t, "both folders watched", func(s []FolderState) bool {
		return s[0].Err == nil && s[0].Dirs == 2 && s[1].Err == nil && s[1].Dirs == 1
	})
	writeFile(t, filepath.Join(dir, "sub", "before.bin"), 3)
	h.waitReported(filepath.Join(dir, "sub", "before.bin"), 1)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	rec.waitState(t, "the folder reported missing", func(s []FolderState) bool { return s[0].Err != nil && s[0].Dirs == 0 })
	if s, _ := rec.state(); s[1].Err != nil {
		t.Errorf("the other folder is reported unhealthy: %v", s[1].Err)
	}
	h.waitLog("watched folder is gone", "folder="+dir)

	mkdir(t, filepath.Join(dir, "sub"))
	// Dropped before the watch is back: the scan of the returned folder finds them.
	writeFile(t, filepath.Join(dir, "early.bin"), 4)
	writeFile(t, filepath.Join(dir, "sub", "before.bin"), 3)
	h.waitReported(filepath.Join(dir, "early.bin"), 1)
	h.waitReported(filepath.Join(dir, "sub", "before.bin"), 2) // a new file under an old name
	rec.waitState(t, "the folder watched again", func(s []FolderState) bool { return s[0].Err == nil && s[0].Dirs == 2 })
	// And dropped after: the watch sees them.
	writeFile(t, filepath.Join(dir, "sub", "late.bin"), 5)
	h.waitReported(filepath.Join(dir, "sub", "late.bin"), 1)
	h.barrier(dir)
	h.wantCount(filepath.Join(dir, "early.bin"), 1)
	rec.mu.Lock()
	back, start := rec.rescans[dir+" returned"], rec.rescans[dir+" start"]
	rec.mu.Unlock()
	if back != 1 || start != 1 {
		t.Errorf("rescans of %s: start %d, returned %d; want 1 and 1", dir, start, back)
	}
}

func TestObserverSeesPendingAndTurns(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	h := start(t, []Folder{{Path: dir, Settle: time.Hour}}, Options{Observer: rec}, nil)
	h.waitLog("watching")
	writeFile(t, filepath.Join(dir, "slow.bin"), 1)
	rec.waitState(t, "one pending file", func(s []FolderState) bool { return s[0].Pending == 1 })
	_, first := rec.state()
	deadline := time.Now().Add(waitLimit)
	for {
		if _, at := rec.state(); at.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop reported no turn after its first")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quietRecorder collects Options.Quiet calls.
type quietRecorder struct {
	mu  sync.Mutex
	got []Ready // Folder unused
}

func (q *quietRecorder) quiet(path string, size int64, mtime time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.got = append(q.got, Ready{Path: path, Size: size, ModTime: mtime})
}

func (q *quietRecorder) of(path string) []Ready {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Ready
	for _, r := range q.got {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Quiet is told of a file that looks written before it is reported, once per size and
// mtime: at once for a file found old by the first scan, again after it changes.
func TestQuietBeforeReady(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.mp4")
	writeFile(t, old, 5000)
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	q := &quietRecorder{}
	h := start(t, []Folder{{Path: dir, Settle: 400 * time.Millisecond}}, Options{Quiet: q.quiet}, nil)
	r := h.waitReported(old, 1)
	got := q.of(old)
	if len(got) != 1 || got[0].Size != r.Size || !got[0].ModTime.Equal(r.ModTime) {
		t.Fatalf("quiet calls %v for a file reported as %v", got, r.Ready)
	}

	// A file being written: every quiet call names a size and mtime it had, and its final
	// ones come before its report.
	p := filepath.Join(dir, "growing.mp4")
	for i := range 5 {
		if i > 0 {
			time.Sleep(40 * time.Millisecond) // the writer's pace
		}
		appendFile(t, p, 1000)
	}
	r = h.waitReported(p, 1)
	got = q.of(p)
	if len(got) == 0 {
		t.Fatal("no quiet call before the file was reported")
	}
	last := got[len(got)-1]
	if last.Size != r.Size || !last.ModTime.Equal(r.ModTime) {
		t.Fatalf("the last quiet call %v is not the reported file %v", last, r.Ready)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Size == got[i-1].Size && got[i].ModTime.Equal(got[i-1].ModTime) {
			t.Fatalf("quiet told twice of one size and mtime: %v", got)
		}
	}

	// Changed after its report: told again, with the new size.
	appendFile(t, old, 10)
	r = h.waitReported(old, 2)
	got = q.of(old)
	if len(got) != 2 || got[1].Size != 5010 || !got[1].ModTime.Equal(r.ModTime) {
		t.Fatalf("after a change: quiet calls %v, report %v", got, r.Ready)
	}
}
