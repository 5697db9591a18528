package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chute-dev/chute/watcher"
)

// The soak test (issue 6, "Must show"): files of mixed sizes are dropped into a recursive
// watched folder, edited, replaced, renamed and deleted the way real applications do it,
// while the real chute binary is SIGKILLed at random moments (and three times stopped with
// SIGTERM, which must end it cleanly) and restarted, and the TUS server (tusdlite, a process
// of its own) is killed and restarted on the same address and data directory. No chute may
// crash (panic) on its own. At the end, with both running quietly until every file has its
// sidecar:
//   - every file on disk has one true sidecar: status done, sha256 and size of the file's
//     current bytes, and tusd holds exactly those bytes, complete, under the sidecar's id;
//   - a sidecar beside nothing is one written before its file was renamed or deleted (the
//     README says it stays; they are listed), never one written after;
//   - nothing was uploaded twice that did not change: per content, tusd holds at most one
//     complete upload for each path the content lived at (see checkUploads);
//   - no complete upload holds the half-written state of a file written slowly in place
//     (the settle time must absorb such writers).
//
// Knobs: CHUTE_SOAK_SEED=N replays the same operations, sizes, contents and kill times (the
// interleaving with the daemon still depends on timing); CHUTE_SOAK_CHAOS=30s shortens the
// chaotic phase while iterating (the 15-kill minimum is asserted only at the default
// length); CHUTE_SOAK_KEEP=1 keeps the work directory (state, inbox, tusd's data, chute-N.log).

const (
	soakChaos    = 100 * time.Second // the phase with writers and kills
	soakQuiet    = 75 * time.Second  // the most the final quiet period waits for sidecars
	soakSettle   = time.Second       // the folder's settle time
	soakBig      = 64 << 20          // the file whose upload is in flight when chute is killed
	soakThrottle = 16 << 20          // tusd reads a PATCH at most this fast: the big file takes 4s
	soakMaxFiles = 40                // live files at most, to bound the bytes written
	soakMinKills = 15
)

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped under -short")
	}
	s := newSoak(t)
	s.run()
	s.check()
}

// soakContent is one version of a file's bytes, generated from the seed and its number so
// that a replay writes the same bytes.
type soakContent struct {
	no   int
	size int64
	hash string // sha256 hex, set once written
	// residences is the number of paths this content lived at (1 + its renames): each is a
	// file chute may have had to upload.
	residences int
	// slow: written in place in pieces with pauses shorter than the settle time.
	slow bool
	// overrun: a pause of the slow writer lasted longer than soakSettle*3/4 (the machine was
	// slow), so an upload of the half-written file is forgiven.
	overrun  bool
	maxPause time.Duration
}

type soakFile struct {
	c    *soakContent
	busy bool // a slow writer is still writing it
	// since is when the file got this content at this path (written, renamed here).
	since time.Time
}

// soakEvent is something that happened in the test, for the messages.
type soakEvent struct {
	at   time.Duration
	what string
}

type soak struct {
	t       *testing.T
	seed    uint64
	chaos   time.Duration
	dir     string
	inbox   string
	cfg     string
	tusd    *soakTusd
	started time.Time

	mu       sync.Mutex
	files    map[string]*soakFile // by path relative to the inbox, slash-separated
	history  map[string][]soakEvent
	left     map[string]time.Time // when the last file at a path went away (renamed, deleted)
	contents []*soakContent
	ops      map[string]int
	timeline []soakEvent // kills and tusd cuts
	nextName int
	deeper   bool // sub/deeper created

	daemon   *daemon
	daemons  []*daemon
	kills    int
	stops    int // graceful stops (SIGTERM)
	inFlight int // kills while tusd was receiving PATCH bytes
	writers  sync.WaitGroup
	// lies are the sidecars the monitor saw lying, by path and sidecar mtime.
	lies    map[string]string
	lieRels map[string]string
}

func newSoak(t *testing.T) *soak {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHUTE_SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHUTE_SOAK_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay: CHUTE_SOAK_SEED=%d go test -run TestSoak -count=1 ./cmd/chute/)", seed, seed)
	chaos := soakChaos
	if v := os.Getenv("CHUTE_SOAK_CHAOS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHUTE_SOAK_CHAOS=%q: %v", v, err)
		}
		chaos = d
	}
	if dl, ok := t.Deadline(); ok {
		if room := time.Until(dl) - soakQuiet - 60*time.Second; room < chaos {
			chaos = max(room, 20*time.Second)
			t.Logf("the test's deadline leaves %v for the chaotic phase", chaos)
		}
	}
	dir := t.TempDir()
	if os.Getenv("CHUTE_SOAK_KEEP") != "" {
		var err error
		if dir, err = os.MkdirTemp("", "chute-soak-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("work directory kept: %s", dir)
	}
	s := &soak{
		t: t, seed: seed, chaos: chaos, dir: dir,
		inbox:   filepath.Join(dir, "inbox"),
		files:   map[string]*soakFile{},
		history: map[string][]soakEvent{},
		left:    map[string]time.Time{},
		ops:     map[string]int{},
		lies:    map[string]string{},
		lieRels: map[string]string{},
	}
	if err := os.MkdirAll(filepath.Join(s.inbox, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.tusd = newSoakTusd(t, dir)
	s.cfg = writeConfig(t, dir, fmt.Sprintf(`
state: %s/state/state.db
providers:
  own: {type: tus, endpoint: "%s"}
folders:
  - path: %s
    provider: own
    recursive: true
    settle: %s
    exclude: ["*.part", ".*.tmp"]
`, dir, s.tusd.url(), s.inbox, soakSettle))
	return s
}

func (s *soak) since() time.Duration {
	if s.started.IsZero() {
		return 0
	}
	return time.Since(s.started).Round(10 * time.Millisecond)
}

func (s *soak) note(rel, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history[rel] = append(s.history[rel], soakEvent{s.since(), fmt.Sprintf(format, args...)})
}

func (s *soak) event(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeline = append(s.timeline, soakEvent{s.since(), fmt.Sprintf(format, args...)})
}

func (s *soak) run() {
	t := s.t
	s.tusd.start()
	t.Cleanup(s.tusd.kill)
	s.started = time.Now()
	t.Logf("t+0 is %s (the times in chute's logs are UTC)", s.started.UTC().Format("15:04:05.000"))

	// The big file first, alone, so that the first kill is aimed at its upload.
	r := rand.New(rand.NewPCG(s.seed, 1))
	big := s.newContent(soakBig)
	if err := s.write("big.bin", big, "part"); err != nil {
		t.Fatal(err)
	}
	s.addFile("big.bin", big, "dropped", "part")
	s.startDaemon()
	waitStart := time.Now()
	for s.tusd.receivedNow() < 20<<20 && time.Since(waitStart) < 30*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	if s.tusd.receivedNow() < 20<<20 {
		t.Errorf("the big file's upload had not reached 20 MiB at tusd %v after the daemon started; the first kill is not during an upload", time.Since(waitStart).Round(time.Second))
	}
	if !s.killDaemon() {
		t.Errorf("the first kill, aimed at the big file's upload, found tusd receiving nothing: the test does not show a resume")
	}
	s.restartDaemon(r)

	ctx, cancel := context.WithTimeout(context.Background(), s.chaos)
	defer cancel()
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); s.operate(ctx, rand.New(rand.NewPCG(s.seed, 2))) }()
	go func() { defer bg.Done(); s.cutTusd(ctx, rand.New(rand.NewPCG(s.seed, 3))) }()
	mctx, mcancel := context.WithCancel(context.Background())
	monitored := make(chan struct{})
	go func() { defer close(monitored); s.monitor(mctx) }()
	kr := rand.New(rand.NewPCG(s.seed, 4))
	// 2s to 5s between two ends of chute at the default length: at least 20, of which three
	// are graceful stops (SIGTERM, at about 30%, 60% and 90%) and the rest SIGKILLs.
	lo, hi := s.chaos/50, s.chaos/20
	chaosStart := time.Now()
	stops := []time.Duration{s.chaos * 3 / 10, s.chaos * 6 / 10, s.chaos * 9 / 10}
	for {
		wait := lo + time.Duration(kr.Int64N(int64(hi-lo)))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		if len(stops) > 0 && time.Since(chaosStart) >= stops[0] {
			stops = stops[1:]
			s.stopDaemon()
		} else {
			s.killDaemon()
		}
		s.restartDaemon(kr)
	}
	bg.Wait()
	s.writers.Wait()
	if s.chaos >= soakChaos && s.kills < soakMinKills {
		t.Errorf("only %d SIGKILLs of chute; the soak test promises at least %d", s.kills, soakMinKills)
	}
	s.event("quiet period starts")
	s.quiet()
	mcancel()
	<-monitored
	s.daemon.stop(t)
	s.tusd.stop()
	if os.Getenv("CHUTE_SOAK_KEEP") != "" {
		for i, d := range s.daemons {
			_ = os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("chute-%d.log", i+1)), []byte(d.logs.String()), 0o644)
		}
	}
}

