package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
)

// after is the after-action of the job's folder.
func (d *Daemon) after(job store.Job) string {
	if f := d.folder(job.Folder); f != nil {
		return f.After
	}
	return configs.AfterKeep
}

// newest reports whether job is the newest job of its path: only that one may write the
// path's sidecar, so that an older job ending late never overwrites a newer job's truth.
func (d *Daemon) newest(job store.Job) (bool, error) {
	latest, ok, err := d.st.LatestByPath(job.Path)
	if err != nil {
		return false, err
	}
	return !ok || latest.ID == job.ID, nil
}

// sidecarOf describes job as its sidecar says it.
// target is where the file is (its new place with after: move).
func (d *Daemon) sidecarOf(job store.Job, target string, pr *providerRun, status, msg string, finished time.Time) *Sidecar {
	base := filepath.Base(target)
	sc := &Sidecar{
		Status: status, File: store.DisplayPath(base), Size: job.Size, MTime: job.ModTime.UTC(), SHA256: job.SHA256,
		Provider: pr.cfg.Type, ProviderName: pr.cfg.Name, Error: msg, Job: job.ID,
		Attempts: job.Attempts, QueuedAt: job.QueuedAt, FinishedAt: finished,
	}
	if sc.File != base {
		sc.FileBytes = []byte(base)
	}
	if job.Result != nil && status == "done" {
		sc.ID, sc.URL, sc.Extra = job.Result.ID, job.Result.URL, job.Result.Extra
	}
	return sc
}

// finish ends a job whose upload is done: the after-action, the sidecar, then the done
// state. Each step can be repeated after a crash. A sidecar that cannot be written (a full
// disk) is retried with backoff: the job is not done until its sidecar exists.
func (d *Daemon) finish(ctx context.Context, pr *providerRun, job store.Job, log *slog.Logger) next {
	ok, err := d.newest(job)
	if err != nil {
		log.Error("cannot read the state database; trying again later", "err", err)
		return d.later(d.dbBackoff())
	}
	if !ok {
		return d.end(job, log, store.Done, "uploaded, but a newer job owns this path now; its sidecar is that job's")
	}
	if job.SHA256 == "" {
		var stop bool
		if job, stop = d.hashForSidecar(ctx, job, log); stop {
			return next{}
		}
	}
	target := job.Path
	after := d.after(job)
	switch after {
	case configs.AfterMove:
		target, err = d.move(ctx, job, d.folder(job.Folder))
	case configs.AfterKeep:
		if _, serr := os.Lstat(job.Path); errors.Is(serr, fs.ErrNotExist) {
			return d.end(job, log, store.Done, "the file was deleted after its upload; no sidecar was written")
		}
	}
	finished := time.Now().UTC()
	if err == nil {
		// Not fsynced one by one (see writeSidecar), except with after: delete, where the
		// sidecar is all that stays of the file and repairSidecars could not write it again.
		err = writeSidecar(target, d.sidecarOf(job, target, pr, "done", "", finished), after == configs.AfterDelete)
	}
	if err == nil && after == configs.AfterDelete {
		// The sidecar stays as the record of where the file went.
		if rerr := os.Remove(job.Path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("delete the uploaded file: %w", rerr)
		}
	}
	if err != nil {
		wait := d.backoff(2)
		msg := fmt.Sprintf("uploaded to %s, but the ending failed: %v; chute tries again", uploader.RedactURL(job.Result.URL), d.scrub.text(err.Error()))
		log.Error("uploaded, but the after-action or sidecar failed; trying again later", "after", after, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
		if _, uerr := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
			keepResult(j, job)
			j.State = store.RetryWait
			j.NextAttempt = time.Now().Add(wait).UTC()
			j.NoteError(msg, "ending")
			return nil
		}); uerr != nil {
			log.Error("cannot record the failed ending", "err", uerr)
		}
		return d.later(wait)
	}
	_, uerr := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		keepResult(j, job)
		j.State = store.Done
		j.FinishedAt = finished
		j.LastError = ""
		j.NextAttempt = time.Time{}
		j.Sidecar = SidecarPath(target)
		return nil
	})
	if uerr != nil {
		log.Error("cannot record the job as done; trying again later", "err", uerr)
		return d.later(d.dbBackoff())
	}
	d.m.ended(job.Provider, store.Done)
	log.Info("done", "url", uploader.RedactURL(job.Result.URL), "sidecar", SidecarPath(target))
	return next{}
}

