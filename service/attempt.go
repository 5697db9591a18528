package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/internal/fsx"
	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
)

// next is what becomes of a job after a worker had it: nothing more (it ended, or is held
// elsewhere), a retry at a time, or straight back to the front of its queue (its provider
// was paused under it).
type next struct {
	at    time.Time
	front bool
}

func (d *Daemon) later(wait time.Duration) next { return next{at: time.Now().Add(wait)} }

// errCheckpoint marks a checkpoint that could not be saved: the state database failed, not
// the provider, so it is not an attempt.
var errCheckpoint = errors.New("the state database could not save the checkpoint")

// process runs one attempt of job id.
func (d *Daemon) process(ctx context.Context, pr *providerRun, id uint64) next {
	job, err := d.st.Get(id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return next{}
		}
		d.storeFailed(err)
		d.log.Error("cannot load job; trying again later", "job", id, "err", err)
		return d.later(d.minBackoff)
	}
	if job.State == store.Done || job.State == store.Failed {
		return next{}
	}
	log := d.log.With("job", id, "file", job.Path, "provider", job.Provider)
	if job.Result != nil {
		// The upload finished before a crash, a stop or a failed ending; only the ending is
		// left to do.
		return d.finish(ctx, pr, job, log)
	}
	// The attempt's start is not a commit of its own: a crash leaves the job queued (or
	// retry_wait) rather than uploading, which resumes the same way. Its uploading state is
	// written with its first checkpoint or its result; status shows it live meanwhile.
	startedAt := time.Now().UTC()

	f, err := uploader.OpenFile(job.Path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return d.abandon(job, log, "the file was deleted before it was uploaded")
		case errors.Is(err, fsx.ErrNotRegular):
			return d.abandon(job, log, "the file was replaced by something that is not a regular file (a FIFO, a device or a folder)")
		}
		return d.fail(job, pr, log, fmt.Sprintf("cannot read the file: %v. Fix its permissions, then run `chute retry %d`", unwrapPath(err), job.ID))
	}
	defer f.Close()
	if rel, err := filepath.Rel(job.Folder, job.Path); err == nil && !strings.HasPrefix(rel, "..") {
		f.RelPath = filepath.ToSlash(rel)
	}
	if f.Size != job.Size || !f.ModTime.Equal(job.ModTime) {
		return d.abandon(job, log, "the file changed after it settled; its new content is uploaded as a new job")
	}
	opened, err := f.Stat()
	if err != nil {
		return d.fail(job, pr, log, fmt.Sprintf("cannot read the file: %v", err))
	}

	// A done sidecar of the same size but another mtime: the file may be the same content
	// touched, or new content under a reused name. The hash decides.
	if n, ok := d.adopt(ctx, pr, &job, f, opened, log); ok {
		return n
	}
	if len(pr.digests) > 0 && !hasDigests(job, pr.digests) {
		if n, ok := d.digestFirst(ctx, &job, f, opened, pr.digests, log); !ok {
			return n
		}
	}

	// The sidecar's SHA-256: a large file's ahead of the upload or beside it when a core is
	// free for it (hashing.go), the upload then going straight from the page cache to the
	// socket; else (a small file, or the cores busy hashing) from the reads that feed the
	// upload.
	var dg *digest
	var run *hashRun
	if job.SHA256 == "" {
		if f.Size >= configs.SmallFile {
			run = d.hashes.forUpload(job.Path, f, opened, withSHA256(nil), false)
		}
		if run == nil {
			dg = newDigest()
			f.Observe(dg.see)
		}
	}
	sent := new(atomic.Int64)
	sent.Store(job.Sent)
	d.progress.Store(id, newInflight(pr.cfg.Name, sent))
	defer d.progress.Delete(id)
	log.Info("uploading", "attempt", job.Attempts+1, "resume", len(job.Checkpoint) > 0)
	d.m.attempts.WithLabelValues(pr.cfg.Name).Inc()
	started := time.Now()
	var digests map[uploader.Digest]string
	if len(job.Digests) > 0 {
		digests = make(map[uploader.Digest]string, len(job.Digests))
		for k, v := range job.Digests {
			digests[uploader.Digest(k)] = v
		}
	}
	res, err := pr.p.Upload(ctx, &uploader.Job{
		File:       f,
		Checkpoint: job.Checkpoint,
		Digests:    digests,
		Save: func(ctx context.Context, cp []byte) error {
			// A checkpoint is saved even while stopping: it guards a step already taken.
			_, err := d.update(context.WithoutCancel(ctx), id, func(j *store.Job) error {
				j.Checkpoint = cp
				j.Sent = sent.Load()
				j.State, j.StartedAt, j.NextAttempt = store.Uploading, startedAt, time.Time{}
				return nil
			})
			if err != nil {
				return fmt.Errorf("%w: %w", errCheckpoint, err)
			}
			return nil
		},
		Progress: func(n int64) { sent.Store(n) },
		Logger:   log,
	})
	if err != nil {
		if run != nil {
			d.hashes.release(run, false)
		}
		d.m.uploadEnded(pr.cfg.Name, sent.Load()-job.Sent, false, 0)
		return d.attemptFailed(ctx, job, pr, log, sent.Load(), err)
	}
	pr.gate.succeeded()
	sum := job.SHA256
	switch {
	case dg != nil:
		if sum, err = dg.finish(f); err != nil {
			log.Error("cannot read the file to hash it", "err", err)
		}
	case run != nil:
		sums, err := run.result(ctx, opened)
		d.hashes.release(run, err == nil)
		if err != nil && ctx.Err() == nil {
			log.Warn("the hash beside the upload failed; hashing the file again", "err", err)
			sums, err = uploader.ComputeDigests(ctx, f, withSHA256(nil))
		}
		if err == nil {
			sum = sums[uploader.SHA256]
		} else if ctx.Err() == nil {
			log.Error("cannot read the file to hash it", "err", err)
		} // stopping: finish hashes it before it writes the sidecar
	}
	elapsed := time.Since(started)
	d.m.uploadEnded(pr.cfg.Name, job.Size-job.Sent, true, elapsed)

	// What was uploaded must still be the file at the path, or the sidecar would lie.
	now, serr := os.Stat(job.Path)
	gone := errors.Is(serr, fs.ErrNotExist)
	changed := serr == nil && (now.Size() != job.Size || !now.ModTime().Equal(job.ModTime) || !os.SameFile(now, opened))
	if changed {
		log.Warn("the file changed during its upload; its new content is uploaded as a new job", "url", uploader.RedactURL(res.URL))
		d.forget(job.Path)
		return d.end(job, log, store.Failed, fmt.Sprintf("superseded: the file changed during its upload (the copy at %s may be incomplete); its new content is uploaded as a new job", uploader.RedactURL(res.URL)))
	}
	// record puts the finished upload in a job: its result, its hash, the attempt that did it.
	record := func(j *store.Job) {
		j.Result = &store.Result{ID: res.ID, URL: res.URL, Extra: res.Extra}
		j.SHA256, j.Sent, j.LastError = sum, j.Size, ""
		j.Attempts++
		j.State, j.StartedAt, j.NextAttempt = store.Uploading, startedAt, time.Time{}
	}
	if d.after(job) == configs.AfterKeep && !gone {
		// The result is recorded with the done state, in one commit after the sidecar
		// (finish): the file stays where it is, so a crash before that commit finds the
		// sidecar at the next start and adopts its result by hash (adopt), or resumes from
		// the provider's checkpoint and finds the upload complete. Only a file sent whole in
		// one request (TUS creation-with-upload, small files) and whose sidecar a power loss
		// also took is sent again.
		record(&job)
		log.Info("uploaded", "url", uploader.RedactURL(res.URL), "size", job.Size, "seconds", elapsed.Seconds())
		return d.finish(ctx, pr, job, log)
	}
	job, err = d.update(context.WithoutCancel(ctx), id, func(j *store.Job) error {
		record(j)
		return nil
	})
	if err != nil {
		// The provider resumes from its checkpoint and finds the upload complete.
		log.Error("cannot record the finished upload; trying again later", "err", err)
		return d.later(d.dbBackoff())
	}
	log.Info("uploaded", "url", uploader.RedactURL(res.URL), "size", job.Size, "seconds", elapsed.Seconds())
	if gone && d.after(job) == configs.AfterKeep {
		// The bytes were read through the open handle, so the copy is whole; but there is
		// nothing to write a sidecar beside.
		log.Warn("the file was deleted during its upload; the uploaded copy is complete, no sidecar was written")
		return d.end(job, log, store.Done, "the file was deleted during its upload; the uploaded copy is complete; no sidecar was written")
	}
	return d.finish(ctx, pr, job, log)
}

