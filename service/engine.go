// Package service is chute's daemon: it turns ready files into jobs in the state database,
// runs them through their providers with per-provider workers, retries with backoff, pauses a
// provider that is down or rate-limited, writes sidecars, applies after-actions, and answers
// status and retry requests.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Logger receives the daemon's logs (nil: discarded). Configured secrets are scrubbed
	// from every line.
	Logger *slog.Logger
	// HTTP is the shared HTTP helper (nil: a new one).
	HTTP *uploader.Client
	// Rescan is the watcher's periodic rescan (0: its default, 10 min).
	Rescan time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults 2s and 10 min).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a server may ask for with Retry-After or a rate-limit
	// answer (default 1h).
	MaxRetryAfter time.Duration
	// Ready, when set, is called once the database is open and the folders are watched.
	Ready func()
	// Version is the build's version, for the chute_build_info metric ("" : "dev").
	Version string
}

// ErrStateReplaced is returned (wrapped) by Run when the state database file was deleted or
// replaced while the daemon ran: it stops, so that a second daemon on a new file cannot
// upload the same files beside it.
var ErrStateReplaced = errors.New("the state database was deleted or replaced while chute ran")

// Daemon is chute running: build it with New, run it with Run.
type Daemon struct {
	state      string // the state database's path (a reload cannot change it)
	reg        *uploader.Registry
	log        *slog.Logger
	scrub      *scrubber
	http       *uploader.Client
	minBackoff time.Duration
	maxBackoff time.Duration
	maxAfter   time.Duration
	rescan     time.Duration
	ready      func()

	st *store.Store

	// cfgMu guards what a reload swaps: the config, the providers, the folders, the watcher.
	cfgMu     sync.RWMutex
	cfg       *configs.Config
	providers map[string]*providerRun
	folders   map[string]*configs.Folder
	w         *watcher.Watcher
	// reloadMu makes reloads one at a time; runCtx and workers are set by Run, for the
	// workers a reload starts.
	reloadMu  sync.Mutex
	runCtx    context.Context
	workers   sync.WaitGroup
	rewatch   chan struct{} // a new watcher is in d.w: restart watching
	readyOnce sync.Once
	// fatal stops Run with an error (a damaged database); set by Run.
	fatal func(error)

	mu        sync.Mutex
	scheduled map[uint64]bool        // queued in memory, held by a worker, or waiting on a timer
	timers    map[uint64]*time.Timer // retry_wait jobs
	progress  sync.Map               // job id -> *inflight: the uploads running, for status and metrics
	m         *metrics
	// watchState is the watcher's last report on its folders, for health and metrics.
	watchState atomic.Pointer[watchSnapshot]
	// dbErr is the last error writing the state database, or nil once a write worked.
	dbErr atomic.Pointer[error]
	// hashes computes large files' digests ahead of and beside their uploads (hashing.go);
	// quietCh carries the watcher's quiet files to hashAhead. Both set by Run.
	hashes  *hashes
	quietCh chan quietFile
}

