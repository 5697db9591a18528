// Package service is chute's daemon: it turns ready files into jobs in the state database,
// runs them through their providers with per-provider workers, retries with backoff, writes
// sidecars, applies after-actions, and answers status and retry requests.
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
	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/watcher"
)

// Options configure a Daemon.
type Options struct {
	Config   *configs.Config
	Registry *uploader.Registry
	// Logger receives the daemon's logs (nil: discarded).
	Logger *slog.Logger
	// HTTP is the shared HTTP helper (nil: a new one).
	HTTP *uploader.Client
	// Rescan is the watcher's periodic rescan (0: its default, 10 min).
	Rescan time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults 2s and 10 min).
	MinBackoff, MaxBackoff time.Duration
}

// Daemon is chute running: build it with New, run it with Run.
type Daemon struct {
	cfg        *configs.Config
	log        *slog.Logger
	http       *uploader.Client
	providers  map[string]*providerRun
	folders    map[string]*configs.Folder
	minBackoff time.Duration
	maxBackoff time.Duration
	rescan     time.Duration

	st *store.Store
	w  *watcher.Watcher

	mu        sync.Mutex
	scheduled map[uint64]bool        // queued in memory, held by a worker, or waiting on a timer
	timers    map[uint64]*time.Timer // retry_wait jobs
	progress  sync.Map               // job id -> *atomic.Int64: bytes sent, for status
	stats     counters
}

type providerRun struct {
	cfg *configs.Provider
	p   uploader.Provider
	q   *queue
}

type counters struct {
	done, failed, retried atomic.Int64
	bytes                 atomic.Int64
}

// New builds the daemon and its providers from a valid config.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil || opts.Registry == nil {
		return nil, errors.New("service: Config and Registry are required")
	}
	d := &Daemon{
		cfg:        opts.Config,
		log:        opts.Logger,
		http:       opts.HTTP,
		providers:  make(map[string]*providerRun),
		folders:    make(map[string]*configs.Folder),
		minBackoff: opts.MinBackoff,
		maxBackoff: opts.MaxBackoff,
		rescan:     opts.Rescan,
		scheduled:  make(map[uint64]bool),
		timers:     make(map[uint64]*time.Timer),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.http == nil {
		d.http = uploader.NewClient(uploader.ClientOptions{})
	}
	if d.minBackoff <= 0 {
		d.minBackoff = 2 * time.Second
	}
	if d.maxBackoff <= 0 {
		d.maxBackoff = 10 * time.Minute
	}
	for name, pc := range opts.Config.Providers {
		t, ok := opts.Registry.Lookup(pc.Type)
		if !ok {
			return nil, fmt.Errorf("providers.%s: unknown provider type %q", name, pc.Type)
		}
		endpoint := pc.Endpoint
		if endpoint == "" {
			endpoint = t.DefaultEndpoint
		}
		p, err := t.New(uploader.Env{Name: name, Endpoint: endpoint, Client: d.http, Logger: d.log.With("provider", name)}, pc.Options)
		if err != nil {
			return nil, fmt.Errorf("providers.%s: %w", name, err)
		}
		d.providers[name] = &providerRun{cfg: pc, p: p, q: newQueue()}
	}
	for _, f := range opts.Config.Folders {
		d.folders[f.Path] = f
	}
	return d, nil
}