// adopt handles a file whose done sidecar has its size but not its mtime: when the content
// is the one the sidecar describes (same sha256), the job takes the sidecar's result and
// nothing is uploaded. It returns ok=false when the upload must go ahead; the hash it made
// is kept in job either way.
func (d *Daemon) adopt(ctx context.Context, pr *providerRun, job *store.Job, f *uploader.File, opened fs.FileInfo, log *slog.Logger) (next, bool) {
	sc, err := ReadSidecar(job.Path)
	if err != nil || sc.Status != "done" || sc.Size != job.Size || sc.SHA256 == "" || job.SHA256 != "" || reuploading(*job) {
		return next{}, false
	}
	sums, err := d.digestsOf(ctx, job.Path, f, opened, withSHA256(pr.digests))
	if err != nil {
		if ctx.Err() != nil {
			return next{}, true
		}
		log.Warn("cannot hash the file to compare it with its sidecar; uploading it", "err", err)
		return next{}, false
	}
	same := sums[uploader.SHA256] == sc.SHA256
	j, err := d.update(ctx, job.ID, func(j *store.Job) error {
		j.SHA256 = sums[uploader.SHA256]
		j.Digests = digestMap(sums)
		if same {
			j.Result = &store.Result{ID: sc.ID, URL: sc.URL, Extra: sc.Extra}
			j.Sent = j.Size
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return next{}, true
		}
		return d.later(d.dbBackoff()), true
	}
	*job = j
	if !same {
		log.Info("the file has new content under a name uploaded before; uploading it")
		return next{}, false
	}
	log.Info("the file's content is the one its sidecar says was uploaded; not uploading again", "url", uploader.RedactURL(sc.URL))
	return d.finish(ctx, pr, j, log), true
}

// digestFirst computes the digests the provider needs (with the sidecar's SHA-256, in one
// read) and records them before the upload, so that a resume never hashes again.
func (d *Daemon) digestFirst(ctx context.Context, job *store.Job, f *uploader.File, opened fs.FileInfo, need []uploader.Digest, log *slog.Logger) (next, bool) {
	sums, err := d.digestsOf(ctx, job.Path, f, opened, withSHA256(need))
	if err != nil {
		if ctx.Err() != nil {
			d.requeueStopped(ctx, *job, log, job.Sent)
			return next{}, false
		}
		log.Warn("cannot hash the file; trying again later", "err", err)
		return d.later(d.backoff(1)), false
	}
	j, err := d.update(ctx, job.ID, func(j *store.Job) error {
		j.SHA256 = sums[uploader.SHA256]
		j.Digests = digestMap(sums)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return next{}, false
		}
		return d.later(d.dbBackoff()), false
	}
	*job = j
	return next{}, true
}

func hasDigests(j store.Job, need []uploader.Digest) bool {
	for _, k := range need {
		if j.Digests[string(k)] == "" {
			return false
		}
	}
	return j.SHA256 != ""
}

func digestMap(sums map[uploader.Digest]string) map[string]string {
	m := make(map[string]string, len(sums))
	for k, v := range sums {
		if k != uploader.SHA256 {
			m[string(k)] = v
		}
	}
	return m
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// digest computes a file's SHA-256 from the bytes its provider reads, in order, so that an
// upload reads the file once. Bytes read out of order (a resume from the server's offset, a
// provider's second pass) are skipped; finish reads what the hash did not see.
type digest struct {
	mu     sync.Mutex
	h      hash.Hash
	next   int64 // the offset the hash has reached
	closed bool  // finish has taken over
}

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) see(p []byte, off int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed && off <= d.next && off+int64(len(p)) > d.next {
		d.h.Write(p[d.next-off:])
		d.next = off + int64(len(p))
	}
}

// finish hashes what the upload did not read in order and returns the digest in hex.
func (d *digest) finish(f *uploader.File) (string, error) {
	d.mu.Lock()
	d.closed = true // from here on only finish writes to d.h
	next := d.next
	d.mu.Unlock()
	if next < f.Size {
		if _, err := io.Copy(d.h, io.NewSectionReader(f, next, f.Size-next)); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(d.h.Sum(nil)), nil
}

// requeueStopped puts a job cut by a stop back in the queue for the next start. A stop is
// not an attempt.
func (d *Daemon) requeueStopped(ctx context.Context, job store.Job, log *slog.Logger, sent int64) {
	_, err := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		j.State = store.Queued
		j.Sent = sent
		return nil
	})
	if err != nil {
		log.Error("cannot checkpoint the job while stopping; it resumes at the next start", "err", err)
		return
	}
	log.Info("upload interrupted by stop; it resumes at the next start", "sent", sent)
}