type providerRun struct {
	cfg     *configs.Provider
	p       uploader.Provider
	q       *queue
	gate    *gate
	digests []uploader.Digest // what the provider needs before uploading
	// large holds a token per upload of a file of configs.SmallFile or more: at most
	// Concurrency of those at once, among up to SmallConcurrency workers.
	large chan struct{}

	// Its workers: stop cancels them and waits (a reload that changes or removes it).
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the daemon and its providers from a valid config.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil || opts.Registry == nil {
		return nil, errors.New("service: Config and Registry are required")
	}
	d := &Daemon{
		state:      opts.Config.State,
		reg:        opts.Registry,
		cfg:        opts.Config,
		rewatch:    make(chan struct{}, 1),
		scrub:      newScrubber(opts.Config),
		http:       opts.HTTP,
		providers:  make(map[string]*providerRun),
		folders:    make(map[string]*configs.Folder),
		minBackoff: opts.MinBackoff,
		maxBackoff: opts.MaxBackoff,
		maxAfter:   opts.MaxRetryAfter,
		rescan:     opts.Rescan,
		ready:      opts.Ready,
		scheduled:  make(map[uint64]bool),
		timers:     make(map[uint64]*time.Timer),
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d.log = slog.New(d.scrub.handler(log.Handler()))
	if d.http == nil {
		d.http = uploader.NewClient(uploader.ClientOptions{})
	}
	if d.minBackoff <= 0 {
		d.minBackoff = 2 * time.Second
	}
	if d.maxBackoff <= 0 {
		d.maxBackoff = 10 * time.Minute
	}
	if d.maxAfter <= 0 {
		d.maxAfter = time.Hour
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	d.m = newMetrics(d, version)
	for name, pc := range opts.Config.Providers {
		pr, err := d.newProvider(name, pc)
		if err != nil {
			return nil, err
		}
		d.providers[name] = pr
	}
	for _, f := range opts.Config.Folders {
		d.folders[f.Path] = f
		d.m.folder(f.Path)
	}
	return d, nil
}

// newProvider builds the provider called name from its config.
func (d *Daemon) newProvider(name string, pc *configs.Provider) (*providerRun, error) {
	t, ok := d.reg.Lookup(pc.Type)
	if !ok {
		return nil, fmt.Errorf("providers.%s: unknown provider type %q", name, pc.Type)
	}
	endpoint := pc.Endpoint
	if endpoint == "" {
		endpoint = t.DefaultEndpoint
	}
	p, err := t.New(uploader.Env{Name: name, Endpoint: endpoint, Client: d.http, Logger: d.log.With("provider", name)}, pc.Options)
	if err != nil {
		return nil, fmt.Errorf("providers.%s: %s", name, d.scrub.text(err.Error()))
	}
	pr := &providerRun{cfg: pc, p: p, q: newQueue(), gate: newGate(d.minBackoff, d.maxBackoff, d.log.With("provider", name)), large: make(chan struct{}, pc.Concurrency)}
	d.m.provider(name)
	pr.gate.onPause = func(reason string) { d.m.pauses.WithLabelValues(name, reason).Inc() }
	if dn, ok := p.(uploader.DigestNeeder); ok {
		pr.digests = dn.NeedDigests()
	}
	return pr, nil
}

// newWatcher builds a watcher of cfg's folders.
func (d *Daemon) newWatcher(cfg *configs.Config) (*watcher.Watcher, error) {
	wfolders := make([]watcher.Folder, len(cfg.Folders))
	for i, f := range cfg.Folders {
		wfolders[i] = watcher.Folder{Path: f.Path, Recursive: f.Recursive, Include: f.Include, Exclude: f.Exclude, Settle: f.Settle, MaxWait: f.MaxWait}
	}
	return watcher.New(wfolders, watcher.Options{Rescan: d.rescan, Logger: d.log.With("part", "watcher"), Ready: d.watching, Observer: watchObserver{d}, Quiet: d.quiet})
}

// watching is the watcher's word that its watches are set and its first scan is done.
func (d *Daemon) watching() {
	d.readyOnce.Do(func() {
		if d.ready != nil {
			d.ready()
		}
	})
}

// provider returns the provider called name.
func (d *Daemon) provider(name string) (*providerRun, bool) {
	d.cfgMu.RLock()
	defer d.cfgMu.RUnlock()
	pr, ok := d.providers[name]
	return pr, ok
}

// folder returns the folder whose path is path (nil: no longer configured).
func (d *Daemon) folder(path string) *configs.Folder {
	d.cfgMu.RLock()
	defer d.cfgMu.RUnlock()
	return d.folders[path]
}

// folderOf returns the configured folder a file is in (folders never overlap).
func (d *Daemon) folderOf(file string) *configs.Folder {
	d.cfgMu.RLock()
	defer d.cfgMu.RUnlock()
	for _, f := range d.cfg.Folders {
		if file == f.Path || strings.HasPrefix(file, f.Path+string(filepath.Separator)) {
			if !f.Recursive && filepath.Dir(file) != f.Path {
				continue
			}
			return f
		}
	}
	return nil
}

// forget has the watcher report path again once it settles.
func (d *Daemon) forget(path string) {
	d.cfgMu.RLock()
	w := d.w
	d.cfgMu.RUnlock()
	if w != nil {
		w.Forget(path)
	}
}

// startWorkers starts pr's workers under ctx.
func (d *Daemon) startWorkers(ctx context.Context, pr *providerRun) {
	ctx, pr.cancel = context.WithCancel(ctx)
	// Small files are cheap for the provider and costly in round trips and commits for chute:
	// many in flight hide the latency and share the state database's fsyncs.
	for i := 0; i < max(pr.cfg.Concurrency, pr.cfg.SmallConcurrency); i++ {
		pr.wg.Add(1)
		d.workers.Add(1)
		go func() {
			defer d.workers.Done()
			defer pr.wg.Done()
			d.worker(ctx, pr)
		}()
	}
}

// stopWorkers stops pr's workers: uploads in flight are checkpointed and queued again, and
// the jobs in its queue are let go, for the provider that replaces it.
func (d *Daemon) stopWorkers(pr *providerRun) {
	pr.cancel()
	pr.wg.Wait()
	for _, id := range pr.q.drain() {
		d.release(id)
	}
}

// Run opens the state database, resumes unfinished jobs, watches the folders and uploads
// until ctx is done. Then it stops gracefully: uploads in flight are cancelled at a point
// their providers checkpointed, and go back to the queue for the next start.
func (d *Daemon) Run(ctx context.Context) error {
	if err := refuseRunningDaemon(d.state); err != nil {
		return err
	}
	st, err := store.Open(d.state, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	d.st = st
	defer d.http.CloseIdle()

	w, err := d.newWatcher(d.cfg)
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
	d.fatal = fail

	d.hashes = newHashes(ctx, d.log)
	defer func() {
		cancel()
		d.hashes.wait()
	}()
	d.quietCh = make(chan quietFile, 256)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.hashAhead(ctx)
	}()
	if err := d.resume(ctx); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	batches := make(chan []watcher.Ready, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		if err := d.watch(ctx, batches); err != nil {
			fail(err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.ingest(ctx, batches)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.repairSidecars(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.guardState(ctx); err != nil {
			d.log.Error("stopping", "err", err)
			fail(err)
		}
	}()
	d.reloadMu.Lock()
	d.runCtx = ctx
	for _, pr := range d.providers {
		d.startWorkers(ctx, pr)
	}
	d.reloadMu.Unlock()
	if d.cfg.Listen != "" {
		srv, err := d.serveHTTP(d.cfg.Listen, d.cfg.ListenToken)
		if err != nil {
			cancel()
			wg.Wait()
			d.workers.Wait()
			return err
		}
		defer srv.close()
	}
	d.cfgMu.RLock()
	d.log.Info("chute is running", "folders", len(d.cfg.Folders), "providers", len(d.providers), "state", d.state)
	d.cfgMu.RUnlock()
	<-ctx.Done()
	d.log.Info("stopping: checkpointing uploads in flight")
	d.reloadMu.Lock() // no reload starts workers from here on
	d.runCtx = nil
	d.reloadMu.Unlock()
	wg.Wait()
	d.workers.Wait()
	d.stopTimers()
	d.log.Info("stopped")
	return runErr
}

// watch runs the current watcher until ctx is done, and a new one each time a reload puts
// one in place.
func (d *Daemon) watch(ctx context.Context, batches chan<- []watcher.Ready) error {
	for {
		d.cfgMu.RLock()
		w := d.w
		d.cfgMu.RUnlock()
		wctx, stop := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- w.Run(wctx, batches) }()
		select {
		case <-ctx.Done():
			stop()
			<-errc
			return nil
		case <-d.rewatch:
			stop()
			<-errc
		case err := <-errc:
			stop()
			if err != nil {
				return fmt.Errorf("watch folders: %w", err)
			}
			return nil
		}
	}
}

// guardState stops the daemon when the database file it holds is no longer the one at its
// path: its lock would no longer keep a second daemon out.
func (d *Daemon) guardState(ctx context.Context) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.st.Check(); err != nil {
			return fmt.Errorf("%w: %w; stopping so that no file is uploaded twice. Restore the file, or start chute again to begin a new one (sidecars keep done files from being uploaded again)", ErrStateReplaced, err)
		}
	}
}

// storeFailed records that the state database could not be written; storeOK that it could.
// /healthz reports the state.
func (d *Daemon) storeFailed(err error) {
	if errors.Is(err, store.ErrDamaged) {
		// Retrying cannot mend a damaged file: stop, and say what to do (exit status 3).
		d.log.Error("stopping: the state database is damaged", "err", err)
		d.fatal(err)
		return
	}
	if d.dbErr.Swap(&err) == nil {
		d.log.Error("cannot write the state database; retrying with backoff (is its disk full?)", "state", d.state, "err", err)
	}
}

func (d *Daemon) storeOK() {
	if d.dbErr.Swap(nil) != nil {
		d.log.Info("the state database can be written again", "state", d.state)
	}
}

// update is store.Update that keeps the database's health up to date.
func (d *Daemon) update(ctx context.Context, id uint64, fn func(*store.Job) error) (store.Job, error) {
	j, err := d.st.Update(ctx, id, fn)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, errRefused) {
			d.storeFailed(err)
		}
		return j, err
	}
	d.storeOK()
	return j, nil
}