// Run opens the state database, resumes unfinished jobs, watches the folders and uploads
// until ctx is done. Then it stops gracefully: uploads in flight are cancelled at a point
// their providers checkpointed, and go back to the queue for the next start.
func (d *Daemon) Run(ctx context.Context) error {
	st, err := store.Open(d.cfg.State, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	d.st = st
	defer d.http.CloseIdle()

	wfolders := make([]watcher.Folder, len(d.cfg.Folders))
	for i, f := range d.cfg.Folders {
		wfolders[i] = watcher.Folder{Path: f.Path, Recursive: f.Recursive, Include: f.Include, Exclude: f.Exclude, Settle: f.Settle, MaxWait: f.MaxWait}
	}
	w, err := watcher.New(wfolders, watcher.Options{Rescan: d.rescan, Logger: d.log.With("part", "watcher")})
	if err != nil {
		return err
	}
	d.w = w

	ctl, err := d.serveControl()
	if err != nil {
		return err
	}
	defer ctl.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var runErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { runErr = err })
		cancel()
	}

	if err := d.resume(ctx); err != nil {
		return err
	}
	batches := make(chan []watcher.Ready, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx, batches); err != nil {
			fail(fmt.Errorf("watch folders: %w", err))
		}
		close(batches)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.ingest(ctx, batches)
	}()
	for _, pr := range d.providers {
		for i := 0; i < pr.cfg.Concurrency; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.worker(ctx, pr)
			}()
		}
	}
	if d.cfg.Listen != "" {
		srv, err := d.serveHTTP(d.cfg.Listen)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		defer srv.close()
	}
	d.log.Info("chute is running", "folders", len(d.cfg.Folders), "providers", len(d.providers), "state", d.cfg.State)
	<-ctx.Done()
	d.log.Info("stopping: checkpointing uploads in flight")
	wg.Wait()
	d.stopTimers()
	d.log.Info("stopped")
	return runErr
}

// resume schedules the jobs a previous run left unfinished.
func (d *Daemon) resume(ctx context.Context) error {
	jobs, err := d.st.List(store.Filter{States: []store.State{store.Uploading, store.Queued, store.RetryWait}})
	if err != nil {
		return err
	}
	n := 0
	for _, j := range jobs {
		if _, ok := d.providers[j.Provider]; !ok {
			d.log.Warn("job's provider is no longer configured; leaving it queued", "job", j.ID, "file", j.Path, "provider", j.Provider)
			continue
		}
		if j.State == store.RetryWait {
			d.scheduleAt(j, j.NextAttempt)
		} else {
			d.enqueue(j)
		}
		n++
	}
	if n > 0 {
		d.log.Info("resuming unfinished jobs", "count", n)
	}
	return nil
}

// ingest records ready files as jobs, a batch per transaction, and queues the new ones.
func (d *Daemon) ingest(ctx context.Context, batches <-chan []watcher.Ready) {
	for batch := range batches {
		news := make([]store.NewJob, 0, len(batch))
		for _, r := range batch {
			folder := d.cfg.Folders[r.Folder]
			if sidecarSaysDone(r.Path, r.Size) {
				d.log.Debug("sidecar says done; not uploading again", "file", r.Path)
				continue
			}
			news = append(news, store.NewJob{Path: r.Path, Size: r.Size, ModTime: r.ModTime, Folder: folder.Path, Provider: folder.Provider})
		}
		if len(news) == 0 {
			continue
		}
		added, err := d.st.AddBatch(context.WithoutCancel(ctx), news, time.Now())
		if err != nil {
			d.log.Error("cannot record new files; they will be picked up again", "count", len(news), "err", err)
			for _, n := range news {
				d.w.Forget(n.Path)
			}
			continue
		}
		for _, a := range added {
			if a.Added {
				d.log.Info("queued", "job", a.Job.ID, "file", a.Job.Path, "size", a.Job.Size, "provider", a.Job.Provider)
				d.enqueue(a.Job)
			}
		}
	}
}

// enqueue puts a job in its provider's queue unless it is scheduled already.
func (d *Daemon) enqueue(j store.Job) {
	pr, ok := d.providers[j.Provider]
	if !ok {
		return
	}
	d.mu.Lock()
	if d.scheduled[j.ID] {
		d.mu.Unlock()
		return
	}
	d.scheduled[j.ID] = true
	d.mu.Unlock()
	pr.q.push(j.ID)
}

// scheduleAt queues a job once at has come.
func (d *Daemon) scheduleAt(j store.Job, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.scheduled[j.ID] {
		return
	}
	d.scheduled[j.ID] = true
	wait := time.Until(at)
	if wait < 0 {
		wait = 0
	}
	pr := d.providers[j.Provider]
	id := j.ID
	d.timers[id] = time.AfterFunc(wait, func() {
		d.mu.Lock()
		delete(d.timers, id)
		d.mu.Unlock()
		pr.q.push(id)
	})
}

func (d *Daemon) stopTimers() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, t := range d.timers {
		t.Stop()
		delete(d.timers, id)
	}
}

func (d *Daemon) release(id uint64) {
	d.mu.Lock()
	delete(d.scheduled, id)
	d.mu.Unlock()
}

