// Package store is chute's state database: one bbolt file holding every job, its state, its
// provider's checkpoint and its result, with indexes by state, by file identity (path, size,
// mtime) and by path. Nothing else in chute opens the file.
//
// Layout (schema version 1):
//
//	jobs         8-byte big-endian ID                       -> JSON of Job (see Job.MarshalJSON)
//	by_state     state 0x00 ID                              -> empty
//	by_identity  path 0x00 size(8B) mtime-unixnano(8B)      -> ID (the newest job of it: Reupload)
//	by_path      path 0x00 ID                               -> empty
//	meta         "version"                                  -> 8-byte big-endian schema version
//
// Every write goes through one place (writeJob / removeJob) that keeps the indexes in step
// with the job.
//
// Paths are bytes: index keys hold them as they are, and a job's JSON keeps a path that is not
// valid UTF-8 in path_bytes (DisplayPath shows one to people). Beside the file, <path>.lock is
// held while a Store is open (Check, LockPath). Open reads the whole file once, and every method
// turns a fault or a panic of a damaged file into an error wrapping ErrDamaged.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// schemaVersion is the layout this code reads and writes.
const schemaVersion = 1

// batchDelay is how long an Update waits for others to share its transaction. bbolt's 10ms
// default made a lone Update take ~11ms here (fsync ~1ms); 1ms still gathers concurrent
// Updates (a batch keeps growing while the one before it commits) at ~2ms for a lone one.
const batchDelay = time.Millisecond

// DefaultTimeout is how long Open waits for the file lock when Options.Timeout is zero.
const DefaultTimeout = time.Second

var (
	bucketJobs     = []byte("jobs")
	bucketState    = []byte("by_state")
	bucketIdentity = []byte("by_identity")
	bucketPath     = []byte("by_path")
	bucketMeta     = []byte("meta")
	keyVersion     = []byte("version")

	allBuckets = [][]byte{bucketJobs, bucketState, bucketIdentity, bucketPath, bucketMeta}
)

// ErrInUse is returned (wrapped) by Open when another process holds the database.
var ErrInUse = errors.New("in use by another chute process")

// ErrNotFound is returned (wrapped) when a job does not exist.
var ErrNotFound = errors.New("job not found")

// ErrNewerSchema is returned (wrapped) by Open when the database was written by a newer chute
// with a layout this one does not understand.
var ErrNewerSchema = errors.New("state database written by a newer chute")

// ErrReplaced is returned (wrapped) by Check when the database's path no longer names the file
// that Open opened: it was deleted, or another file was put in its place. Writes then go to a
// file nobody will read again and the lock no longer keeps a second chute out: stop.
var ErrReplaced = errors.New("deleted or replaced while chute was running")

// Options tune Open.
type Options struct {
	// Timeout is how long to wait for the file lock; zero or less means DefaultTimeout.
	Timeout time.Duration
	// ReadOnly opens the database for reading only (`chute status`). It still takes a shared
	// lock, so it waits for (and may time out on) a running daemon, like a writer does.
	ReadOnly bool
}

// Store is an open state database. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	// file is the database file bbolt opened (bbolt owns it); dbInfo its stat, for Check.
	file   *os.File
	dbInfo os.FileInfo
	// lock is the open lock file (<path>.lock), nil when there is none (a reader that found
	// none); lockInfo is its stat, for Check.
	lock     *os.File
	lockInfo os.FileInfo
	// broken is the damage (a *damagedError) once a method met it as a fault or a panic: from
	// then on every method returns it at once. writeBroken says it was met in a write
	// transaction, whose locks bbolt may have left held (its rollback reads the file too).
	broken      atomic.Pointer[damagedError]
	writeBroken atomic.Bool
}

// LockPath returns the lock file that Open keeps beside the database at path.
func LockPath(path string) string { return path + ".lock" }

// lockRetry is how often Open tries again for a lock another process holds.
const lockRetry = 50 * time.Millisecond

