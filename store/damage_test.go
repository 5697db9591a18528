package store

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// buildDB makes a real database of n jobs in every state (several transactions, so that the
// jobs and the indexes span many leaf and branch pages) and returns its path, closed.
func buildDB(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := discovered("/srv/in", n)
	for i := 0; i < n; i += 500 {
		addAll(t, s, files[i:min(i+500, n)])
	}
	ctx := context.Background()
	for id := uint64(1); id <= uint64(n); id += 7 {
		if _, err := s.Update(ctx, id, func(j *Job) error {
			j.State, j.Checkpoint, j.Result = Done, []byte("upload-url http://127.0.0.1/files/abc"), &Result{ID: "abc", URL: "http://127.0.0.1/v/abc"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pagesOf returns the page size and the leaf and branch pages in use.
func pagesOf(t *testing.T, path string) (size int, leaves, branches []int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	size = db.Info().PageSize
	err = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			switch p.Type {
			case "leaf":
				leaves = append(leaves, id)
			case "branch":
				branches = append(branches, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) < 10 || len(branches) < 1 {
		t.Fatalf("a database of %d leaf and %d branch pages is too small to damage well", len(leaves), len(branches))
	}
	return size, leaves, branches
}

// scribble overwrites bytes [from, to) of each page with random bytes.
func scribble(b []byte, pageSize int, pages []int, from, to int, rng *rand.Rand) {
	for _, id := range pages {
		for i := id*pageSize + from; i < id*pageSize+to && i < len(b); i++ {
			b[i] = byte(rng.Uint32())
		}
	}
}

// wantDamaged opens path as `chute run` and as `chute status` would and wants a clear error
// wrapping ErrDamaged each time, with the file left as it was.
func wantDamaged(t *testing.T, path string) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		s, err := Open(path, Options{ReadOnly: ro})
		if err == nil {
			s.Close()
			t.Fatalf("Open (ReadOnly %v) of a damaged database succeeded", ro)
		}
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open (ReadOnly %v): %v, want ErrDamaged", ro, err)
		}
		msg := err.Error()
		for _, want := range []string{path, "mv " + path + " " + path + ".damaged", "start chute again", "sidecars say done are not uploaded again"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Open (ReadOnly %v): the error lacks %q: %s", ro, want, msg)
			}
		}
		if ro {
			t.Log(msg)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("opening the damaged database changed it")
	}
	// The lock is released: once the file is moved aside, chute starts afresh.
	if err := os.Rename(path, path+".damaged"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after moving the damaged file aside: %v", err)
	}
	s.Close()
}

func TestOpenDamaged(t *testing.T) {
	good := buildDB(t, 3000)
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	ps, leaves, branches := pagesOf(t, good)
	mid := func(pages []int, n int) []int { // n pages from the middle, every third one
		var out []int
		for i := len(pages) / 2; i < len(pages) && len(out) < n; i += 3 {
			out = append(out, pages[i])
		}
		return out
	}
	cases := []struct {
		name   string
		damage func(b []byte, rng *rand.Rand) []byte
	}{
		{"cut to half", func(b []byte, _ *rand.Rand) []byte { return b[:len(b)/2] }},
		{"cut after the meta pages", func(b []byte, _ *rand.Rand) []byte { return b[:2*ps+100] }},
		{"cut inside a meta page", func(b []byte, _ *rand.Rand) []byte { return b[:ps+ps/2] }},
		{"garbage in leaf pages", func(b []byte, rng *rand.Rand) []byte {
			scribble(b, ps, mid(leaves, 3), 0, ps, rng)
			return b
		}},
		{"garbage in leaf pages, headers intact", func(b []byte, rng *rand.Rand) []byte {
			scribble(b, ps, mid(leaves, 3), 16, ps, rng)
			return b
		}},
		{"garbage in a branch page", func(b []byte, rng *rand.Rand) []byte {
			scribble(b, ps, branches[:1], 0, ps, rng)
			return b
		}},
		{"garbage in both meta pages", func(b []byte, rng *rand.Rand) []byte {
			scribble(b, ps, []int{0, 1}, 0, ps, rng)
			return b
		}},
		{"garbage in the meta and leaf pages", func(b []byte, rng *rand.Rand) []byte {
			scribble(b, ps, append([]int{0, 1}, mid(leaves, 3)...), 0, ps, rng)
			return b
		}},
		{"empty", func([]byte, *rand.Rand) []byte { return nil }},
		{"zeros", func(b []byte, _ *rand.Rand) []byte { return make([]byte, len(b)) }},
		{"random bytes", func(b []byte, rng *rand.Rand) []byte {
			scribble(b, ps, []int{0}, 0, len(b), rng)
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				path := filepath.Join(t.TempDir(), "state.db")
				b := c.damage(bytes.Clone(orig), rand.New(rand.NewPCG(seed, 6)))
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				wantDamaged(t, path)
			}
		})
	}

	// One damaged meta page alone is not damage: bbolt keeps two and uses the other.
	t.Run("one meta page", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		b := bytes.Clone(orig)
		scribble(b, ps, []int{1}, 0, ps, rand.New(rand.NewPCG(1, 6)))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("Open with one meta page damaged: %v", err)
		}
		defer s.Close()
		if all, err := s.List(Filter{}); err != nil || len(all) != 3000 {
			t.Fatalf("List: %d jobs, %v", len(all), err)
		}
	})
}