// hashForSidecar computes the SHA-256 of an uploaded file that has none yet: a stop cut its
// hash (beside the upload) short, or the hash failed. It hashes the file at job.Path only
// while that is the file uploaded (same size and mtime); if not, the sidecar goes without
// it. A stop records the result (the job is queued: the next start finishes it) and says
// stop.
func (d *Daemon) hashForSidecar(ctx context.Context, job store.Job, log *slog.Logger) (store.Job, bool) {
	f, err := uploader.OpenFile(job.Path)
	if err != nil {
		return job, false
	}
	defer f.Close()
	if f.Size != job.Size || !f.ModTime.Equal(job.ModTime) {
		return job, false
	}
	sums, err := uploader.ComputeDigests(ctx, f, withSHA256(nil))
	if err == nil {
		job.SHA256 = sums[uploader.SHA256]
		return job, false
	}
	if ctx.Err() == nil {
		log.Error("cannot read the file to hash it; its sidecar goes without its SHA-256", "err", err)
		return job, false
	}
	if _, uerr := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		keepResult(j, job)
		j.State = store.Queued
		return nil
	}); uerr != nil {
		log.Error("cannot record the finished upload while stopping", "err", uerr)
	}
	return job, true
}

// keepResult writes into j (the stored job) the result that job carries and the database
// may not have yet: an upload whose result is recorded with its ending (process, after:
// keep). A job without a result changes nothing.
func keepResult(j *store.Job, job store.Job) {
	if job.Result == nil || j.Result != nil {
		return
	}
	j.Result, j.SHA256, j.Sent, j.Attempts = job.Result, job.SHA256, job.Sent, job.Attempts
	if !job.StartedAt.IsZero() {
		j.StartedAt = job.StartedAt
	}
}

// end records a job's last state without a sidecar: there is nothing to write one beside, or
// a newer job owns the path.
func (d *Daemon) end(job store.Job, log *slog.Logger, state store.State, why string) next {
	_, err := d.update(context.Background(), job.ID, func(j *store.Job) error {
		keepResult(j, job)
		j.State = state
		j.LastError = why
		if state == store.Failed {
			j.NoteError(why, "")
		}
		j.NextAttempt = time.Time{}
		j.FinishedAt = time.Now().UTC()
		return nil
	})
	if err != nil {
		log.Error("cannot record the job's end; trying again later", "err", err)
		return d.later(d.dbBackoff())
	}
	d.m.ended(job.Provider, state)
	return next{}
}

// abandon ends a job whose file is gone or changed before its upload: there is nothing to
// write a sidecar beside, or a newer job owns the file.
func (d *Daemon) abandon(job store.Job, log *slog.Logger, why string) next {
	log.Warn("job dropped: "+why, "job", job.ID)
	n := d.end(job, log, store.Failed, why)
	d.forget(job.Path)
	return n
}

// fail ends a job for good: a failed sidecar says why, in words a user can act on.
func (d *Daemon) fail(job store.Job, pr *providerRun, log *slog.Logger, msg string) next {
	msg = d.scrub.text(msg)
	if !strings.Contains(msg, "chute retry") {
		msg += fmt.Sprintf(". Once that is fixed, run `chute retry %d`", job.ID)
	}
	now := time.Now().UTC()
	if ok, err := d.newest(job); err == nil && ok {
		if _, serr := os.Lstat(job.Path); serr == nil {
			if err := WriteSidecar(job.Path, d.sidecarOf(job, job.Path, pr, "failed", msg, now)); err != nil {
				log.Error("cannot write the failed sidecar", "err", err)
			}
		}
	}
	_, err := d.update(context.Background(), job.ID, func(j *store.Job) error {
		j.State = store.Failed
		j.NoteError(msg, "")
		j.NextAttempt = time.Time{}
		j.FinishedAt = now
		j.Attempts = job.Attempts
		return nil
	})
	if err != nil {
		log.Error("cannot record the failed job; trying again later", "err", err)
		return d.later(d.dbBackoff())
	}
	d.m.ended(job.Provider, store.Failed)
	log.Error("upload failed", "err", msg)
	return next{}
}