// errWouldBlock is tryLock's answer when another process holds the lock.
var errWouldBlock = errors.New("lock held by another process")

// Open opens (creating if needed, unless ReadOnly) the state database at path. The parent
// directory is created with mode 0700 and the file with mode 0600. If another process holds the
// database, Open returns an error wrapping ErrInUse after opts.Timeout.
//
// Besides bbolt's lock on the database file, a writer holds an exclusive lock on LockPath(path)
// (a reader a shared one, when the file exists) for as long as the Store is open. That lock
// outlives the database file: if the file is deleted or replaced under a running daemon, a
// second daemon still cannot start beside it (and Check tells the first to stop).
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state database: empty path")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create state database directory: %w", err)
		}
	}
	s := &Store{path: path}
	if err := s.takeLock(opts.ReadOnly, deadline); err != nil {
		return nil, err
	}
	if err := s.openChecked(opts.ReadOnly, time.Until(deadline)); err != nil {
		s.closeLock()
		return nil, err
	}
	return s, nil
}

// openChecked opens the bbolt file, checks its schema and reads it all once (verify), on this
// goroutine and under guard: a damaged file gives an error wrapping ErrDamaged, not a crash.
func (s *Store) openChecked(readOnly bool, timeout time.Duration) (err error) {
	defer func() {
		if err == nil {
			return
		}
		if s.db != nil && !s.writeBroken.Load() {
			_ = s.db.Close()
		} else if s.file != nil {
			// bbolt panicked inside Open (preflight makes that unlikely) or in a write: its
			// locks may be held, so close its file directly. The mapping, if any, stays until
			// the process ends, and with it the file's lock.
			_ = s.file.Close()
		}
		s.db = nil
	}()
	// Not a write: prepare writes only to a new database, and verify reads.
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err := s.preflight(); err != nil {
		return err
	}
	if err := s.openDB(readOnly, timeout); err != nil {
		return err
	}
	if err := s.prepare(readOnly); err != nil {
		return err
	}
	return s.db.View(s.verify)
}

// takeLock opens LockPath and locks it, trying until deadline. A reader takes a shared lock
// and only when the lock file exists (it must not create files, and may lack the right to).
func (s *Store) takeLock(readOnly bool, deadline time.Time) error {
	lp := LockPath(s.path)
	var (
		f   *os.File
		err error
	)
	if readOnly {
		f, err = os.Open(lp)
		if err != nil {
			// No lock file (a database that no writer of this version opened) or no right to
			// read it: bbolt's lock on the database file is the only guard then.
			return nil
		}
	} else if f, err = os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return fmt.Errorf("open state database lock %s: %w", lp, err)
	}
	for {
		err = tryLock(f, !readOnly)
		if err == nil {
			break
		}
		if !errors.Is(err, errWouldBlock) {
			_ = f.Close()
			return fmt.Errorf("lock state database %s: %w", lp, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return fmt.Errorf("state database %s is %w", s.path, ErrInUse)
		}
		time.Sleep(lockRetry)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat state database lock %s: %w", lp, err)
	}
	s.lock, s.lockInfo = f, info
	return nil
}

func (s *Store) closeLock() {
	if s.lock != nil {
		_ = s.lock.Close() // closing releases the lock
		s.lock = nil
	}
}

// openDB opens the bbolt file and remembers which file it is, for Check.
func (s *Store) openDB(readOnly bool, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = time.Millisecond // the lock took the whole timeout: one try (bbolt's 0 waits for ever)
	}
	openFile := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		s.file = f
		return f, err
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: readOnly, OpenFile: openFile})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("state database %s is %w", s.path, ErrInUse)
		}
		return fmt.Errorf("open state database %s: %w", s.path, err)
	}
	db.MaxBatchDelay = batchDelay
	info, err := s.file.Stat()
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("stat state database %s: %w", s.path, err)
	}
	s.db, s.dbInfo = db, info
	return nil
}