// startDaemon starts a new chute process.
func (s *soak) startDaemon() {
	s.daemon = startDaemon(s.t, s.cfg, nil)
	s.daemons = append(s.daemons, s.daemon)
	s.event("chute #%d started", len(s.daemons))
}

// restartDaemon starts chute again after a pause of 0 to 1s (sometimes none).
func (s *soak) restartDaemon(r *rand.Rand) {
	if r.IntN(3) > 0 {
		time.Sleep(time.Duration(r.Int64N(int64(time.Second))))
	}
	s.startDaemon()
}

// killDaemon SIGKILLs chute and says whether tusd was receiving upload bytes at that moment.
func (s *soak) killDaemon() bool {
	d := s.daemon
	select {
	case <-d.done:
		s.t.Errorf("chute #%d exited by itself (status %d) before it was killed; its last logs:\n%s", len(s.daemons), d.cmd.ProcessState.ExitCode(), soakTail(d.logs.String(), 30))
		return false
	default:
	}
	flowing := s.tusd.flowing()
	d.kill()
	s.kills++
	if flowing {
		s.inFlight++
	}
	s.event("SIGKILL chute #%d (upload in flight: %v)", len(s.daemons), flowing)
	return flowing
}

// monitor reads the sidecars of the files every 100ms until ctx ends, and records each
// sidecar that chute wrote, well after the file got its current content, for other bytes:
// a sidecar that lies while chute runs, even if a later one tells the truth. (The README:
// "A sidecar is only ever written by the newest job of its path"; a file changed during
// its upload gets no sidecar from that upload.) The margin allows for the instant between
// chute's last look at the file and its write of the sidecar.
func (s *soak) monitor(ctx context.Context) {
	const margin = 500 * time.Millisecond
	type look struct {
		rel   string
		c     *soakContent
		since time.Time
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		var looks []look
		s.mu.Lock()
		for rel, f := range s.files {
			if !f.busy {
				looks = append(looks, look{rel, f.c, f.since})
			}
		}
		s.mu.Unlock()
		for _, l := range looks {
			f, err := os.Open(filepath.Join(s.inbox, filepath.FromSlash(l.rel)) + watcher.SidecarSuffix)
			if err != nil {
				continue
			}
			// The mtime and the bytes of one sidecar: from the open file, not by its name.
			st, serr := f.Stat()
			var sc soakSidecar
			derr := json.NewDecoder(f).Decode(&sc)
			f.Close()
			if serr != nil || derr != nil || sc.Status != "done" || sc.SHA256 == l.c.hash || !st.ModTime().After(l.since.Add(margin)) {
				continue
			}
			key := l.rel + "@" + st.ModTime().String()
			s.mu.Lock()
			if _, seen := s.lies[key]; !seen {
				s.lies[key] = fmt.Sprintf("%s: a sidecar for sha256 %.12s (job %d) was written at t+%v, %v after the file got content #%d (sha256 %.12s)",
					l.rel, sc.SHA256, sc.Job, st.ModTime().Sub(s.started).Round(10*time.Millisecond), st.ModTime().Sub(l.since).Round(10*time.Millisecond), l.c.no, l.c.hash)
				s.lieRels[key] = l.rel
			}
			s.mu.Unlock()
		}
	}
}

// stopDaemon stops chute with SIGTERM: it must exit 0 within 15s, uploads in flight cut
// at a checkpoint.
func (s *soak) stopDaemon() {
	flowing := s.tusd.flowing()
	s.daemon.stop(s.t)
	s.stops++
	s.event("SIGTERM chute #%d (upload in flight: %v)", len(s.daemons), flowing)
}

// cutTusd kills tusd three times at random moments and starts it again after 0.5 to 4s.
func (s *soak) cutTusd(ctx context.Context, r *rand.Rand) {
	const cuts = 3
	slot := s.chaos / (cuts + 1)
	start := time.Now()
	for i := range cuts {
		at := start.Add(slot*time.Duration(i) + slot/2 + time.Duration(r.Int64N(int64(slot))))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(at)):
		}
		down := 500*time.Millisecond + time.Duration(r.Int64N(int64(3500*time.Millisecond)))
		s.tusd.kill()
		s.event("tusd killed for %v", down.Round(10*time.Millisecond))
		time.Sleep(down)
		s.tusd.start()
		s.event("tusd started again")
	}
}