// errRefused marks an update function's own refusal (not a database failure).
var errRefused = errors.New("refused")

// resume schedules the jobs a previous run left unfinished.
func (d *Daemon) resume(ctx context.Context) error {
	jobs, err := d.st.List(store.Filter{States: []store.State{store.Uploading, store.Queued, store.RetryWait}})
	if err != nil {
		return err
	}
	n := 0
	for _, j := range jobs {
		if _, ok := d.provider(j.Provider); !ok {
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

// ingest records ready files as jobs, a batch per transaction, and queues the new ones. A
// batch that cannot be recorded (the database's disk is full) is retried with backoff until
// it is: nothing the watcher reported is dropped.
func (d *Daemon) ingest(ctx context.Context, batches <-chan []watcher.Ready) {
	skipped := make(map[string]int) // per folder, files whose sidecars say done
	for batch := range batches {
		news := make([]store.NewJob, 0, len(batch))
		for _, r := range batch {
			folder := d.folderOf(r.Path)
			if folder == nil {
				continue // its folder was removed by a reload
			}
			if sidecarSaysDone(r.Path, r.Size, r.ModTime) {
				d.log.Debug("sidecar says done; not uploading again", "file", r.Path)
				skipped[folder.Path]++
				continue
			}
			news = append(news, store.NewJob{Path: r.Path, Size: r.Size, ModTime: r.ModTime, Folder: folder.Path, Provider: folder.Provider})
		}
		for dir, n := range skipped {
			d.log.Info("files not uploaded again: their sidecars say done", "folder", dir, "count", n)
			delete(skipped, dir)
		}
		// Up to ingestChunk files per transaction: a drop of 10,000 files is recorded in a
		// few commits, its first files upload while the rest are recorded, and no commit
		// holds them all in memory at once.
		for len(news) > 0 {
			chunk := news[:min(len(news), ingestChunk)]
			news = news[len(chunk):]
			added, err := d.addBatch(ctx, chunk)
			if err != nil {
				return // stopping: the watcher reports these files again at the next start
			}
			for _, a := range added {
				if a.Added {
					d.log.Info("queued", "job", a.Job.ID, "file", a.Job.Path, "size", a.Job.Size, "provider", a.Job.Provider)
					d.m.discovered.WithLabelValues(a.Job.Provider).Inc()
					d.enqueue(a.Job)
				}
			}
		}
	}
}

// ingestChunk is the most new files one transaction records.
const ingestChunk = 1000

// addBatch records news, retrying with backoff while the database cannot be written. It
// fails only when ctx ends.
func (d *Daemon) addBatch(ctx context.Context, news []store.NewJob) ([]store.Added, error) {
	wait := d.minBackoff
	for {
		added, err := d.st.AddBatch(ctx, news, time.Now())
		if err == nil {
			d.storeOK()
			return added, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d.storeFailed(err)
		d.log.Warn("cannot record new files yet; retrying", "count", len(news), "retry_in", wait.String(), "err", err)
		if err := uploader.Sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// enqueue puts a job in its provider's queue unless it is scheduled already.
func (d *Daemon) enqueue(j store.Job) {
	pr, ok := d.provider(j.Provider)
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
	pr.q.push(j.ID, j.Size)
}

// scheduleAt queues a job once at has come.
func (d *Daemon) scheduleAt(j store.Job, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.scheduled[j.ID] {
		return
	}
	d.scheduled[j.ID] = true
	wait := max(time.Until(at), 0)
	id, name, size := j.ID, j.Provider, j.Size
	d.timers[id] = time.AfterFunc(wait, func() {
		d.mu.Lock()
		delete(d.timers, id)
		d.mu.Unlock()
		// The provider as it is now: a reload may have replaced it meanwhile.
		if pr, ok := d.provider(name); ok {
			pr.q.push(id, size)
		} else {
			d.release(id)
		}
	})
}

// runNow moves a job waiting on a timer to the front of its queue.
func (d *Daemon) runNow(j store.Job) {
	pr, ok := d.provider(j.Provider)
	if !ok {
		return
	}
	d.mu.Lock()
	t, waiting := d.timers[j.ID]
	if waiting && t.Stop() {
		delete(d.timers, j.ID)
		d.mu.Unlock()
		pr.q.pushFront(j.ID, j.Size)
		return
	}
	if !d.scheduled[j.ID] {
		d.scheduled[j.ID] = true
		d.mu.Unlock()
		pr.q.pushFront(j.ID, j.Size)
		return
	}
	d.mu.Unlock()
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

// worker runs the jobs of one provider, one at a time, while the provider is not paused.
func (d *Daemon) worker(ctx context.Context, pr *providerRun) {
	for {
		if err := pr.gate.wait(ctx); err != nil {
			return
		}
		q, ok := pr.q.pop(ctx)
		if !ok {
			return
		}
		id := q.id
		large := q.size >= configs.SmallFile
		if large {
			// Wait for a large-file slot; small files behind this one go on meanwhile.
			select {
			case pr.large <- struct{}{}:
			case <-ctx.Done():
				d.release(id) // still queued in the database: the next start resumes it
				return
			}
		}
		next, ran := d.attempt(ctx, pr, id)
		if large {
			<-pr.large
		}
		if !ran {
			// Paused between the wait and the pop: the job keeps its place.
			pr.q.pushFront(id, q.size)
			continue
		}
		if next.front && ctx.Err() == nil {
			pr.q.pushFront(id, q.size) // still scheduled: it keeps its place
			continue
		}
		d.release(id)
		if !next.at.IsZero() && ctx.Err() == nil {
			d.scheduleAt(store.Job{ID: id, Provider: pr.cfg.Name, Size: q.size}, next.at)
		}
	}
}

// attempt runs job id through the provider's gate; ran is false when the provider was paused
// meanwhile and nothing was done.
func (d *Daemon) attempt(ctx context.Context, pr *providerRun, id uint64) (n next, ran bool) {
	if !pr.gate.enter() {
		return next{}, false
	}
	defer pr.gate.leave()
	return d.process(ctx, pr, id), true
}

// ErrNoCheck is CheckProvider's answer for a provider type that cannot test its credentials.
var ErrNoCheck = errors.New("no online check for this provider type")

// CheckProvider tests the named provider's credentials (`chute check --online`).
func (d *Daemon) CheckProvider(ctx context.Context, name string) error {
	pr, ok := d.provider(name)
	if !ok {
		return fmt.Errorf("no provider %q", name)
	}
	c, ok := pr.p.(uploader.Checker)
	if !ok {
		return ErrNoCheck
	}
	if err := c.Check(ctx); err != nil {
		return errors.New(d.scrub.text(err.Error()))
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