// attemptFailed decides what an error means for the job: back to the queue on a stop or a
// provider pause, another attempt later, or the end. Only a try that the provider or the
// network refused counts as an attempt; a stop, a crash, a rate limit, a Retry-After wait
// and a provider outage do not.
func (d *Daemon) attemptFailed(ctx context.Context, job store.Job, pr *providerRun, log *slog.Logger, sent int64, err error) next {
	if ctx.Err() != nil {
		d.requeueStopped(ctx, job, log, sent)
		return next{}
	}
	if errors.Is(err, errCheckpoint) {
		log.Error("the state database failed during the upload; trying again later", "err", err)
		return d.later(d.dbBackoff())
	}
	class, after := uploader.Classify(err)
	d.m.failed(pr.cfg.Name, class)
	msg := d.scrub.text(err.Error())
	switch class {
	case uploader.Permanent:
		job.Attempts++ // the provider refused this try
		return d.fail(job, pr, log, msg)
	case uploader.RateLimited:
		wait := d.capWait(after, d.backoff(1))
		pr.gate.rateLimited(wait, msg)
		return d.waitWithProvider(ctx, job, log, sent, "rate-limited", fmt.Sprintf("rate-limited: every job of provider %s waits until %s: %s", pr.cfg.Name, time.Now().Add(wait).Format(time.TimeOnly), msg))
	case uploader.RetryAfter:
		wait := d.capWait(after, d.backoff(job.Attempts+1))
		return d.retryWait(ctx, job, log, sent, wait, msg, false, class)
	}
	if pr.gate.failed(job.ID, isConnectionError(err), msg) {
		return d.waitWithProvider(ctx, job, log, sent, "unreachable", fmt.Sprintf("waiting: provider %s is unreachable or failing every request: %s", pr.cfg.Name, msg))
	}
	if job.Attempts+1 >= pr.cfg.MaxAttempts {
		job.Attempts++
		n := job.Attempts
		return d.fail(job, pr, log, fmt.Sprintf("gave up after %d %s; the last error was: %s. Check the network and the provider, then run `chute retry %d`", n, plural(n, "attempt"), msg, job.ID))
	}
	return d.retryWait(ctx, job, log, sent, d.backoff(job.Attempts+1), msg, true, class)
}