// newContent numbers a new version of bytes.
func (s *soak) newContent(size int64) *soakContent {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &soakContent{no: len(s.contents) + 1, size: size, residences: 1}
	s.contents = append(s.contents, c)
	return c
}

// bytesOf is the content's bytes: a ChaCha8 stream keyed by the seed and its number.
func (s *soak) bytesOf(c *soakContent) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], s.seed)
	binary.LittleEndian.PutUint64(key[8:16], uint64(c.no))
	return io.LimitReader(rand.NewChaCha8(key), c.size)
}

func (s *soak) addFile(rel string, c *soakContent, verb, how string) {
	s.mu.Lock()
	s.files[rel] = &soakFile{c: c, since: time.Now()}
	s.mu.Unlock()
	s.note(rel, "%s: content #%d, %d B, sha256 %.12s, %s", verb, c.no, c.size, c.hash, how)
}

// write puts c at rel the way an application does it, by how:
//   - "part", "hidden": into a temporary name the folder excludes (name.part,
//     .name.N.tmp), then renamed into place;
//   - "truncate": in place, truncated and written at once;
//   - "overwrite": in place over the old bytes without truncating (same size only): only the
//     mtime tells the change;
//   - "slow": in place, in 4 to 8 pieces with pauses shorter than the settle time.
func (s *soak) write(rel string, c *soakContent, how string) error {
	path := filepath.Join(s.inbox, filepath.FromSlash(rel))
	h := sha256.New()
	src := io.TeeReader(s.bytesOf(c), h)
	var err error
	switch how {
	case "part", "hidden":
		tmp := path + ".part"
		if how == "hidden" {
			tmp = filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), c.no))
		}
		if err = soakWriteFile(tmp, src, os.O_TRUNC, nil); err == nil {
			err = os.Rename(tmp, path)
		}
	case "truncate":
		err = soakWriteFile(path, src, os.O_TRUNC, nil)
	case "overwrite":
		err = soakWriteFile(path, src, 0, nil)
	case "slow":
		pieces := 4 + int(c.no%5)
		piece := max(c.size/int64(pieces), 1)
		last := time.Now()
		pause := func() {
			d := 100*time.Millisecond + time.Duration(c.no%4)*50*time.Millisecond
			time.Sleep(d)
			// The time the file stayed unchanged, measured from the last write.
			if gap := time.Since(last); gap > c.maxPause {
				c.maxPause = gap
				if gap > soakSettle*3/4 {
					c.overrun = true
				}
			}
		}
		err = soakWriteFile(path, src, os.O_TRUNC, func(f *os.File) error {
			for {
				pause()
				n, err := io.CopyN(f, src, piece)
				last = time.Now()
				if errors.Is(err, io.EOF) || (err == nil && n < piece) {
					return nil
				}
				if err != nil {
					return err
				}
			}
		})
	default:
		err = fmt.Errorf("unknown way of writing %q", how)
	}
	if err != nil {
		return fmt.Errorf("write %s (%s): %w", rel, how, err)
	}
	s.mu.Lock()
	c.hash = hex.EncodeToString(h.Sum(nil))
	s.mu.Unlock()
	return nil
}

