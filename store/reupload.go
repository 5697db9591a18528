package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Reupload adds a new Queued job for file, which job old (done or failed) uploaded before,
// in one transaction. The new job takes over the file's identity (path, size, mtime) even when
// old has the same: it is the one the identity names from now on, so that the file is not
// taken as already known. note starts the new job's history (the old result it replaces).
// A file whose identity belongs to a job still queued, uploading or waiting is refused.
func (s *Store) Reupload(ctx context.Context, old uint64, file NewJob, now time.Time, note Event) (Job, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, fmt.Errorf("reupload: %w", err)
	}
	if err := file.validate(); err != nil {
		return Job{}, fmt.Errorf("reupload: %w", err)
	}
	var out Job
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		if _, err := b.get(old); err != nil {
			return err
		}
		if v := b.identity.Get(identityKey(file.Path, file.Size, file.ModTime)); v != nil {
			cur, err := b.get(decodeID(v))
			if err != nil {
				return err
			}
			if cur.State != Done && cur.State != Failed {
				return fmt.Errorf("%s is job %d already, which is %s", file.Path, cur.ID, cur.State)
			}
		}
		id, err := b.jobs.NextSequence()
		if err != nil {
			return fmt.Errorf("next job id: %w", err)
		}
		out = Job{ID: id, Path: file.Path, Size: file.Size, ModTime: file.ModTime, Folder: file.Folder,
			Provider: file.Provider, State: Queued, QueuedAt: now}
		out.Note(note)
		return b.writeJob(nil, &out)
	})
	if err != nil {
		return Job{}, fmt.Errorf("reupload job %d: %w", old, err)
	}
	return out, nil
}