// A file cut short while chute has it open: every method gives ErrDamaged, none crashes.
func TestDamagedWhileOpen(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows does not truncate a mapped file")
	}
	path := buildDB(t, 3000)
	ps, _, _ := pagesOf(t, path)
	ctx := context.Background()
	calls := []struct {
		name string
		call func(*Store) error
	}{
		{"Get", func(s *Store) error { _, err := s.Get(1500); return err }},
		{"Lookup", func(s *Store) error { _, _, err := s.Lookup("/srv/in/clip-01500.mp4", 2500, t0); return err }},
		{"LatestByPath", func(s *Store) error { _, _, err := s.LatestByPath("/srv/in/clip-01500.mp4"); return err }},
		{"List", func(s *Store) error { _, err := s.List(Filter{}); return err }},
		{"List by state", func(s *Store) error { _, err := s.List(Filter{States: []State{Done}}); return err }},
		{"Counts", func(s *Store) error { _, err := s.Counts(); return err }},
		{"Update", func(s *Store) error {
			_, err := s.Update(ctx, 1500, func(j *Job) error { j.Attempts++; return nil })
			return err
		}},
		{"AddBatch", func(s *Store) error { _, err := s.AddBatch(ctx, discovered("/srv/in", 3001)[3000:], t0); return err }},
		{"Delete", func(s *Store) error { return s.Delete(1500) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, int64(2*ps)); err != nil {
				t.Fatal(err)
			}
			err = c.call(s)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), p) {
				t.Errorf("%s on a file cut short: %v, want ErrDamaged naming the file", c.name, err)
			}
			// From then on every method says so at once (none waits for a lock the damaged
			// transaction left held), and so does Check.
			for _, again := range calls {
				if err := again.call(s); !errors.Is(err, ErrDamaged) {
					t.Errorf("%s after damage: %v, want ErrDamaged", again.name, err)
				}
			}
			if err := s.Check(); !errors.Is(err, ErrDamaged) {
				t.Errorf("Check after damage: %v, want ErrDamaged", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// A panic in an Update's own function is the caller's bug, not damage: it goes on as a panic.
func TestUpdateFnPanicIsNotDamage(t *testing.T) {
	s := openTest(t)
	addAll(t, s, discovered("/srv/in", 1))
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v, want the function's own panic", p)
		}
		if _, err := s.Get(1); err != nil {
			t.Fatalf("the store is unusable after the panic: %v", err)
		}
	}()
	_, err := s.Update(context.Background(), 1, func(*Job) error { panic("boom") })
	t.Fatalf("Update returned %v instead of panicking", err)
}

// Check notices a file cut short under a running daemon before any method trips on it.
func TestCheckNoticesCutShort(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows does not truncate a mapped file")
	}
	path := buildDB(t, 500)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("Check of a file cut short: %v, want ErrDamaged", err)
	}
}

// BenchmarkOpenVerify is the cost at start of reading the whole database once (verify), for
// 10,000 jobs.
func BenchmarkOpenVerify10k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.AddBatch(context.Background(), discovered("/srv/in", 10000), t0); err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.ResetTimer()
	for range b.N {
		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.StopTimer()
	if info, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(info.Size())/1e6, "MB")
	}
}