// soakWriteFile opens path for writing with flag, then copies src into it or lets fill do
// the writing, and closes it.
func soakWriteFile(path string, src io.Reader, flag int, fill func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return err
	}
	if fill != nil {
		err = fill(f)
	} else {
		_, err = io.Copy(f, src)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// operate is the applications: every 0.1 to 0.9s one operation on the folder, until ctx
// ends, and a plan of operations whose moments matter, with their own random source so
// that a replay draws the same for both:
//   - first an empty file, a few KiB and a few MiB, whatever the seed;
//   - at 25%, mid.bin (24 MiB, 1.5s at tusd) dropped, then overwritten in place with the
//     same size 0.6s after it settled, during its upload (two jobs for one path: the old one
//     must not overwrite the new one's sidecar); at 55% replaced; at 85% edited, then
//     deleted during that upload (no sidecar beside nothing);
//   - at 45% the big file edited (same size): a second big upload for the kills; at 70%
//     edited again and, 1.5s after it settled, renamed into sub/ during its upload.
func (s *soak) operate(ctx context.Context, r *rand.Rand) {
	rp := rand.New(rand.NewPCG(s.seed, 5))
	const mid = 24 << 20
	d := func(f int) time.Duration { return s.chaos * time.Duration(f) / 100 }
	plan := []struct {
		at time.Duration
		do func() error
	}{
		{0, func() error { return s.dropSized(rp, 0, "part") }},
		{0, func() error { return s.dropSized(rp, 3<<10, "hidden") }},
		{0, func() error { return s.dropSized(rp, 2<<20, "part") }},
		{d(25), func() error { return s.dropAt("mid.bin", s.newContent(mid), "part") }},
		{d(25) + soakSettle + 600*time.Millisecond, func() error { return s.editHow(rp, "mid.bin", true, "overwrite") }},
		{d(45), func() error { return s.editHow(rp, "big.bin", true, "") }},
		{d(55), func() error { return s.replace(rp, "mid.bin") }},
		{d(70), func() error { return s.editHow(rp, "big.bin", true, "") }},
		{d(70) + soakSettle + 1500*time.Millisecond, func() error { return s.renameTo("big.bin", "sub/big renamed.bin") }},
		{d(85), func() error { return s.editHow(rp, "mid.bin", true, "part") }},
		{d(85) + soakSettle + 600*time.Millisecond, func() error { return s.remove("mid.bin", "deleted") }},
	}
	start := time.Now()
	for {
		wait := 100*time.Millisecond + time.Duration(r.Int64N(int64(800*time.Millisecond)))
		planned := len(plan) > 0 && time.Until(start.Add(plan[0].at)) <= wait
		if planned {
			wait = time.Until(start.Add(plan[0].at))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var err error
		if planned {
			// A planned operation on a file still being written slowly waits its turn.
			if s.idle("mid.bin") && s.idle("big.bin") {
				err = plan[0].do()
				plan = plan[1:]
			}
		} else {
			err = s.operation(r)
		}
		if err != nil {
			s.t.Errorf("the test's own writer failed (a test bug or chute touched a file it must keep): %v", err)
			return
		}
	}
}

// idle says whether no slow writer holds the file at rel (true when there is none).
func (s *soak) idle(rel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[rel]
	return f == nil || !f.busy
}

// operation does one random thing to the folder.
func (s *soak) operation(r *rand.Rand) error {
	s.mu.Lock()
	var idle []string // the files no writer holds, in a fixed order for a replay
	for rel, f := range s.files {
		if b := path.Base(rel); !f.busy && !strings.HasPrefix(b, "big") && b != "mid.bin" { // those only as planned
			idle = append(idle, rel)
		}
	}
	live := len(s.files)
	s.mu.Unlock()
	sort.Strings(idle)
	pick := func() string { return idle[r.IntN(len(idle))] }
	n := r.IntN(100)
	switch {
	case n < 32 && live < soakMaxFiles || len(idle) < 3:
		return s.drop(r)
	case n < 52:
		return s.edit(r, pick(), r.IntN(2) == 0)
	case n < 67:
		return s.replace(r, pick())
	case n < 84:
		return s.rename(r, pick())
	case n < 93:
		// Only a file already uploaded: a touch during its upload is a change chute may
		// rightly upload again.
		var done []string
		for _, rel := range idle {
			if s.uploaded(rel) {
				done = append(done, rel)
			}
		}
		if len(done) == 0 {
			return s.drop(r)
		}
		return s.unchanged(r, done[r.IntN(len(done))])
	default:
		if live < 10 {
			return s.drop(r)
		}
		return s.remove(pick(), "deleted")
	}
}

// soakSize draws a size: empty, a few KiB, tens of KiB or a few MiB.
func soakSize(r *rand.Rand) int64 {
	switch n := r.IntN(100); {
	case n < 6:
		return 0
	case n < 50:
		return 1 + r.Int64N(8<<10)
	case n < 70:
		return 8<<10 + r.Int64N(56<<10)
	default:
		return 1<<20 + r.Int64N(3<<20)
	}
}

// freeName invents a name no file had, in the inbox, sub/ or sub/deeper/ (created the
// first time it is drawn, to show that new subfolders are watched).
func (s *soak) freeName(r *rand.Rand) (string, error) {
	s.mu.Lock()
	s.nextName++
	n := s.nextName
	mk := false
	dirs := []string{"", "", "sub/", "sub/deeper/"}
	d := dirs[r.IntN(len(dirs))]
	if d == "sub/deeper/" && !s.deeper {
		s.deeper, mk = true, true
	}
	s.mu.Unlock()
	if mk {
		if err := os.Mkdir(filepath.Join(s.inbox, "sub", "deeper"), 0o755); err != nil {
			return "", err
		}
		s.event("sub/deeper created")
	}
	ext := []string{".bin", ".mp4", ".jpg", ".pdf"}[r.IntN(4)]
	return fmt.Sprintf("%sf%03d%s", d, n, ext), nil
}

// drop creates a new file: most through a temporary name, one in five slowly in place.
func (s *soak) drop(r *rand.Rand) error {
	size := soakSize(r)
	how := []string{"part", "part", "hidden", "hidden", "slow"}[r.IntN(5)]
	if how == "slow" && size == 0 {
		how = "part"
	}
	return s.dropSized(r, size, how)
}

func (s *soak) dropSized(r *rand.Rand, size int64, how string) error {
	rel, err := s.freeName(r)
	if err != nil {
		return err
	}
	return s.dropAt(rel, s.newContent(size), how)
}

func (s *soak) dropAt(rel string, c *soakContent, how string) error {
	if how == "slow" {
		return s.writeSlowly(rel, c, "dropped")
	}
	if err := s.write(rel, c, how); err != nil {
		return err
	}
	s.mu.Lock()
	s.ops["drop"]++
	s.mu.Unlock()
	s.addFile(rel, c, "dropped", how)
	return nil
}

// writeSlowly writes a file in place in its own goroutine; the file is busy until done.
func (s *soak) writeSlowly(rel string, c *soakContent, verb string) error {
	c.slow = true
	s.mu.Lock()
	s.files[rel] = &soakFile{c: c, busy: true}
	s.ops[verb+" slowly"]++
	s.mu.Unlock()
	s.note(rel, "%s slowly in place begins: content #%d, %d B", verb, c.no, c.size)
	s.writers.Add(1)
	go func() {
		defer s.writers.Done()
		if err := s.write(rel, c, "slow"); err != nil {
			s.t.Errorf("the test's own slow writer failed: %v", err)
		}
		s.mu.Lock()
		s.files[rel].busy, s.files[rel].since = false, time.Now()
		s.mu.Unlock()
		s.note(rel, "%s slowly in place ends: content #%d, %d B, sha256 %.12s, longest pause %v", verb, c.no, c.size, c.hash, c.maxPause.Round(time.Millisecond))
	}()
	return nil
}

// edit gives a file new content, of the same size or not, in place or through a temporary
// name.
func (s *soak) edit(r *rand.Rand, rel string, sameSize bool) error {
	return s.editHow(r, rel, sameSize, "")
}

// editHow is edit in a given way ("" draws one).
func (s *soak) editHow(r *rand.Rand, rel string, sameSize bool, how string) error {
	s.mu.Lock()
	old := s.files[rel].c
	s.mu.Unlock()
	size := old.size
	if !sameSize {
		size = soakSize(r)
	}
	c := s.newContent(size)
	ways := []string{"part", "hidden", "truncate"}
	if size == old.size && size > 0 {
		ways = append(ways, "overwrite", "overwrite")
	}
	if how == "" {
		how = ways[r.IntN(len(ways))]
	}
	if err := s.write(rel, c, how); err != nil {
		return err
	}
	s.mu.Lock()
	s.ops["edit"]++
	if size == old.size {
		s.ops["edit, same size"]++
	}
	s.mu.Unlock()
	s.addFile(rel, c, fmt.Sprintf("edited (content #%d before, same size %v)", old.no, size == old.size), how)
	return nil
}

// uploaded says whether the file at rel has a done sidecar of its content.
func (s *soak) uploaded(rel string) bool {
	s.mu.Lock()
	c := s.files[rel].c
	s.mu.Unlock()
	sc, err := soakReadSidecar(filepath.Join(s.inbox, filepath.FromSlash(rel)))
	return err == nil && sc.Status == "done" && sc.SHA256 == c.hash
}

// unchanged changes a file without changing its bytes: a new mtime only, or the same
// bytes saved again through a temporary name (a new inode). It is the same content: chute
// must not upload it again (issue 6, item 1: "when in doubt, hash and compare").
func (s *soak) unchanged(r *rand.Rand, rel string) error {
	s.mu.Lock()
	c := s.files[rel].c
	s.mu.Unlock()
	p := filepath.Join(s.inbox, filepath.FromSlash(rel))
	how := []string{"touch", "part", "hidden"}[r.IntN(3)]
	if how == "touch" {
		now := time.Now()
		if err := os.Chtimes(p, now, now); err != nil {
			return err
		}
	} else {
		same := *c
		if err := s.write(rel, &same, how); err != nil {
			return err
		}
		if same.hash != c.hash {
			return fmt.Errorf("%s: saving content #%d again gave other bytes", rel, c.no)
		}
	}
	s.mu.Lock()
	s.ops["unchanged ("+how+")"]++
	s.mu.Unlock()
	s.note(rel, "%s, bytes unchanged (kept content #%d)", map[string]string{"touch": "touched (new mtime)", "part": "saved again via .part", "hidden": "saved again via a hidden temporary"}[how], c.no)
	return nil
}

// replace deletes a file and, after 0 to 0.8s, drops a new one of that name (half the time
// of the same size).
func (s *soak) replace(r *rand.Rand, rel string) error {
	s.mu.Lock()
	old := s.files[rel].c
	s.mu.Unlock()
	if err := s.remove(rel, "deleted, to be replaced"); err != nil {
		return err
	}
	time.Sleep(time.Duration(r.Int64N(int64(800 * time.Millisecond))))
	size := old.size
	if r.IntN(2) == 0 {
		size = soakSize(r)
	}
	c := s.newContent(size)
	s.mu.Lock()
	s.ops["replace"]++
	if size == old.size {
		s.ops["replace, same size"]++
	}
	s.mu.Unlock()
	if r.IntN(5) == 0 && size > 0 {
		return s.writeSlowly(rel, c, "re-created")
	}
	how := []string{"part", "hidden"}[r.IntN(2)]
	if err := s.write(rel, c, how); err != nil {
		return err
	}
	s.addFile(rel, c, fmt.Sprintf("re-created (content #%d before, same size %v)", old.no, size == old.size), how)
	return nil
}

// rename moves a file to a new name in the folder, without its sidecar (applications do
// not know about sidecars).
func (s *soak) rename(r *rand.Rand, rel string) error {
	to, err := s.freeName(r)
	if err != nil {
		return err
	}
	return s.renameTo(rel, to)
}

func (s *soak) renameTo(rel, to string) error {
	if err := os.Rename(filepath.Join(s.inbox, filepath.FromSlash(rel)), filepath.Join(s.inbox, filepath.FromSlash(to))); err != nil {
		return err
	}
	s.mu.Lock()
	f := s.files[rel]
	delete(s.files, rel)
	s.left[rel] = time.Now()
	s.files[to] = f
	f.since = time.Now()
	f.c.residences++
	s.ops["rename"]++
	s.mu.Unlock()
	s.note(rel, "renamed to %s (content #%d)", to, f.c.no)
	s.note(to, "renamed from %s: content #%d, %d B, sha256 %.12s", rel, f.c.no, f.c.size, f.c.hash)
	return nil
}

func (s *soak) remove(rel, verb string) error {
	if err := os.Remove(filepath.Join(s.inbox, filepath.FromSlash(rel))); err != nil {
		return err
	}
	s.mu.Lock()
	c := s.files[rel].c
	delete(s.files, rel)
	s.left[rel] = time.Now()
	if verb == "deleted" {
		s.ops["delete"]++
	}
	s.mu.Unlock()
	s.note(rel, "%s (content #%d)", verb, c.no)
	return nil
}

// soakSidecar is what the test reads of a sidecar: its own decoding, so that it judges the
// engine's output rather than trusting the engine's reader.
type soakSidecar struct {
	Status string `json:"status"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	ID     string `json:"id"`
	URL    string `json:"url"`
	Error  string `json:"error"`
	Job    uint64 `json:"job"`
	// MTime is the mtime of the file the sidecar describes: the README says a file touched
	// (or saved again with the same bytes) is hashed and its sidecar rewritten with the new
	// mtime.
	MTime time.Time `json:"mtime"`
}

func soakReadSidecar(path string) (*soakSidecar, error) {
	b, err := os.ReadFile(path + watcher.SidecarSuffix)
	if err != nil {
		return nil, err
	}
	var sc soakSidecar
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", path+watcher.SidecarSuffix, err)
	}
	return &sc, nil
}

// quiet waits, with chute and tusd running and nothing changing, until every file has a
// done sidecar of its current content, or until the only others have failed sidecars that
// stayed so for 10s (no waiting mends those; a newer job might, so they get that long), then
// a little longer so that a late sidecar written by an older job would show.
func (s *soak) quiet() {
	start := time.Now()
	var missing, failed []string
	last, since := "", time.Now()
	for {
		missing, failed = missing[:0], failed[:0]
		s.mu.Lock()
		for _, rel := range soakSorted(s.files) {
			sc, err := soakReadSidecar(filepath.Join(s.inbox, filepath.FromSlash(rel)))
			switch {
			case err == nil && sc.Status == "done" && sc.SHA256 == s.files[rel].c.hash:
			case err == nil && sc.Status == "failed":
				failed = append(failed, rel)
			default:
				missing = append(missing, rel)
			}
		}
		s.mu.Unlock()
		if now := strings.Join(failed, "\x00"); now != last {
			last, since = now, time.Now()
		}
		if len(missing) == 0 && (len(failed) == 0 || time.Since(since) > 10*time.Second) || time.Since(start) > soakQuiet {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(missing) > 0 {
		s.t.Errorf("after %v of quiet, %d files still lack a sidecar of their content: %s", soakQuiet, len(missing), strings.Join(missing, ", "))
	} else {
		s.t.Logf("every file had its sidecar %v into the quiet period (%d failed)", time.Since(start).Round(100*time.Millisecond), len(failed))
	}
	time.Sleep(3 * soakSettle)
}

// soakUpload is one upload in tusd's data directory.
type soakUpload struct {
	id       string
	size     int64 // declared (Upload-Length)
	have     int64 // bytes stored
	hash     string
	filename string
}

func (u soakUpload) complete() bool { return u.have == u.size }

func (u soakUpload) String() string {
	return fmt.Sprintf("%s (filename %q, %d/%d B)", u.id, u.filename, u.have, u.size)
}

// soakReadTusd reads tusd's filestore: "<id>" holds the data, "<id>.info" the metadata.
// The filestore writes the .info once at creation (its Offset stays 0) and takes the offset
// from the data file's length, so an upload is complete when that length is its Size.
func soakReadTusd(dir string) (map[string]soakUpload, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	ups := map[string]soakUpload{}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".info")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var info struct {
			Size     int64
			MetaData map[string]string
		}
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		u := soakUpload{id: id, size: info.Size, filename: info.MetaData["filename"]}
		st, err := os.Stat(filepath.Join(dir, id))
		if err == nil {
			u.have = st.Size()
		}
		if u.complete() {
			if u.hash, err = soakHashFile(filepath.Join(dir, id)); err != nil {
				return nil, err
			}
		}
		ups[id] = u
	}
	return ups, nil
}

func soakHashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// check compares the folder, the sidecars and tusd's data with what the test did.
func (s *soak) check() {
	t := s.t
	ups, err := soakReadTusd(s.tusd.dir)
	if err != nil {
		t.Fatalf("read tusd's data: %v", err)
	}
	onDisk := map[string]bool{}
	sidecars := map[string]bool{}
	var debris []string
	err = filepath.WalkDir(s.inbox, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(s.inbox, p)
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasSuffix(rel, watcher.SidecarSuffix):
			sidecars[strings.TrimSuffix(rel, watcher.SidecarSuffix)] = true
		case watcher.IsChuteFile(p):
			debris = append(debris, rel)
		default:
			onDisk[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(debris) > 0 {
		t.Logf("chute's temporary files left in the folder (from kills): %s", strings.Join(debris, ", "))
	}

	var totalSize int64
	for _, rel := range soakSorted(s.files) {
		f := s.files[rel]
		if !onDisk[rel] {
			t.Errorf("%s: the file is gone from the folder (after: keep must leave it)%s", rel, s.why(rel))
			continue
		}
		delete(onDisk, rel)
		totalSize += f.c.size
		s.checkFile(rel, f.c, ups)
	}
	for _, rel := range soakSorted(onDisk) {
		t.Errorf("%s: a file the test did not leave there%s", rel, s.why(rel))
	}
	// Sidecars beside nothing. The README ("When a file is uploaded again, and when not"):
	// a renamed file's old sidecar stays with the old name, and so does a deleted file's;
	// those, written while the file was there, are listed. But a file deleted (or renamed)
	// during its upload gets no sidecar: one written after its file had left fails. The
	// margin allows for the instant between chute's check that the file is there and its
	// write of the sidecar.
	var orphans, late []string
	for _, rel := range soakSorted(sidecars) {
		if _, ok := s.files[rel]; ok {
			continue
		}
		if soakExcluded(rel) {
			t.Errorf("%s%s: a sidecar for a temporary file the folder excludes, or for a sidecar", rel, watcher.SidecarSuffix)
			continue
		}
		if _, ok := s.left[rel]; !ok {
			t.Errorf("%s%s: a sidecar for a file that never was in the folder", rel, watcher.SidecarSuffix)
			continue
		}
		sc, err := soakReadSidecar(filepath.Join(s.inbox, filepath.FromSlash(rel)))
		when := ""
		if st, serr := os.Stat(filepath.Join(s.inbox, filepath.FromSlash(rel)) + watcher.SidecarSuffix); serr == nil {
			if left, ok := s.left[rel]; ok && st.ModTime().After(left.Add(500*time.Millisecond)) {
				when = fmt.Sprintf("(written %v after the file left)", st.ModTime().Sub(left).Round(10*time.Millisecond))
			}
		}
		desc := rel
		if err != nil {
			desc = fmt.Sprintf("%s (unreadable: %v)", rel, err)
		} else if sc.Status != "done" {
			desc = fmt.Sprintf("%s (%s)", rel, sc.Status)
		}
		if when != "" {
			late = append(late, fmt.Sprintf("%s %s%s", desc, when, s.why(rel)))
		} else {
			orphans = append(orphans, desc)
		}
	}
	if len(orphans) > 0 {
		t.Logf("%d sidecars of files renamed or deleted after the sidecar was written: %s", len(orphans), strings.Join(orphans, ", "))
	}
	for _, l := range late {
		t.Errorf("a sidecar beside nothing (README: deleted during its upload: no sidecar is written): %s", l)
	}
	for i, d := range s.daemons {
		logs := d.logs.String()
		for _, bad := range []string{"panic:", "fatal error:", "level=ERROR"} {
			if at := strings.Index(logs, bad); at >= 0 {
				if bad == "level=ERROR" {
					// Errors are allowed (tusd was cut); they are shown, not failed.
					t.Logf("chute #%d logged an error: %s", i+1, soakLine(logs, at))
					continue
				}
				t.Errorf("chute #%d crashed: %s", i+1, soakTail(logs[at:], 30))
			}
		}
	}
	for _, k := range soakSorted(s.lies) {
		t.Errorf("a sidecar lied while chute ran: %s%s", s.lies[k], s.why(s.lieRels[k]))
	}
	s.checkUploads(ups)
	s.summary(ups, totalSize)
}

// checkFile: one true sidecar, and tusd holds the bytes under its id.
func (s *soak) checkFile(rel string, c *soakContent, ups map[string]soakUpload) {
	t := s.t
	path := filepath.Join(s.inbox, filepath.FromSlash(rel))
	got, err := soakHashFile(path)
	if err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	if got != c.hash {
		t.Errorf("%s: the file's bytes (sha256 %.12s) are not what the test wrote last (content #%d, %.12s): chute changed a file%s", rel, got, c.no, c.hash, s.why(rel))
		return
	}
	sc, err := soakReadSidecar(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		t.Errorf("%s: no sidecar (content #%d, %d B)%s", rel, c.no, c.size, s.why(rel))
		return
	case err != nil:
		t.Errorf("%s: %v%s", rel, err, s.why(rel))
		return
	case sc.Status != "done":
		t.Errorf("%s: sidecar status %q (job %d, error %q), want done%s", rel, sc.Status, sc.Job, sc.Error, s.why(rel))
		return
	}
	bad := false
	if sc.SHA256 != c.hash {
		t.Errorf("%s: the sidecar lies: sha256 %.12s, the file's is %.12s (content #%d)%s", rel, sc.SHA256, c.hash, c.no, s.why(rel))
		bad = true
	}
	if sc.Size != c.size {
		t.Errorf("%s: the sidecar says %d B, the file has %d B%s", rel, sc.Size, c.size, s.why(rel))
		bad = true
	}
	if want := filepath.Base(path); sc.File != want {
		t.Errorf("%s: the sidecar names the file %q, want %q", rel, sc.File, want)
	}
	if bad {
		return
	}
	if st, err := os.Stat(path); err == nil && !sc.MTime.Equal(st.ModTime()) {
		t.Errorf("%s: the sidecar records mtime %s, the file's is %s (README: same bytes, new mtime: the sidecar is rewritten with the new mtime)%s", rel, sc.MTime.Format(time.RFC3339Nano), st.ModTime().UTC().Format(time.RFC3339Nano), s.why(rel))
	}
	u, ok := ups[sc.ID]
	switch {
	case sc.ID == "" || !ok:
		t.Errorf("%s: tusd has no upload %q (the sidecar's id)%s", rel, sc.ID, s.why(rel))
	case !u.complete():
		t.Errorf("%s: tusd's upload %s is incomplete%s", rel, u, s.why(rel))
	case u.hash != c.hash:
		t.Errorf("%s: tusd's upload %s holds sha256 %.12s, the file's is %.12s%s", rel, u, u.hash, c.hash, s.why(rel))
	case sc.URL != s.tusd.url()+sc.ID:
		t.Errorf("%s: the sidecar's url %q is not the upload's, %q", rel, sc.URL, s.tusd.url()+sc.ID)
	}
}

// checkUploads: nothing was uploaded twice that did not change. Per content (its sha256),
// tusd may hold at most one complete upload for each path the content lived at. A content
// dropped once and never changed lived at one path: exactly one upload (at least one is
// shown by checkFile). A rename is a new path, and applications do not move sidecars: chute
// sees a file it has no sidecar for, so one more complete upload of the same content per
// rename is allowed (and none is required, if chute knows the content it already sent).
// Empty contents share one sha256 and an upload of 0 bytes is complete as soon as it is
// created, so a kill between tusd's answer to the creation and chute's checkpoint leaves a
// second complete empty upload that no client can avoid: for them an excess is logged.
// An upload whose bytes are no content the test wrote is the half-written state of a slow
// writer (a failure: the settle time must absorb it) or a file changed in place while it
// was read (logged: chute cannot read a file atomically, only notice the change).
func (s *soak) checkUploads(ups map[string]soakUpload) {
	t := s.t
	byHash := map[string][]soakUpload{}
	for _, id := range soakSorted(ups) {
		if u := ups[id]; u.complete() {
			byHash[u.hash] = append(byHash[u.hash], u)
		}
	}
	allowed := map[string]int{}
	first := map[string]*soakContent{}
	for _, c := range s.contents {
		if c.hash == "" {
			continue
		}
		allowed[c.hash] += c.residences
		if first[c.hash] == nil {
			first[c.hash] = c
		}
	}
	for _, id := range soakSorted(ups) {
		if u := ups[id]; soakExcluded(u.filename) {
			t.Errorf("tusd has upload %s of a temporary file the folder excludes (or of a sidecar)", u)
		}
	}
	for _, h := range soakSorted(byHash) {
		list := byHash[h]
		c := first[h]
		if c == nil {
			s.unknownUpload(list)
			continue
		}
		if len(list) <= allowed[h] {
			continue
		}
		msg := fmt.Sprintf("content #%d (%d B, sha256 %.12s) lived at %d path(s) but tusd holds %d complete uploads of it: %v", c.no, c.size, h, allowed[h], len(list), list)
		if c.size == 0 {
			t.Logf("empty files: %s (see checkUploads)", msg)
			continue
		}
		t.Errorf("uploaded twice without a change: %s%s", msg, s.contentWhy(c))
	}
}

// unknownUpload judges complete uploads whose bytes are no content the test wrote.
func (s *soak) unknownUpload(list []soakUpload) {
	for _, u := range list {
		var prefixOf *soakContent
		for _, c := range s.contents {
			if c.slow && c.size > u.size && s.prefixHash(c, u.size) == u.hash {
				prefixOf = c
				break
			}
		}
		switch {
		case prefixOf == nil:
			s.t.Logf("upload %s holds bytes of no whole file the test wrote (a file changed in place while it was read)", u)
		case prefixOf.overrun:
			s.t.Logf("upload %s is the first %d B of content #%d, written slowly in place; forgiven: a pause of its writer lasted %v (settle %v)", u, u.size, prefixOf.no, prefixOf.maxPause, soakSettle)
		default:
			s.t.Errorf("upload %s is the first %d B of content #%d (%d B) while it was written slowly in place with pauses of at most %v: the settle time (%v) did not absorb the writer%s", u, u.size, prefixOf.no, prefixOf.size, prefixOf.maxPause.Round(time.Millisecond), soakSettle, s.contentWhy(prefixOf))
		}
	}
}

func (s *soak) prefixHash(c *soakContent, n int64) string {
	h := sha256.New()
	_, _ = io.CopyN(h, s.bytesOf(c), n)
	return hex.EncodeToString(h.Sum(nil))
}

// why is a path's history and the daemons' log lines that name it, for a failure message.
func (s *soak) why(rel string) string {
	var b strings.Builder
	b.WriteString("\n    history:")
	for _, e := range s.history[rel] {
		fmt.Fprintf(&b, "\n      t+%v %s", e.at, e.what)
	}
	base := filepath.Base(rel)
	var lines []string
	for i, d := range s.daemons {
		for _, l := range strings.Split(d.logs.String(), "\n") {
			if strings.Contains(l, base) {
				l = strings.ReplaceAll(l, s.inbox+string(filepath.Separator), "")
				lines = append(lines, fmt.Sprintf("#%d %s", i+1, l))
			}
		}
	}
	if len(lines) > 16 {
		lines = append([]string{fmt.Sprintf("(%d earlier lines left out)", len(lines)-16)}, lines[len(lines)-16:]...)
	}
	if len(lines) > 0 {
		b.WriteString("\n    chute's logs naming " + base + ":\n      " + strings.Join(lines, "\n      "))
	}
	return b.String()
}

// contentWhy is the history of every path a content lived at.
func (s *soak) contentWhy(c *soakContent) string {
	var b strings.Builder
	tag := fmt.Sprintf("content #%d,", c.no)
	tag2 := fmt.Sprintf("content #%d)", c.no)
	for _, rel := range soakSorted(s.history) {
		for _, e := range s.history[rel] {
			if strings.Contains(e.what, tag) || strings.Contains(e.what, tag2) {
				b.WriteString("\n  " + rel + ":" + s.why(rel))
				break
			}
		}
	}
	return b.String()
}

func (s *soak) summary(ups map[string]soakUpload, needed int64) {
	complete, incomplete := 0, 0
	var stored, completeBytes int64
	for _, u := range ups {
		stored += u.have
		if u.complete() {
			complete++
			completeBytes += u.size
		} else {
			incomplete++
		}
	}
	var ops []string
	for _, k := range soakSorted(s.ops) {
		ops = append(ops, fmt.Sprintf("%s %d", k, s.ops[k]))
	}
	// received misses what tusd read in the last 50ms before each of its kills (its stats
	// lines come every 50ms); stored is exact. Sent per needed compares what reached tusd
	// with the complete uploads it holds: 1.00 means no byte was sent twice across kills.
	received := s.tusd.received()
	sent := max(received, stored)
	ratio := func(a, b int64) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	var tl []string
	for _, e := range s.timeline {
		tl = append(tl, fmt.Sprintf("t+%v %s", e.at, e.what))
	}
	states := "unknown"
	if out, _, err := runCLI(s.t, "status", "--config", s.cfg, "--json"); err == nil {
		var jobs []struct {
			ID        uint64 `json:"id"`
			File      string `json:"file"`
			State     string `json:"state"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
		}
		if json.Unmarshal([]byte(out), &jobs) == nil {
			n := map[string]int{}
			var failed []string
			for _, j := range jobs {
				n[j.State]++
				if j.State != "done" {
					rel, _ := filepath.Rel(s.inbox, j.File)
					failed = append(failed, fmt.Sprintf("job %d %s %s after %d attempts: %s", j.ID, rel, j.State, j.Attempts, j.LastError))
				}
			}
			if len(failed) > 0 {
				s.t.Logf("jobs not done (files changed, replaced or gone during their upload?):\n  %s", strings.Join(failed, "\n  "))
			}
			var parts []string
			for _, k := range soakSorted(n) {
				parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
			}
			states = fmt.Sprintf("%d (%s)", len(jobs), strings.Join(parts, ", "))
		}
	}
	s.t.Logf("timeline:\n  %s", strings.Join(tl, "\n  "))
	s.t.Logf("summary: %d files at the end (%d B), %d contents written; %s; chute's jobs %s; %d SIGKILLs of chute (%d while tusd was receiving) and %d SIGTERMs, %d tusd cuts; tusd: %d uploads created, %d complete (%d B), %d incomplete, %d B stored, %d B received; sent/needed %.3f (needed: the complete uploads' bytes), complete uploads/final files %.2f (edits, replacements, renames)",
		len(s.files), needed, len(s.contents), strings.Join(ops, ", "), states, s.kills, s.inFlight, s.stops, s.tusd.restarts,
		s.tusd.created(), complete, completeBytes, incomplete, stored, received, ratio(sent, completeBytes), ratio(completeBytes, needed))
}

