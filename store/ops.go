package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// buckets are the buckets of one transaction; prepare made sure they all exist.
type buckets struct {
	jobs, state, identity, path *bolt.Bucket
}

func bucketsOf(tx *bolt.Tx) buckets {
	return buckets{
		jobs:     tx.Bucket(bucketJobs),
		state:    tx.Bucket(bucketState),
		identity: tx.Bucket(bucketIdentity),
		path:     tx.Bucket(bucketPath),
	}
}

func (b buckets) get(id uint64) (Job, error) {
	v := b.jobs.Get(encodeID(id))
	if v == nil {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return decodeJob(id, v)
}

// checkIdentity reports an error if j's identity already belongs to another job.
func (b buckets) checkIdentity(j *Job) error {
	if v := b.identity.Get(j.identityKey()); v != nil && decodeID(v) != j.ID {
		return fmt.Errorf("job %d: %s (size %d, mtime %s) is already job %d",
			j.ID, DisplayPath(j.Path), j.Size, j.ModTime.Format(time.RFC3339Nano), decodeID(v))
	}
	return nil
}

// writeJob stores j and brings its index entries in step with it. old is the stored job before
// this write (nil for a new job). The caller has run checkIdentity.
func (b buckets) writeJob(old, j *Job) error {
	v, err := encodeJob(j)
	if err != nil {
		return err
	}
	if err := b.jobs.Put(encodeID(j.ID), v); err != nil {
		return fmt.Errorf("put job %d: %w", j.ID, err)
	}
	if old == nil || old.State != j.State {
		if old != nil {
			if err := b.state.Delete(stateKey(old.State, old.ID)); err != nil {
				return fmt.Errorf("index job %d: %w", j.ID, err)
			}
		}
		if err := b.state.Put(stateKey(j.State, j.ID), nil); err != nil {
			return fmt.Errorf("index job %d: %w", j.ID, err)
		}
	}
	if old == nil || !bytes.Equal(old.identityKey(), j.identityKey()) {
		if old != nil {
			if err := b.dropIdentity(old); err != nil {
				return err
			}
		}
		if err := b.identity.Put(j.identityKey(), encodeID(j.ID)); err != nil {
			return fmt.Errorf("index job %d: %w", j.ID, err)
		}
	}
	if old == nil || old.Path != j.Path {
		if old != nil {
			if err := b.path.Delete(pathKey(old.Path, old.ID)); err != nil {
				return fmt.Errorf("index job %d: %w", j.ID, err)
			}
		}
		if err := b.path.Put(pathKey(j.Path, j.ID), nil); err != nil {
			return fmt.Errorf("index job %d: %w", j.ID, err)
		}
	}
	return nil
}

// dropIdentity removes j's identity entry if it points at j.
func (b buckets) dropIdentity(j *Job) error {
	k := j.identityKey()
	if v := b.identity.Get(k); v != nil && decodeID(v) == j.ID {
		if err := b.identity.Delete(k); err != nil {
			return fmt.Errorf("unindex job %d: %w", j.ID, err)
		}
	}
	return nil
}

// removeJob deletes j and its index entries.
func (b buckets) removeJob(j *Job) error {
	if err := b.state.Delete(stateKey(j.State, j.ID)); err != nil {
		return fmt.Errorf("unindex job %d: %w", j.ID, err)
	}
	if err := b.dropIdentity(j); err != nil {
		return err
	}
	if err := b.path.Delete(pathKey(j.Path, j.ID)); err != nil {
		return fmt.Errorf("unindex job %d: %w", j.ID, err)
	}
	if err := b.jobs.Delete(encodeID(j.ID)); err != nil {
		return fmt.Errorf("delete job %d: %w", j.ID, err)
	}
	return nil
}

// AddBatch records discovered files in one transaction (one fsync for the whole batch), as
// Queued jobs queued at now. A file whose identity (path, size, mtime) already has a job, in the
// database or earlier in files, is not added again: its entry holds the existing job and
// Added=false. It returns one entry per file, in order. On error nothing is added.
func (s *Store) AddBatch(ctx context.Context, files []NewJob, now time.Time) (_ []Added, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, true)
	if err = s.brokenErr(); err != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("add jobs: %w", err)
	}
	for _, f := range files {
		if err := f.validate(); err != nil {
			return nil, fmt.Errorf("add jobs: %w", err)
		}
	}
	out := make([]Added, len(files))
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		for i, f := range files {
			if i%512 == 511 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if v := b.identity.Get(identityKey(f.Path, f.Size, f.ModTime)); v != nil {
				j, err := b.get(decodeID(v))
				if err != nil {
					return fmt.Errorf("identity index of %s: %w", DisplayPath(f.Path), err)
				}
				out[i] = Added{Job: j}
				continue
			}
			id, err := b.jobs.NextSequence()
			if err != nil {
				return fmt.Errorf("next job id: %w", err)
			}
			j := Job{
				ID:       id,
				Path:     f.Path,
				Size:     f.Size,
				ModTime:  f.ModTime,
				Folder:   f.Folder,
				Provider: f.Provider,
				State:    Queued,
				QueuedAt: now,
			}
			if err := b.writeJob(nil, &j); err != nil {
				return err
			}
			out[i] = Added{Job: j, Added: true}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add %d jobs: %w", len(files), err)
	}
	return out, nil
}

// Get returns job id, or an error wrapping ErrNotFound.
func (s *Store) Get(id uint64) (_ Job, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err = s.brokenErr(); err != nil {
		return
	}
	var j Job
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		j, err = bucketsOf(tx).get(id)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("get: %w", err)
	}
	return j, nil
}

