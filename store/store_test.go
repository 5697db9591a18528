package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)

// openTest opens a store in a fresh directory and closes it when the test ends.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// discovered makes n files named <dir>/clip-<i>.mp4 with distinct sizes and mtimes.
func discovered(dir string, n int) []NewJob {
	files := make([]NewJob, n)
	for i := range files {
		files[i] = NewJob{
			Path:     fmt.Sprintf("%s/clip-%05d.mp4", dir, i),
			Size:     int64(1000 + i),
			ModTime:  t0.Add(time.Duration(i) * time.Second),
			Folder:   dir,
			Provider: []string{"gc", "tus"}[i%2],
		}
	}
	return files
}

func addAll(t testing.TB, s *Store, files []NewJob) []Added {
	t.Helper()
	added, err := s.AddBatch(context.Background(), files, t0)
	if err != nil {
		t.Fatalf("AddBatch: %v", err)
	}
	if len(added) != len(files) {
		t.Fatalf("AddBatch returned %d entries for %d files", len(added), len(files))
	}
	return added
}

func ids(jobs []Job) []uint64 {
	out := make([]uint64, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// checkConsistent reads the buckets directly and fails unless every index agrees with the jobs,
// then checks that List by state and Counts agree with the jobs too.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		jobs := 0
		err := b.jobs.ForEach(func(k, v []byte) error {
			jobs++
			j, err := decodeJob(decodeID(k), v)
			if err != nil {
				return err
			}
			if b.state.Get(stateKey(j.State, j.ID)) == nil {
				return fmt.Errorf("job %d (%s) has no by_state entry", j.ID, j.State)
			}
			if v := b.identity.Get(j.identityKey()); v == nil || decodeID(v) != j.ID {
				return fmt.Errorf("job %d: by_identity entry is %v, want its ID", j.ID, v)
			}
			if b.path.Get(pathKey(j.Path, j.ID)) == nil {
				return fmt.Errorf("job %d has no by_path entry", j.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for name, bk := range map[string]*bolt.Bucket{"by_state": b.state, "by_identity": b.identity, "by_path": b.path} {
			if n := bk.Stats().KeyN; n != jobs {
				return fmt.Errorf("%s has %d entries for %d jobs", name, n, jobs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("indexes disagree with jobs: %v", err)
	}

	all, err := s.List(Filter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.IsSortedFunc(all, func(a, b Job) int { return int(a.ID) - int(b.ID) }) {
		t.Fatalf("List is not ordered by ID: %v", ids(all))
	}
	want := map[State][]uint64{}
	for _, j := range all {
		want[j.State] = append(want[j.State], j.ID)
	}
	counts, err := s.Counts()
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	for _, st := range States() {
		got, err := s.List(Filter{States: []State{st}})
		if err != nil {
			t.Fatalf("List(%s): %v", st, err)
		}
		if !slices.Equal(ids(got), want[st]) {
			t.Errorf("List(%s) = %v, want %v", st, ids(got), want[st])
		}
		if counts[st] != len(want[st]) {
			t.Errorf("Counts[%s] = %d, want %d", st, counts[st], len(want[st]))
		}
	}
}

func TestAddBatchTenThousand(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	files := discovered("/srv/in", 10_000)

	first := addAll(t, s, files)
	for i, a := range first {
		if !a.Added || a.Job.ID == 0 || a.Job.Path != files[i].Path || a.Job.State != Queued || !a.Job.QueuedAt.Equal(t0) {
			t.Fatalf("entry %d = %+v, want a new queued job for %s", i, a, files[i].Path)
		}
	}
	all, err := s.List(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(files) {
		t.Fatalf("List: %d jobs, want %d", len(all), len(files))
	}
	for i, j := range all {
		if j.ID != first[i].Job.ID || j.Path != files[i].Path || j.Size != files[i].Size ||
			!j.ModTime.Equal(files[i].ModTime) || j.Provider != files[i].Provider || j.Folder != "/srv/in" {
			t.Fatalf("job %d = %+v, want file %+v", i, j, files[i])
		}
	}

	// The same files again: nothing added, the same jobs returned.
	again, err := s.AddBatch(ctx, files, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range again {
		if a.Added || a.Job.ID != first[i].Job.ID || !a.Job.QueuedAt.Equal(t0) {
			t.Fatalf("second AddBatch entry %d = added %v ID %d, want existing ID %d", i, a.Added, a.Job.ID, first[i].Job.ID)
		}
	}

	// Same paths, a new size or a new mtime: new jobs. A duplicate inside one batch is added once.
	changed := slices.Clone(files[:100])
	for i := range changed {
		if i%2 == 0 {
			changed[i].Size++
		} else {
			changed[i].ModTime = changed[i].ModTime.Add(time.Nanosecond)
		}
	}
	changed = append(changed, changed[0])
	third := addAll(t, s, changed)
	for i, a := range third[:100] {
		if !a.Added || a.Job.ID <= first[len(first)-1].Job.ID {
			t.Fatalf("changed file %d: added %v ID %d, want a new job", i, a.Added, a.Job.ID)
		}
		latest, ok, err := s.LatestByPath(changed[i].Path)
		if err != nil || !ok || latest.ID != a.Job.ID {
			t.Fatalf("LatestByPath(%s) = %d %v %v, want %d", changed[i].Path, latest.ID, ok, err, a.Job.ID)
		}
		old, ok, err := s.Lookup(files[i].Path, files[i].Size, files[i].ModTime)
		if err != nil || !ok || old.ID != first[i].Job.ID {
			t.Fatalf("Lookup of the old identity = %d %v %v, want %d", old.ID, ok, err, first[i].Job.ID)
		}
	}
	if dup := third[100]; dup.Added || dup.Job.ID != third[0].Job.ID {
		t.Fatalf("duplicate in one batch: added %v ID %d, want existing %d", dup.Added, dup.Job.ID, third[0].Job.ID)
	}
	if _, ok, err := s.Lookup(files[0].Path, files[0].Size+7, files[0].ModTime); ok || err != nil {
		t.Fatalf("Lookup of an unknown identity: ok %v err %v", ok, err)
	}
	if _, ok, err := s.LatestByPath(files[0].Path + ".part"); ok || err != nil {
		t.Fatalf("LatestByPath of an unknown path: ok %v err %v", ok, err)
	}
	checkConsistent(t, s)
}

func TestUpdateKeepsStateIndex(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	added := addAll(t, s, discovered("/srv/in", 320))
	set := func(id uint64, st State) {
		t.Helper()
		if _, err := s.Update(ctx, id, func(j *Job) error { j.State = st; return nil }); err != nil {
			t.Fatalf("Update(%d, %s): %v", id, st, err)
		}
	}

	// A sequential mix, back and forth.
	for i, a := range added[:40] {
		set(a.Job.ID, Uploading)
		switch i % 4 {
		case 0:
			set(a.Job.ID, Done)
		case 1:
			set(a.Job.ID, RetryWait)
			set(a.Job.ID, Queued)
		case 2:
			set(a.Job.ID, Failed)
		}
	}
	checkConsistent(t, s)

	// 16 workers: each walks its own jobs through an attempt, and all of them bump one shared
	// job's Attempts (a lost update would show in the total).
	const workers, bumps = 16, 20
	shared := added[0].Job.ID
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	want := make([]State, len(added))
	for i := range added[40:] {
		want[40+i] = []State{Done, Failed, RetryWait, Uploading}[i%4]
	}
	for w := range workers {
		wg.Go(func() {
			for i := 40 + w; i < len(added); i += workers {
				id := added[i].Job.ID
				_, err := s.Update(ctx, id, func(j *Job) error {
					j.State, j.Attempts, j.StartedAt = Uploading, j.Attempts+1, t0
					return nil
				})
				if err == nil && want[i] != Uploading {
					_, err = s.Update(ctx, id, func(j *Job) error { j.State = want[i]; return nil })
				}
				if err == nil && i%3 == 0 {
					_, err = s.Update(ctx, shared, func(j *Job) error { j.Attempts++; return nil })
				}
				if err != nil {
					errs <- err
					return
				}
			}
			for range bumps {
				if _, err := s.Update(ctx, shared, func(j *Job) error { j.Attempts++; return nil }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Update: %v", err)
	}
	wantBumps := workers * bumps
	for i := 40; i < len(added); i++ {
		if i%3 == 0 {
			wantBumps++
		}
		j, err := s.Get(added[i].Job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != want[i] || j.Attempts != 1 {
			t.Errorf("job %d: state %s attempts %d, want %s 1", j.ID, j.State, j.Attempts, want[i])
		}
	}
	j, err := s.Get(shared)
	if err != nil {
		t.Fatal(err)
	}
	if j.Attempts != wantBumps {
		t.Errorf("shared job attempts = %d, want %d (lost updates)", j.Attempts, wantBumps)
	}
	checkConsistent(t, s)
}

func TestCheckpointAndResultPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	added := addAll(t, s, discovered("/srv/in", 3))
	id := added[1].Job.ID
	checkpoint := []byte{0, 1, 2, 0xff, '{', '"', '\n', 0}
	want, err := s.Update(ctx, id, func(j *Job) error {
		j.State = Done
		j.Attempts = 2
		j.NextAttempt = t0.Add(time.Minute)
		j.LastError = "gcore: 503 Service Unavailable"
		j.Checkpoint = checkpoint
		j.Sent = 1 << 40
		j.SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		j.Result = &Result{ID: "2501637", URL: "https://player.gvideo.co/videos/2675", Extra: map[string]string{"hls_url": "https://x/y.m3u8"}}
		j.StartedAt = t0.Add(2 * time.Second)
		j.FinishedAt = t0.Add(7 * time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkpoint[0] = 'X' // the store must not keep the caller's slice
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	want.Checkpoint = []byte{0, 1, 2, 0xff, '{', '"', '\n', 0}
	if !sameJob(got, want) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", got, want)
	}
	if got.Result == nil || got.Result.Extra["hls_url"] != "https://x/y.m3u8" {
		t.Fatalf("Result = %+v", got.Result)
	}
	// IDs continue after a reopen; the other jobs are untouched.
	more := addAll(t, s, discovered("/srv/other", 1))
	if more[0].Job.ID <= added[2].Job.ID {
		t.Fatalf("new ID %d after reopen, want > %d", more[0].Job.ID, added[2].Job.ID)
	}
	other, err := s.Get(added[0].Job.ID)
	if err != nil || other.State != Queued || other.Checkpoint != nil || other.Result != nil {
		t.Fatalf("untouched job = %+v, %v", other, err)
	}
	checkConsistent(t, s)
}

// sameJob compares jobs field by field, times by instant.
func sameJob(a, b Job) bool {
	times := func(j *Job) []*time.Time {
		return []*time.Time{&j.ModTime, &j.NextAttempt, &j.QueuedAt, &j.StartedAt, &j.FinishedAt}
	}
	ta, tb := times(&a), times(&b)
	for i := range ta {
		if !ta[i].Equal(*tb[i]) {
			return false
		}
		*ta[i], *tb[i] = time.Time{}, time.Time{}
	}
	return reflect.DeepEqual(a, b)
}

func TestOpenInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "chute")
	path := filepath.Join(dir, "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700 | os.ModeDir} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
			}
		}
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}

	const timeout = 100 * time.Millisecond
	for _, ro := range []bool{false, true} {
		start := time.Now()
		s2, err := Open(path, Options{Timeout: timeout, ReadOnly: ro})
		elapsed := time.Since(start)
		if err == nil {
			s2.Close()
			t.Fatalf("second Open (ReadOnly %v) succeeded while the first is open", ro)
		}
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("second Open (ReadOnly %v): %v, want ErrInUse", ro, err)
		}
		if want := "state database " + path + " is in use by another chute process"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		if elapsed > 10*time.Second { // a hang guard, not a timing target
			t.Errorf("second Open (ReadOnly %v) hung for %v with a %v timeout", ro, elapsed, timeout)
		}
	}

	// Once the writer is gone, readers share the file, and a writer waits for them.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r1, err := Open(path, Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	defer r2.Close()
	if _, err := Open(path, Options{Timeout: timeout}); !errors.Is(err, ErrInUse) {
		t.Fatalf("writer while readers hold the file: %v, want ErrInUse", err)
	}
	// A reader reads and cannot write.
	if _, err := r1.Counts(); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.AddBatch(context.Background(), discovered("/srv/in", 1), t0); err == nil {
		t.Fatal("AddBatch on a read-only store succeeded")
	}
	if _, err := r1.Update(context.Background(), 1, func(*Job) error { return nil }); err == nil {
		t.Fatal("Update on a read-only store succeeded")
	}
}

func TestOpenReadOnlyMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none", "state.db")
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadOnly Open of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadOnly Open created the directory: %v", err)
	}
}

func TestUpdateRefusals(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	added := addAll(t, s, discovered("/srv/in", 2))
	id, other := added[0].Job.ID, added[1].Job

	if _, err := s.Update(ctx, 999, func(*Job) error { t.Error("fn called for a missing job"); return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing job: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing job: %v, want ErrNotFound", err)
	}
	if err := s.Delete(999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a missing job: %v, want ErrNotFound", err)
	}

	before, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")
	cases := map[string]struct {
		fn   func(*Job) error
		want error
	}{
		"fn error": {func(j *Job) error {
			j.State, j.Checkpoint, j.Path = Done, []byte("half"), "/elsewhere"
			return errBoom
		}, errBoom},
		"ID changed":     {func(j *Job) error { j.ID++; j.State = Done; return nil }, nil},
		"invalid state":  {func(j *Job) error { j.State = "bogus"; return nil }, nil},
		"empty path":     {func(j *Job) error { j.Path = ""; return nil }, nil},
		"taken identity": {func(j *Job) error { j.Path, j.Size, j.ModTime = other.Path, other.Size, other.ModTime; return nil }, nil},
	}
	for name, c := range cases {
		calls := 0
		_, err := s.Update(ctx, id, func(j *Job) error { calls++; return c.fn(j) })
		if err == nil {
			t.Errorf("%s: Update succeeded", name)
		} else if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		if calls != 1 {
			t.Errorf("%s: fn called %d times, want 1", name, calls)
		}
		after, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJob(after, before) {
			t.Errorf("%s: job changed to %+v", name, after)
		}
	}
	checkConsistent(t, s)

	// Canceled context: nothing happens.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Update(cctx, id, func(j *Job) error { j.State = Done; return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a canceled context: %v", err)
	}
	if _, err := s.AddBatch(cctx, discovered("/srv/new", 5), t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddBatch with a canceled context: %v", err)
	}
	if n, _ := s.List(Filter{}); len(n) != 2 {
		t.Fatalf("%d jobs after canceled calls, want 2", len(n))
	}
	if _, err := s.AddBatch(ctx, []NewJob{{Path: "/a\x00b"}}, t0); err == nil {
		t.Fatal("AddBatch accepted a path with a NUL byte")
	}
}

// Failing Updates that share a bbolt batch with good ones neither write nor spoil the others.
func TestUpdateErrorsInSharedBatch(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	added := addAll(t, s, discovered("/srv/in", 32))
	errBoom := errors.New("boom")
	var calls atomic.Int32
	var wg sync.WaitGroup
	for i, a := range added {
		wg.Go(func() {
			_, err := s.Update(ctx, a.Job.ID, func(j *Job) error {
				calls.Add(1)
				j.State = Uploading
				if i%2 == 1 {
					return errBoom
				}
				return nil
			})
			if fail := i%2 == 1; fail != errors.Is(err, errBoom) || (!fail && err != nil) {
				t.Errorf("job %d: Update error %v", a.Job.ID, err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != int32(len(added)) {
		t.Errorf("fn called %d times for %d Updates", n, len(added))
	}
	for i, a := range added {
		j, err := s.Get(a.Job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []State{Uploading, Queued}[i%2]; j.State != want {
			t.Errorf("job %d: state %s, want %s", j.ID, j.State, want)
		}
	}
	checkConsistent(t, s)
}

func TestUpdateMovesIndexes(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	added := addAll(t, s, discovered("/srv/in", 3))
	a := added[0].Job
	moved, err := s.Update(ctx, a.ID, func(j *Job) error {
		j.Path, j.Size = "/srv/done/clip.mp4", 5
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Lookup(a.Path, a.Size, a.ModTime); ok {
		t.Error("old identity still found")
	}
	if j, ok, _ := s.Lookup(moved.Path, moved.Size, moved.ModTime); !ok || j.ID != a.ID {
		t.Errorf("new identity: %v %d", ok, j.ID)
	}
	if _, ok, _ := s.LatestByPath(a.Path); ok {
		t.Error("old path still found")
	}
	if j, ok, _ := s.LatestByPath(moved.Path); !ok || j.ID != a.ID {
		t.Errorf("new path: %v %d", ok, j.ID)
	}
	checkConsistent(t, s)
}

func TestDelete(t *testing.T) {
	s := openTest(t)
	files := discovered("/srv/in", 3)
	added := addAll(t, s, files)
	if err := s.Delete(added[1].Job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(added[1].Job.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, ok, _ := s.Lookup(files[1].Path, files[1].Size, files[1].ModTime); ok {
		t.Fatal("Lookup finds a deleted job")
	}
	if _, ok, _ := s.LatestByPath(files[1].Path); ok {
		t.Fatal("LatestByPath finds a deleted job")
	}
	checkConsistent(t, s)
	// The file can be queued again, as a new job.
	again := addAll(t, s, files)
	if again[0].Added || !again[1].Added || again[1].Job.ID <= added[2].Job.ID {
		t.Fatalf("re-add after Delete: %+v", again)
	}
	checkConsistent(t, s)
}

func TestListFilter(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	added := addAll(t, s, discovered("/srv/in", 10)) // providers alternate gc, tus
	for _, i := range []int{1, 2, 5, 8} {
		if _, err := s.Update(ctx, added[i].Job.ID, func(j *Job) error { j.State = Failed; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	id := func(is ...int) []uint64 {
		out := []uint64{}
		for _, i := range is {
			out = append(out, added[i].Job.ID)
		}
		return out
	}
	cases := []struct {
		f    Filter
		want []uint64
	}{
		{Filter{}, id(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{Filter{Limit: 3}, id(0, 1, 2)},
		{Filter{States: []State{Failed, Queued}}, id(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{Filter{States: []State{Failed, Failed}}, id(1, 2, 5, 8)},
		{Filter{States: []State{Failed}, Provider: "gc"}, id(2, 8)},
		{Filter{States: []State{Queued}, Provider: "tus", Limit: 2}, id(3, 7)},
		{Filter{Provider: "none"}, id()},
		{Filter{States: []State{Done}}, id()},
	}
	for _, c := range cases {
		got, err := s.List(c.f)
		if err != nil {
			t.Fatal(err)
		}
		if g := append([]uint64{}, ids(got)...); !slices.Equal(g, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.f, g, c.want)
		}
	}
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawPut(t, path, bucketMeta, keyVersion, encodeID(99))
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a version 99 database: %v, want ErrNewerSchema naming the path and version", err)
	}
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("ReadOnly Open of a version 99 database: %v", err)
	}

	// A bbolt file that is not ours.
	foreign := filepath.Join(t.TempDir(), "other.db")
	rawPut(t, foreign, []byte("widgets"), []byte("k"), []byte("v"))
	if _, err := Open(foreign, Options{}); err == nil || !strings.Contains(err.Error(), "not a chute state database") {
		t.Fatalf("Open of a foreign bbolt file: %v", err)
	}
}

func rawPut(t *testing.T, path string, bucket, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put(key, value)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAddBatch1000(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	n := 0
	for b.Loop() {
		b.StopTimer()
		files := discovered(fmt.Sprintf("/srv/in/%d", n), 1000)
		n++
		b.StartTimer()
		if _, err := s.AddBatch(ctx, files, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*1000), "ns/job")
}

func BenchmarkUpdateParallel(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	added := addAll(b, s, discovered("/srv/in", 256))
	var next atomic.Int64
	b.SetParallelism(8) // 8 x GOMAXPROCS workers, like a daemon with many uploads in flight
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := added[int(next.Add(1)-1)%len(added)].Job.ID // a job of its own
		for pb.Next() {
			if _, err := s.Update(ctx, id, func(j *Job) error { j.Sent += 1 << 20; j.Checkpoint = []byte("offset"); return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUpdateSerial(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	id := addAll(b, s, discovered("/srv/in", 1))[0].Job.ID
	for b.Loop() {
		if _, err := s.Update(ctx, id, func(j *Job) error { j.Sent += 1 << 20; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
