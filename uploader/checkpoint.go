package uploader

import (
	"context"
	"encoding/json"
	"fmt"
)

// LoadCheckpoint decodes the JSON checkpoint job.Checkpoint into a T. It returns the zero T
// and false when there is none; an unreadable one is logged and treated as none (starting
// over may repeat a remote step, which beats never uploading the file).
func LoadCheckpoint[T any](job *Job) (T, bool) {
	var cp T
	if len(job.Checkpoint) == 0 {
		return cp, false
	}
	if err := json.Unmarshal(job.Checkpoint, &cp); err != nil {
		job.Log().Warn("unreadable checkpoint: starting over", "err", err)
		var zero T
		return zero, false
	}
	return cp, true
}

// StoreCheckpoint saves cp as the job's JSON checkpoint, durably, before it returns (see
// Job.Save): call it before each remote step that a crash must not repeat.
func StoreCheckpoint[T any](ctx context.Context, job *Job, cp T) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	return job.SaveCheckpoint(ctx, b)
}