// retryWait records a failed try and when the next one is due.
func (d *Daemon) retryWait(ctx context.Context, job store.Job, log *slog.Logger, sent int64, wait time.Duration, msg string, counts bool, class uploader.Class) next {
	at := time.Now().Add(wait)
	j, err := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		j.State = store.RetryWait
		j.NextAttempt = at.UTC()
		j.NoteError(msg, class.String())
		j.Sent = sent
		if counts {
			j.Attempts++
		}
		return nil
	})
	if err != nil {
		log.Error("cannot record the failed attempt; trying again later", "err", err)
		return d.later(max(wait, d.dbBackoff()))
	}
	d.m.retries.WithLabelValues(job.Provider).Inc()
	log.Warn("upload failed; retrying later", "attempts", j.Attempts, "class", class.String(), "retry_in", wait.Round(time.Millisecond).String(), "err", msg)
	return next{at: at}
}

// waitWithProvider sends a job back to the front of its queue while its provider is paused;
// the attempt does not count.
func (d *Daemon) waitWithProvider(ctx context.Context, job store.Job, log *slog.Logger, sent int64, kind, why string) next {
	_, err := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		j.State = store.Queued
		j.NoteError(why, kind)
		j.Sent = sent
		return nil
	})
	if err != nil {
		return d.later(d.dbBackoff())
	}
	log.Debug("job waits for its provider", "why", why)
	return next{front: true}
}

// capWait is the wait a server asked for, capped at MaxRetryAfter; def when it asked none.
func (d *Daemon) capWait(asked, def time.Duration) time.Duration {
	if asked <= 0 {
		return def
	}
	return min(asked, d.maxAfter)
}

// isConnectionError tells an error that never reached the server's application (refused,
// reset, timed out, DNS) from an answer the server gave.
func isConnectionError(err error) bool {
	var se *uploader.StatusError
	return !errors.As(err, &se) && !errors.Is(err, context.Canceled)
}

// backoff is exponential with full jitter between half and all of the step.
func (d *Daemon) backoff(attempts int) time.Duration {
	step := d.minBackoff
	for i := 1; i < attempts && step < d.maxBackoff; i++ {
		step *= 2
	}
	step = min(step, d.maxBackoff)
	return step/2 + rand.N(step/2+1)
}

// dbBackoff is the wait before a job whose state could not be written is tried again.
func (d *Daemon) dbBackoff() time.Duration { return max(d.minBackoff, time.Second) }