// Check reports whether the database's path (and its lock file's) still names the file this
// Store opened, and whether that file is still whole. It returns an error wrapping ErrReplaced
// when either file was deleted or replaced by another, one wrapping ErrDamaged when the
// database was cut short (or a method met damage before); other errors (a failed stat) are
// returned as they are. A daemon calls it every few seconds and stops on ErrReplaced or
// ErrDamaged: it would otherwise write into a file no one will read again, and, without its
// lock, a second daemon could start on the same config.
func (s *Store) Check() (err error) {
	defer s.guard(debug.SetPanicOnFault(true), &err, false)
	if err = s.brokenErr(); err != nil {
		return err
	}
	now, err := sameFile(s.path, s.dbInfo)
	if err != nil {
		return fmt.Errorf("state database %w", err)
	}
	if s.lock != nil {
		if _, err := sameFile(LockPath(s.path), s.lockInfo); err != nil {
			return fmt.Errorf("state database lock %w", err)
		}
	}
	var need int64
	if err := s.db.View(func(tx *bolt.Tx) error { need = tx.Size(); return nil }); err != nil {
		return fmt.Errorf("check state database %s: %w", s.path, err)
	}
	if now.Size() < need {
		return s.damaged("cut short while chute had it open: %d bytes, and its pages need %d", now.Size(), need)
	}
	return nil
}

// sameFile stats path and reports ErrReplaced unless it is the file opened.
func sameFile(path string, opened os.FileInfo) (os.FileInfo, error) {
	now, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s was %w (the file is gone)", path, ErrReplaced)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	case !os.SameFile(opened, now):
		return nil, fmt.Errorf("%s was %w (the path names another file now)", path, ErrReplaced)
	}
	return now, nil
}

// prepare checks the schema version and, when writable, creates the buckets of a new database.
// It reads in a read transaction first and writes only to a brand-new database: a bbolt
// write transaction, even one that changes nothing, rewrites the freelist and a meta page, and
// a damaged file must be left as it was found.
func (s *Store) prepare(readOnly bool) error {
	fresh := false
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A database without meta is either brand new (no buckets at all) or not ours.
			var foreign []byte
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				foreign = append([]byte(nil), name...)
				return errors.New("stop")
			})
			if foreign != nil {
				return fmt.Errorf("%s is not a chute state database (it has a bucket %q and no schema version)", s.path, foreign)
			}
			if readOnly {
				return fmt.Errorf("state database %s is not initialized (has chute run yet?)", s.path)
			}
			fresh = true
			return nil
		}
		raw := meta.Get(keyVersion)
		if len(raw) != 8 {
			return s.damaged("no valid schema version")
		}
		v := decodeID(raw)
		if v > schemaVersion {
			return fmt.Errorf("state database %s has schema version %d and this chute understands up to %d; upgrade chute or use another state file: %w",
				s.path, v, schemaVersion, ErrNewerSchema)
		}
		if v < 1 {
			return s.damaged("invalid schema version %d", v)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return s.damaged("bucket %s is missing", name)
			}
		}
		return nil
	})
	if err == nil && fresh {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucket(name); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return tx.Bucket(bucketMeta).Put(keyVersion, encodeID(schemaVersion))
		})
	}
	if err != nil {
		if errors.Is(err, ErrNewerSchema) || errors.Is(err, ErrDamaged) {
			return err
		}
		return fmt.Errorf("open state database: %w", err)
	}
	return nil
}

// Close closes the database and releases its locks. The lock file stays: removing it would
// let a chute that opened it just before lock a file that the next one no longer finds.
func (s *Store) Close() error {
	if s.writeBroken.Load() {
		// db.Close would wait for ever for the write lock that the damaged write left held.
		// Closing the file is all that can be done; the mapping stays until the process ends.
		_ = s.file.Close()
		s.closeLock()
		return nil
	}
	err := s.db.Close()
	s.closeLock()
	if err != nil {
		return fmt.Errorf("close state database %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path the database was opened with.
func (s *Store) Path() string { return s.path }