func (d *Daemon) worker(ctx context.Context, pr *providerRun) {
	for {
		id, ok := pr.q.pop(ctx)
		if !ok {
			return
		}
		retry, at := d.process(ctx, pr, id)
		d.release(id)
		if retry != nil {
			d.scheduleAt(*retry, at)
		}
	}
}

// process runs one attempt of job id. It returns the job and a time when the job is to be
// tried again.
func (d *Daemon) process(ctx context.Context, pr *providerRun, id uint64) (retry *store.Job, at time.Time) {
	job, err := d.st.Get(id)
	if err != nil {
		d.log.Error("cannot load job", "job", id, "err", err)
		return nil, time.Time{}
	}
	if job.State == store.Done || job.State == store.Failed {
		return nil, time.Time{}
	}
	log := d.log.With("job", id, "file", job.Path, "provider", job.Provider)
	if job.Result != nil {
		// The upload finished before a crash or stop; only the ending is left to do.
		d.finish(ctx, pr, job, log)
		return nil, time.Time{}
	}
	job, err = d.st.Update(ctx, id, func(j *store.Job) error {
		j.State = store.Uploading
		j.Attempts++
		j.StartedAt = time.Now().UTC()
		j.NextAttempt = time.Time{}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			log.Error("cannot start job", "err", err)
		}
		return nil, time.Time{}
	}

	f, err := uploader.OpenFile(job.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			d.abandon(job, log, "the file was deleted before it was uploaded")
			return nil, time.Time{}
		}
		d.fail(job, pr, log, fmt.Sprintf("cannot read the file: %v. Fix its permissions, then run `chute retry %d`", unwrapPath(err), job.ID))
		return nil, time.Time{}
	}
	defer f.Close()
	if f.Size != job.Size || !f.ModTime.Equal(job.ModTime) {
		d.abandon(job, log, "the file changed after it settled; its new content is uploaded as a new job")
		return nil, time.Time{}
	}

	digest := newDigest()
	f.Observe(digest.see)

	sent := new(atomic.Int64)
	sent.Store(job.Sent)
	d.progress.Store(id, sent)
	defer d.progress.Delete(id)
	log.Info("uploading", "attempt", job.Attempts, "resume", len(job.Checkpoint) > 0)
	started := time.Now()
	res, err := pr.p.Upload(ctx, &uploader.Job{
		File:       f,
		Checkpoint: job.Checkpoint,
		Save: func(ctx context.Context, cp []byte) error {
			// A checkpoint is saved even while stopping: it guards a step already taken.
			_, err := d.st.Update(context.WithoutCancel(ctx), id, func(j *store.Job) error {
				j.Checkpoint = cp
				j.Sent = sent.Load()
				return nil
			})
			return err
		},
		Progress: func(n int64) { sent.Store(n) },
		Logger:   log,
	})
	if err != nil {
		return d.attemptFailed(ctx, job, pr, log, sent.Load(), err)
	}
	sum, err := digest.finish(f)
	if err != nil {
		log.Error("cannot read the file to hash it", "err", err)
	}
	if st, err := os.Stat(job.Path); err == nil && (st.Size() != job.Size || !st.ModTime().Equal(job.ModTime)) {
		d.fail(job, pr, log, fmt.Sprintf("the file changed while it was being uploaded (the copy at %s may be incomplete); its new content is uploaded as a new job", res.URL))
		d.w.Forget(job.Path)
		return nil, time.Time{}
	}
	d.stats.bytes.Add(job.Size)
	elapsed := time.Since(started)
	job, err = d.st.Update(context.WithoutCancel(ctx), id, func(j *store.Job) error {
		j.Result = &store.Result{ID: res.ID, URL: res.URL, Extra: res.Extra}
		j.SHA256 = sum
		j.Sent = j.Size
		return nil
	})
	if err != nil {
		log.Error("cannot record the finished upload; it is retried at the next start", "err", err)
		return nil, time.Time{}
	}
	log.Info("uploaded", "url", res.URL, "size", job.Size, "seconds", elapsed.Seconds())
	d.finish(ctx, pr, job, log)
	return nil, time.Time{}
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