// move moves an uploaded file under folder.MoveTo, keeping its path relative to the folder,
// and returns where it is now. It never overwrites: when the name is taken it picks a free
// one ("report (2).pdf"), and records the choice in the job before the move, so that a
// repeat after a crash finds it.
func (d *Daemon) move(ctx context.Context, job store.Job, folder *configs.Folder) (string, error) {
	if folder == nil || folder.MoveTo == "" {
		return "", errors.New("move: the folder has no move_to")
	}
	rel, err := filepath.Rel(folder.Path, job.Path)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = filepath.Base(job.Path)
	}
	want := filepath.Join(folder.MoveTo, rel)
	for try := 0; try < 1000; try++ {
		dest := job.MovedTo
		if dest == "" {
			dest = freeName(want)
			j, err := d.update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
				j.MovedTo = dest
				return nil
			})
			if err != nil {
				return "", fmt.Errorf("move: record the destination: %w", err)
			}
			job = j
		}
		err := moveNoReplace(job.Path, dest)
		if errors.Is(err, fs.ErrExist) {
			job.MovedTo = "" // taken meanwhile: choose again
			continue
		}
		if err != nil {
			return "", err
		}
		// A sidecar left beside the original (from an earlier failure) would mislead.
		_ = os.Remove(SidecarPath(job.Path))
		return dest, nil
	}
	return "", fmt.Errorf("move: no free name for %s", want)
}

// freeName returns path, or "name (N).ext" with the smallest N >= 2 that is free, for the
// file and its sidecar alike.
func freeName(path string) string {
	taken := func(p string) bool {
		_, err := os.Lstat(p)
		_, serr := os.Lstat(SidecarPath(p))
		return err == nil || serr == nil
	}
	if !taken(path) {
		return path
	}
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if stem == "" { // ".profile": the dot starts the name, it is no extension
		stem, ext = base, ""
	}
	for n := 2; ; n++ {
		p := filepath.Join(dir, fmt.Sprintf("%s (%d)%s", stem, n, ext))
		if !taken(p) {
			return p
		}
	}
}

// moveNoReplace moves src to dst unless dst exists (an error wrapping fs.ErrExist). It is
// repeatable: when src is gone and dst exists, the move happened before.
func moveNoReplace(src, dst string) error {
	if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Lstat(dst); err == nil {
			return nil // moved before a crash
		}
		return fmt.Errorf("move: %s is gone", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("move: %w", err)
	}
	// A hard link cannot replace: it fails if dst exists. Then drop the old name.
	lerr := os.Link(src, dst)
	if lerr == nil || sameFile(src, dst) {
		if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("move: remove original: %w", err)
		}
		return nil
	}
	if errors.Is(lerr, fs.ErrExist) {
		return lerr
	}
	// No hard links here (another file system, or one without them): copy.
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("move: %s: %w", dst, fs.ErrExist)
	}
	if err := copyFile(src, dst); err != nil {
		return fmt.Errorf("move to %s: %w", dst, err)
	}
	if err := os.Remove(src); err != nil {
		return fmt.Errorf("move: remove original: %w", err)
	}
	return nil
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// copyFile copies src to dst through a temporary name, for moves across file systems.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.CreateTemp(filepath.Dir(dst), tempPattern)
	if err != nil {
		return err
	}
	tmp := out.Name()
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	_ = os.Chmod(tmp, st.Mode().Perm())
	_ = os.Chtimes(tmp, st.ModTime(), st.ModTime())
	if _, err := os.Lstat(dst); err == nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", dst, fs.ErrExist)
	}
	return os.Rename(tmp, dst)
}

// repairSidecars writes again, at start, the sidecars of done jobs that are missing or
// stale (deleted by hand, or lost with a disk): each newest job of its path whose file is
// still there with the content the job uploaded gets its sidecar back.
func (d *Daemon) repairSidecars(ctx context.Context) {
	jobs, err := d.st.List(store.Filter{States: []store.State{store.Done}})
	if err != nil {
		d.log.Error("cannot list done jobs to check their sidecars", "err", err)
		return
	}
	repaired := 0
	for _, job := range jobs {
		if ctx.Err() != nil {
			return
		}
		pr, ok := d.provider(job.Provider)
		if !ok || job.Result == nil {
			continue
		}
		target := job.Path
		if job.MovedTo != "" {
			target = job.MovedTo
		}
		st, err := os.Stat(target)
		if err != nil || st.Size() != job.Size || (job.MovedTo == "" && !st.ModTime().Equal(job.ModTime)) {
			continue // gone or changed: there is nothing true to write beside it
		}
		if sc, err := ReadSidecar(target); err == nil && sc.Status == "done" && sc.Job == job.ID && sc.SHA256 == job.SHA256 {
			continue
		}
		if ok, err := d.newest(job); err != nil || !ok {
			continue
		}
		finished := job.FinishedAt
		if finished.IsZero() {
			finished = time.Now().UTC()
		}
		if err := WriteSidecar(target, d.sidecarOf(job, target, pr, "done", "", finished)); err != nil {
			d.log.Warn("cannot write a missing sidecar again", "file", target, "err", err)
			continue
		}
		repaired++
	}
	if repaired > 0 {
		d.log.Info("sidecars written again from the state database", "count", repaired)
	}
}