// soakExcluded says whether a name is one the folder's config excludes (the writers'
// temporary names) or a sidecar: chute must never upload such a file.
func soakExcluded(rel string) bool {
	base := filepath.Base(rel)
	return strings.HasSuffix(base, ".part") || strings.HasSuffix(base, watcher.SidecarSuffix) ||
		(strings.HasPrefix(base, ".") && strings.HasSuffix(base, ".tmp"))
}

func soakSorted[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// soakLine is the line of s around index at.
func soakLine(s string, at int) string {
	start := strings.LastIndexByte(s[:at], '\n') + 1
	end := strings.IndexByte(s[at:], '\n')
	if end < 0 {
		return s[start:]
	}
	return s[start : at+end]
}

func soakTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// soakTusd is tusdlite in its own process, on a fixed address and data directory, so that
// it can be killed and started again as the same server.
type soakTusd struct {
	t    *testing.T
	bin  string
	dir  string
	addr string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	restarts int
	// counters of finished processes, and of the running one (reported by its stats lines)
	doneCreated, doneReceived int64
	curCreated, curReceived   atomic.Int64
	lastGrowth                atomic.Int64 // unix nanoseconds of the last rise of received
	logs                      lockedBuffer
}

func newSoakTusd(t *testing.T, dir string) *soakTusd {
	bin := filepath.Join(filepath.Dir(chuteBin), "tusdlite")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/chute-dev/chute/internal/cmd/tusdlite").CombinedOutput(); err != nil {
		t.Fatalf("build tusdlite: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return &soakTusd{t: t, bin: bin, dir: filepath.Join(dir, "tusd"), addr: addr}
}

func (p *soakTusd) url() string { return "http://" + p.addr + "/files/" }

// start runs tusdlite and waits until it serves; it retries for a while when the port is
// still held.
func (p *soakTusd) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.startOnce()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Errorf("tusdlite does not start on %s: %v\n%s", p.addr, err, p.logs.String())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *soakTusd) startOnce() error {
	cmd := exec.Command(p.bin, "--dir", p.dir, "--addr", p.addr, "--throttle", strconv.Itoa(soakThrottle), "--stats", "50ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.curCreated.Store(0)
	p.curReceived.Store(0)
	done := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			ready <- sc.Text()
		}
		close(ready)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var created, received int64
			if _, err := fmt.Sscanf(sc.Text(), "stats created=%d received=%d", &created, &received); err == nil {
				p.curCreated.Store(created)
				if received > p.curReceived.Swap(received) {
					p.lastGrowth.Store(time.Now().UnixNano())
				}
				continue
			}
			fmt.Fprintln(&p.logs, sc.Text())
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case u, ok := <-ready:
		if ok && u == p.url() {
			p.cmd, p.done = cmd, done
			return nil
		}
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("tusdlite printed %q, want %q", u, p.url())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("tusdlite printed no URL within 10s")
	}
}

// end waits for the running tusdlite to exit after sig and adds up its counters.
func (p *soakTusd) end(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("tusdlite did not exit within 10s of %v", sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.doneCreated += p.curCreated.Load()
	p.doneReceived += p.curReceived.Load()
	p.curCreated.Store(0)
	p.curReceived.Store(0)
	p.cmd = nil
	if sig == os.Kill {
		p.restarts++
	}
}

func (p *soakTusd) kill() { p.end(os.Kill) }
func (p *soakTusd) stop() { p.end(syscall.SIGTERM) }

// receivedNow is what the running tusd has received.
func (p *soakTusd) receivedNow() int64 { return p.curReceived.Load() }

// flowing says whether tusd received PATCH bytes in the last 300ms.
func (p *soakTusd) flowing() bool {
	return time.Since(time.Unix(0, p.lastGrowth.Load())) < 300*time.Millisecond
}

func (p *soakTusd) received() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneReceived + p.curReceived.Load()
}

func (p *soakTusd) created() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneCreated + p.curCreated.Load()
}