// attemptFailed decides what an error means for the job: back to the queue on a stop,
// another attempt later, or the end.
func (d *Daemon) attemptFailed(ctx context.Context, job store.Job, pr *providerRun, log *slog.Logger, sent int64, err error) (*store.Job, time.Time) {
	if ctx.Err() != nil {
		// Stopping: the attempt was ours to cut short, not the provider's to fail.
		_, uerr := d.st.Update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
			j.State = store.Queued
			if j.Attempts > 0 {
				j.Attempts--
			}
			j.Sent = sent
			return nil
		})
		if uerr != nil {
			log.Error("cannot checkpoint the job while stopping", "err", uerr)
		}
		log.Info("upload interrupted by stop; it resumes at the next start", "sent", sent)
		return nil, time.Time{}
	}
	class, after := uploader.Classify(err)
	msg := err.Error()
	if class == uploader.Permanent {
		d.fail(job, pr, log, msg)
		return nil, time.Time{}
	}
	if job.Attempts >= pr.cfg.MaxAttempts {
		d.fail(job, pr, log, fmt.Sprintf("gave up after %d %s; the last error was: %s. Check the network and the provider, then run `chute retry %d`", job.Attempts, plural(job.Attempts, "attempt"), msg, job.ID))
		return nil, time.Time{}
	}
	wait := after
	if wait <= 0 {
		wait = d.backoff(job.Attempts)
	}
	next := time.Now().Add(wait)
	job, uerr := d.st.Update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		j.State = store.RetryWait
		j.NextAttempt = next.UTC()
		j.LastError = msg
		j.Sent = sent
		return nil
	})
	if uerr != nil {
		log.Error("cannot record the failed attempt", "err", uerr)
		return nil, time.Time{}
	}
	d.stats.retried.Add(1)
	log.Warn("upload failed; retrying later", "attempt", job.Attempts, "class", class.String(), "retry_in", wait.Round(time.Millisecond).String(), "err", msg)
	return &job, next
}

// backoff is exponential with full jitter between half and all of the step.
func (d *Daemon) backoff(attempts int) time.Duration {
	step := d.minBackoff
	for i := 1; i < attempts && step < d.maxBackoff; i++ {
		step *= 2
	}
	if step > d.maxBackoff {
		step = d.maxBackoff
	}
	return step/2 + rand.N(step/2+1)
}

// abandon ends a job whose file is gone or changed: there is nothing to write a sidecar
// beside, or a newer job owns the file.
func (d *Daemon) abandon(job store.Job, log *slog.Logger, why string) {
	log.Warn("job dropped: "+why, "job", job.ID)
	_, err := d.st.Update(context.Background(), job.ID, func(j *store.Job) error {
		j.State = store.Failed
		j.LastError = why
		j.FinishedAt = time.Now().UTC()
		return nil
	})
	if err != nil {
		log.Error("cannot record the dropped job", "err", err)
	}
	d.stats.failed.Add(1)
	d.w.Forget(job.Path)
}

// fail ends a job for good: a failed sidecar says why, in words a user can act on.
func (d *Daemon) fail(job store.Job, pr *providerRun, log *slog.Logger, msg string) {
	now := time.Now().UTC()
	if !strings.Contains(msg, "chute retry") {
		msg += fmt.Sprintf(". Once that is fixed, run `chute retry %d`", job.ID)
	}
	sc := &Sidecar{
		Status: "failed", File: filepath.Base(job.Path), Size: job.Size, SHA256: job.SHA256,
		Provider: pr.cfg.Type, ProviderName: pr.cfg.Name, Error: msg, Job: job.ID,
		Attempts: job.Attempts, QueuedAt: job.QueuedAt, FinishedAt: now,
	}
	if err := WriteSidecar(job.Path, sc); err != nil {
		log.Error("cannot write the failed sidecar", "err", err)
	}
	_, err := d.st.Update(context.Background(), job.ID, func(j *store.Job) error {
		j.State = store.Failed
		j.LastError = msg
		j.FinishedAt = now
		return nil
	})
	if err != nil {
		log.Error("cannot record the failed job", "err", err)
	}
	d.stats.failed.Add(1)
	log.Error("upload failed", "err", msg)
}