// Lookup returns the job for the file identity (path, size, mtime), if there is one.
func (s *Store) Lookup(path string, size int64, mtime time.Time) (_ Job, _ bool, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err = s.brokenErr(); err != nil {
		return
	}
	var (
		j     Job
		found bool
	)
	err = s.db.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		v := b.identity.Get(identityKey(path, size, mtime))
		if v == nil {
			return nil
		}
		var err error
		j, err = b.get(decodeID(v))
		found = err == nil
		return err
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("lookup %s: %w", DisplayPath(path), err)
	}
	return j, found, nil
}

// LatestByPath returns the newest job (highest ID) for path, whatever its size and mtime.
func (s *Store) LatestByPath(path string) (_ Job, _ bool, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err = s.brokenErr(); err != nil {
		return
	}
	var (
		j     Job
		found bool
	)
	prefix := append([]byte(path), 0)
	err = s.db.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		c := b.path.Cursor()
		// Every key of path sorts before path+0x01; the last one before it is the newest.
		var k []byte
		if next, _ := c.Seek(append([]byte(path), 1)); next == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			return nil
		}
		var err error
		j, err = b.get(decodeID(k[len(prefix):]))
		found = err == nil
		return err
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("latest job of %s: %w", DisplayPath(path), err)
	}
	return j, found, nil
}

// Update loads job id, calls fn on it and writes the result back, keeping the indexes right, in
// one transaction. Concurrent Updates share a transaction and its fsync (bbolt's Batch), so a
// lone Update waits about a millisecond for company before it commits.
//
// If fn returns an error nothing is written and Update returns it (wrapped). fn must not change
// the ID, must leave a valid State, and must not give the job another job's identity. fn runs
// on a fresh copy of the job and may, if the shared transaction fails, run again: it should
// only change the job. A missing job is an error wrapping ErrNotFound. If ctx is already done,
// Update writes nothing; to save a last checkpoint while shutting down, pass a context from
// context.WithoutCancel.
func (s *Store) Update(ctx context.Context, id uint64, fn func(*Job) error) (_ Job, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, true)
	if err = s.brokenErr(); err != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		return Job{}, fmt.Errorf("update job %d: %w", id, err)
	}
	var (
		out Job
		// refused is an error of this call alone (not found, fn's error, a bad change). It is
		// kept out of the transaction so as not to fail the other Updates sharing it.
		refused error
	)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		// bbolt may run this on a goroutine of its own. A fault there becomes a panic that
		// Batch recovers; it then runs the function again alone, on this call's goroutine,
		// where guard turns it into ErrDamaged.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		out, refused = Job{}, nil
		b := bucketsOf(tx)
		old, err := b.get(id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				refused = err
				return nil
			}
			return err
		}
		j := old // fn may change j's slices and maps in place; writeJob only reads old's scalars
		if err := callFn(fn, &j); err != nil {
			refused = err
			return nil
		}
		switch {
		case j.ID != id:
			refused = fmt.Errorf("the ID changed to %d", j.ID)
		case !j.State.Valid():
			refused = fmt.Errorf("invalid state %q", j.State)
		case j.Path == "" || bytes.IndexByte([]byte(j.Path), 0) >= 0:
			refused = fmt.Errorf("invalid path %q", j.Path)
		default:
			refused = b.checkIdentity(&j)
		}
		if refused != nil {
			return nil
		}
		if err := b.writeJob(&old, &j); err != nil {
			return err
		}
		out = j
		return nil
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return Job{}, fmt.Errorf("update job %d: %w", id, err)
	}
	return out, nil
}

// callFn calls an Update's fn, marking a panic of its own so that guard does not take it for
// damage of the file and lets it go on.
func callFn(fn func(*Job) error, j *Job) error {
	defer func() {
		if p := recover(); p != nil {
			panic(fnPanic{p})
		}
	}()
	return fn(j)
}

// List returns the jobs that match filter, ordered by ID.
func (s *Store) List(filter Filter) (_ []Job, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err = s.brokenErr(); err != nil {
		return
	}
	var out []Job
	err = s.db.View(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		keep := func(j Job) bool {
			if filter.Provider != "" && j.Provider != filter.Provider {
				return true
			}
			out = append(out, j)
			return filter.Limit <= 0 || len(out) < filter.Limit
		}
		if len(filter.States) == 0 {
			c := b.jobs.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				j, err := decodeJob(decodeID(k), v)
				if err != nil {
					return err
				}
				if !keep(j) {
					return nil
				}
			}
			return nil
		}
		// Collect the IDs from the state index (keys only), then load in ID order.
		var ids []uint64
		seen := map[State]bool{}
		for _, st := range filter.States {
			if seen[st] {
				continue
			}
			seen[st] = true
			prefix := statePrefix(st)
			c := b.state.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if len(k) == len(prefix)+8 {
					ids = append(ids, decodeID(k[len(prefix):]))
				}
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			j, err := b.get(id)
			if err != nil {
				return err
			}
			if !keep(j) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// Counts returns how many jobs are in each state, from the state index (no job is decoded).
// Every known state is in the map, with 0 when no job is in it.
func (s *Store) Counts() (_ map[State]int, err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err = s.brokenErr(); err != nil {
		return
	}
	counts := make(map[State]int, 5)
	for _, st := range States() {
		counts[st] = 0
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := bucketsOf(tx).state.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i := bytes.IndexByte(k, 0); i >= 0 {
				counts[State(k[:i])]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return counts, nil
}

// Delete removes job id and its index entries; a missing job is an error wrapping ErrNotFound.
func (s *Store) Delete(id uint64) (err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, true)
	if err = s.brokenErr(); err != nil {
		return
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		j, err := b.get(id)
		if err != nil {
			return err
		}
		return b.removeJob(&j)
	})
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}
