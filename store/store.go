// Package store is chute's state database: one bbolt file holding every job, its state, its
// provider's checkpoint and its result, with indexes by state, by file identity (path, size,
// mtime) and by path. Nothing else in chute opens the file.
//
// Layout (schema version 1):
//
//	jobs         8-byte big-endian ID                       -> JSON of Job
//	by_state     state 0x00 ID                              -> empty
//	by_identity  path 0x00 size(8B) mtime-unixnano(8B)      -> ID
//	by_path      path 0x00 ID                               -> empty
//	meta         "version"                                  -> 8-byte big-endian schema version
//
// Every write goes through one place (writeJob / removeJob) that keeps the indexes in step
// with the job.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
}

// Open opens (creating if needed, unless ReadOnly) the state database at path. The parent
// directory is created with mode 0700 and the file with mode 0600. If another process holds the
// database, Open returns an error wrapping ErrInUse after opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state database: empty path")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create state database directory: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state database %s is %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &Store{db: db, path: path}
	if err := s.prepare(opts.ReadOnly); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// prepare checks the schema version and, when writable, creates the buckets of a new database.
func (s *Store) prepare(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
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
			for _, name := range allBuckets {
				if _, err := tx.CreateBucket(name); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return tx.Bucket(bucketMeta).Put(keyVersion, encodeID(schemaVersion))
		}
		raw := meta.Get(keyVersion)
		if len(raw) != 8 {
			return fmt.Errorf("state database %s has no valid schema version", s.path)
		}
		v := decodeID(raw)
		if v > schemaVersion {
			return fmt.Errorf("state database %s has schema version %d and this chute understands up to %d; upgrade chute or use another state file: %w",
				s.path, v, schemaVersion, ErrNewerSchema)
		}
		if v < 1 {
			return fmt.Errorf("state database %s has invalid schema version %d", s.path, v)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("state database %s is damaged: bucket %s is missing", s.path, name)
			}
		}
		return nil
	}
	var err error
	if readOnly {
		err = s.db.View(check)
	} else {
		err = s.db.Update(check)
	}
	if err != nil {
		if errors.Is(err, ErrNewerSchema) {
			return err
		}
		return fmt.Errorf("open state database: %w", err)
	}
	return nil
}

// Close closes the database and releases its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state database %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path the database was opened with.
func (s *Store) Path() string { return s.path }