// finish ends a job whose upload is done: the after-action, the sidecar, then the done state.
// Each step can be repeated after a crash.
func (d *Daemon) finish(ctx context.Context, pr *providerRun, job store.Job, log *slog.Logger) {
	target := job.Path
	folder := d.folders[job.Folder]
	after := configs.AfterKeep
	if folder != nil {
		after = folder.After
	}
	sc := &Sidecar{
		Status: "done", File: filepath.Base(job.Path), Size: job.Size, SHA256: job.SHA256,
		Provider: pr.cfg.Type, ProviderName: pr.cfg.Name, ID: job.Result.ID, URL: job.Result.URL,
		Extra: job.Result.Extra, Job: job.ID, Attempts: job.Attempts, QueuedAt: job.QueuedAt,
		FinishedAt: time.Now().UTC(),
	}
	var err error
	switch after {
	case configs.AfterMove:
		target, err = moveFile(job.Path, folder)
		if err == nil {
			err = WriteSidecar(target, sc)
		}
	case configs.AfterDelete:
		// The sidecar stays as the record of where the file went.
		err = WriteSidecar(job.Path, sc)
		if err == nil {
			if rerr := os.Remove(job.Path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = fmt.Errorf("delete the uploaded file: %w", rerr)
			}
		}
	default:
		err = WriteSidecar(job.Path, sc)
	}
	if err != nil {
		// The upload is done and recorded; only its ending failed. Say so, and keep it done.
		log.Error("uploaded, but the after-action or sidecar failed", "after", after, "err", err)
	}
	_, uerr := d.st.Update(context.WithoutCancel(ctx), job.ID, func(j *store.Job) error {
		j.State = store.Done
		j.FinishedAt = sc.FinishedAt
		j.LastError = ""
		if err != nil {
			j.LastError = err.Error()
		}
		return nil
	})
	if uerr != nil {
		log.Error("cannot record the job as done", "err", uerr)
		return
	}
	d.stats.done.Add(1)
	log.Info("done", "url", job.Result.URL, "sidecar", SidecarPath(target))
}

// moveFile moves an uploaded file under folder.MoveTo, keeping its path relative to the
// folder, and returns where it is now. Repeating it after a crash is harmless.
func moveFile(path string, folder *configs.Folder) (string, error) {
	rel, err := filepath.Rel(folder.Path, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = filepath.Base(path)
	}
	dest := filepath.Join(folder.MoveTo, rel)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Lstat(dest); err == nil {
			return dest, nil // moved before a crash
		}
		return "", fmt.Errorf("move: %s is gone", path)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("move: %w", err)
	}
	if err := os.Rename(path, dest); err != nil {
		if err := copyFile(path, dest); err != nil {
			return "", fmt.Errorf("move to %s: %w", dest, err)
		}
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("move: remove original: %w", err)
		}
	}
	// A sidecar left beside the original (from an earlier failure) would mislead.
	_ = os.Remove(SidecarPath(path))
	return dest, nil
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
	tmp := dst + ".chute-move.tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
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
	_ = os.Chtimes(tmp, st.ModTime(), st.ModTime())
	return os.Rename(tmp, dst)
}

// queue is a provider's FIFO of job ids waiting for a worker.
type queue struct {
	mu    sync.Mutex
	ids   []uint64
	ready chan struct{} // has a token while ids is not empty
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) push(id uint64) {
	q.mu.Lock()
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop waits for an id; false when ctx is done.
func (q *queue) pop(ctx context.Context) (uint64, bool) {
	for {
		if ctx.Err() != nil {
			return 0, false
		}
		q.mu.Lock()
		if len(q.ids) > 0 {
			id := q.ids[0]
			q.ids[0] = 0
			q.ids = q.ids[1:]
			more := len(q.ids) > 0
			q.mu.Unlock()
			if more {
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, false
		case <-q.ready:
		}
	}
}

// ErrNoCheck is CheckProvider's answer for a provider type that cannot test its credentials.
var ErrNoCheck = errors.New("no online check for this provider type")

// CheckProvider tests the named provider's credentials (`chute check --online`).
func (d *Daemon) CheckProvider(ctx context.Context, name string) error {
	pr, ok := d.providers[name]
	if !ok {
		return fmt.Errorf("no provider %q", name)
	}
	c, ok := pr.p.(uploader.Checker)
	if !ok {
		return ErrNoCheck
	}
	return c.Check(ctx)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
