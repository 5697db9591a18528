package watcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/chute-dev/chute/internal/fsx"
)

// Run watches the folders until ctx is done, sending to out batches of files
// that became ready: a batch is everything that became ready in one poll tick
// and is never empty. Batches not yet taken by the receiver are queued in
// order (Run keeps reading fsnotify events meanwhile).
//
// Run returns nil when ctx is done (queued batches are dropped), and an error
// if watching cannot start: a folder is missing or not a directory, or its
// root cannot be watched. Problems after the start are logged: an unreadable
// subdirectory is retried at the next rescan; a folder removed while watched
// is looked for every Options.Lookup and watched (and scanned) again as soon
// as it is back. When Run returns, the fsnotify watcher is closed and every
// goroutine Run started has stopped. Only one Run may be in progress at a
// time; a later Run starts afresh (it remembers nothing of an earlier one).
func (w *Watcher) Run(ctx context.Context, out chan<- []Ready) error {
	if out == nil {
		return fmt.Errorf("watcher: nil out channel")
	}
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return fmt.Errorf("watcher: Run is already running")
	}
	w.running = true
	w.forgets = nil
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.forgets = nil
		w.mu.Unlock()
	}()
	select {
	case <-w.rescanCh: // the initial scan covers a request made before Run
	default:
	}

	fsw, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		return fmt.Errorf("watcher: start fsnotify: %w", err)
	}
	defer func() {
		// Close waits for fsnotify's reader goroutine to stop.
		if err := fsw.Close(); err != nil {
			w.log.Warn("closing fsnotify watcher", "err", err)
		}
	}()

	r := &run{
		w:        w,
		fsw:      fsw,
		log:      w.log,
		dirs:     make(map[string]watchedDir),
		pending:  make(map[string]*pendingFile),
		reported: newReportedSet(),
		missing:  make([]error, len(w.folders)),
		unclean:  make([]bool, len(w.folders)),
		roots:    make([]os.FileInfo, len(w.folders)),
	}
	for i := range w.folders {
		f := &w.folders[i]
		st, err := os.Stat(f.Path)
		if err != nil {
			return fmt.Errorf("watcher: folder %s: %w", f.Path, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("watcher: folder %s: not a directory", f.Path)
		}
		r.roots[i] = st
		if err := r.watchDir(f.Path, i); err != nil {
			return err
		}
	}
	if err := r.fullScan(ctx, "start"); err != nil {
		return nil // ctx is done
	}
	r.log.Info("watching", "folders", len(w.folders), "dirs", len(r.dirs), "pending", len(r.pending))
	if w.ready != nil {
		w.ready()
	}
	return r.loop(ctx, out)
}

// run is the state of one Run, owned by Run's goroutine.
type run struct {
	w   *Watcher
	fsw *fsnotify.Watcher
	log *slog.Logger

	dirs     map[string]watchedDir   // watched directories
	pending  map[string]*pendingFile // files waiting to settle
	reported *reportedSet            // files reported
	gen      uint64                  // full-rescan generation, for pruning

	// Per folder: why it is not watched (nil while it is), and whether the
	// last scan could not watch or read some of its directories.
	missing  []error
	unclean  []bool
	roots    []os.FileInfo // each folder's root as watched, to notice it replaced
	observed time.Time     // the last Observe
}

type watchedDir struct {
	folder int
	gen    uint64 // last full rescan that saw it
}

type pendingFile struct {
	folder int
	known  bool // size and mtime hold a stat result
	size   int64
	mtime  time.Time

	since    time.Time // the settle clock: the last change seen
	first    time.Time // when it became pending, for MaxWait
	nextStat time.Time // per-folder poll pacing
	early    bool      // nextStat was brought forward to the end of the settle

	quiet      bool // Options.Quiet told for this size and mtime
	warnedWait bool // MaxWait warning logged
	warnedErr  bool // stat/open failure warning logged
}

// loop is Run's event loop.
func (r *run) loop(ctx context.Context, out chan<- []Ready) error {
	tick := time.NewTicker(r.w.tick)
	defer tick.Stop()
	// due fires when a pending file's settle ends between two ticks, so that it is reported
	// then, not up to a poll period later.
	due := time.NewTimer(time.Hour)
	due.Stop()
	defer due.Stop()
	armed := time.Time{}
	arm := func(at time.Time) {
		if at.IsZero() || (!armed.IsZero() && !at.Before(armed)) {
			return
		}
		armed = at
		due.Reset(time.Until(at))
	}
	// pollInto polls the pending files, queues those ready and arms due for the next
	// settle that ends between two ticks.
	pollInto := func(queue [][]Ready) [][]Ready {
		b, next := r.poll(time.Now())
		if len(b) > 0 {
			r.log.Debug("files ready", "count", len(b), "queued_batches", len(queue))
			queue = append(queue, b)
		}
		arm(next)
		return queue
	}
	var rescanC <-chan time.Time
	if r.w.rescanEvery > 0 {
		t := time.NewTicker(r.w.rescanEvery)
		defer t.Stop()
		rescanC = t.C
	}
	lookup := time.NewTicker(r.w.lookup)
	defer lookup.Stop()
	r.observe(time.Now())
	var queue [][]Ready
	for {
		var send chan<- []Ready
		var head []Ready
		if len(queue) > 0 {
			send, head = out, queue[0]
		}
		var err error
		select {
		case <-ctx.Done():
			return nil
		case send <- head:
			queue[0] = nil
			queue = queue[1:]
		case ev, ok := <-r.fsw.Events:
			if !ok {
				return fmt.Errorf("watcher: fsnotify event channel closed")
			}
			err = r.handleEvent(ctx, ev)
		case e, ok := <-r.fsw.Errors:
			if !ok {
				return fmt.Errorf("watcher: fsnotify error channel closed")
			}
			if errors.Is(e, fsnotify.ErrEventOverflow) {
				r.log.Warn("fsnotify queue overflow; rescanning")
				if r.w.obs != nil {
					r.w.obs.Overflowed()
				}
				err = r.fullScan(ctx, "overflow")
			} else {
				r.log.Warn("fsnotify error", "err", e)
			}
		case now := <-tick.C:
			queue = pollInto(queue)
			if now.Sub(r.observed) >= time.Second-r.w.tick/2 {
				r.observe(now)
			}
		case <-due.C:
			armed = time.Time{}
			queue = pollInto(queue)
		case <-lookup.C:
			err = r.lookFolders(ctx)
		case <-rescanC:
			err = r.fullScan(ctx, "periodic")
		case <-r.w.rescanCh:
			err = r.fullScan(ctx, "requested")
		case <-r.w.forgetCh:
			r.forget(r.w.takeForgets())
		}
		if err != nil {
			return nil // only ctx cancellation interrupts a scan
		}
	}
}

// watchDir adds an fsnotify watch on dir for folder fi unless it has one,
// and stamps it as seen by the current rescan.
func (r *run) watchDir(dir string, fi int) error {
	if d, ok := r.dirs[dir]; ok {
		d.gen = r.gen
		r.dirs[dir] = d
		return nil
	}
	if err := r.fsw.Add(dir); err != nil {
		return fmt.Errorf("watcher: watch %s: %w", dir, err)
	}
	r.dirs[dir] = watchedDir{folder: fi, gen: r.gen}
	return nil
}

// dropDir forgets a removed or renamed directory: its watches and those of
// its subdirectories, and every pending or reported file below it.
func (r *run) dropDir(dir string) {
	prefix := dir + string(filepath.Separator)
	below := func(p string) bool { return p == dir || strings.HasPrefix(p, prefix) }
	for d, wd := range r.dirs {
		if !below(d) {
			continue
		}
		// fsnotify already dropped the watch of a deleted or moved directory.
		if err := r.fsw.Remove(d); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
			r.log.Debug("removing watch", "dir", d, "err", err)
		}
		delete(r.dirs, d)
		if d == r.w.folders[wd.folder].Path {
			r.lost(wd.folder, errors.New("the folder was removed"))
		}
	}
	for p := range r.pending {
		if below(p) {
			delete(r.pending, p)
		}
	}
	r.reported.removeDirs(below)
	r.log.Debug("directory gone", "dir", dir)
}

// handleEvent applies one fsnotify event: removals drop state, everything
// else marks a file pending (or restarts its settle clock), and a new
// directory in a recursive folder is watched and scanned at once. It returns
// an error only when ctx is done during a scan.
func (r *run) handleEvent(ctx context.Context, ev fsnotify.Event) error {
	name := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if _, ok := r.dirs[name]; ok {
			r.dropDir(name)
		} else {
			delete(r.pending, name)
			r.reported.remove(name)
		}
		if !ev.Has(fsnotify.Create) {
			return nil
		}
	}
	parent, ok := r.dirs[filepath.Dir(name)]
	if !ok {
		return nil // a watched directory's own event, or a stale one
	}
	fi := parent.folder
	now := time.Now()
	if ev.Has(fsnotify.Create) {
		st, err := os.Lstat(name)
		if err != nil {
			return nil // already gone; its Remove event follows
		}
		switch {
		case st.IsDir():
			if !r.w.folders[fi].Recursive {
				return nil
			}
			// Files may have landed in it before the watch existed: scan now.
			_, err := r.scanTree(ctx, name, fi)
			return err
		case st.Mode().IsRegular(), st.Mode()&fs.ModeSymlink != 0:
			r.markPending(name, fi, now)
		}
		return nil
	}
	if _, ok := r.dirs[name]; ok {
		return nil // attribute change of a watched directory
	}
	r.markPending(name, fi, now)
	return nil
}

// markPending makes a file of folder fi pending, or restarts the settle
// clock of a pending one. Its size and mtime are taken at the next poll.
func (r *run) markPending(p string, fi int, now time.Time) {
	if !r.w.folders[fi].wanted(p) {
		return
	}
	if pf, ok := r.pending[p]; ok {
		pf.since = now
		return
	}
	r.pending[p] = &pendingFile{folder: fi, since: now, first: now}
}

// forget applies Forget calls.
func (r *run) forget(paths []string) {
	now := time.Now()
	for _, p := range paths {
		r.reported.remove(p)
		delete(r.pending, p)
		if d, ok := r.dirs[filepath.Dir(p)]; ok {
			r.markPending(p, d.folder, now)
		}
		r.log.Debug("forgotten", "path", p)
	}
}

// fullScan rescans every folder: re-adds missing watches (a folder removed
// and created again comes back), marks new or changed files pending, and
// prunes directories and reported files no longer there. It returns an error
// only when ctx is done.
func (r *run) fullScan(ctx context.Context, why string) error {
	start := time.Now()
	r.gen++
	clean := make([]bool, len(r.w.folders))
	for i := range r.w.folders {
		f := &r.w.folders[i]
		st, err := os.Stat(f.Path)
		if err == nil && !st.IsDir() {
			err = fmt.Errorf("not a directory")
		}
		if err != nil {
			if r.missing[i] == nil {
				r.log.Warn("folder unavailable; looking for it every "+r.w.lookup.String(), "folder", f.Path, "err", err)
			}
			r.missing[i] = fmt.Errorf("folder unavailable: %w", err)
			continue
		}
		r.missing[i] = nil
		ok, err := r.scanTree(ctx, f.Path, i)
		if err != nil {
			return err
		}
		clean[i] = ok
		r.unclean[i] = !ok
		if r.w.obs != nil {
			r.w.obs.Rescanned(f.Path, why)
		}
	}
	for d, wd := range r.dirs {
		if clean[wd.folder] && wd.gen != r.gen {
			if err := r.fsw.Remove(d); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				r.log.Debug("removing watch", "dir", d, "err", err)
			}
			delete(r.dirs, d)
		}
	}
	r.reported.prune(func(rf reportedFile) bool { return clean[rf.folder] && rf.gen != r.gen })
	r.log.Debug("rescan done", "why", why, "took", time.Since(start),
		"dirs", len(r.dirs), "pending", len(r.pending), "reported", r.reported.len())
	return nil
}

// scanTree watches dir and marks its files pending; in a recursive folder it
// descends into subdirectories (never through symlinks). ok is false when
// some directory could not be watched or read. err is ctx's error when ctx is
// done.
func (r *run) scanTree(ctx context.Context, dir string, fi int) (ok bool, err error) {
	f := &r.w.folders[fi]
	ok = true
	stack := []string{dir}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		// Watch before reading, so no file lands unseen in between.
		if err := r.watchDir(d, fi); err != nil {
			r.log.Warn("cannot watch directory", "dir", d, "err", err)
			ok = false
		}
		err := r.readDir(ctx, d, func(e fs.DirEntry) {
			p := filepath.Join(d, e.Name())
			switch t := e.Type(); {
			case t.IsDir():
				if f.Recursive {
					stack = append(stack, p)
				}
			case t.IsRegular(), t&fs.ModeSymlink != 0:
				r.seeFile(p, fi, e)
			}
		})
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return false, ctx.Err()
		case isNotExist(err) && d != f.Path:
			// Removed while we looked; its Remove event cleans up.
		default:
			r.log.Warn("cannot read directory", "dir", d, "err", err)
			ok = false
		}
	}
	return ok, nil
}

// readDir calls fn for every entry of dir, checking ctx between chunks.
func (r *run) readDir(ctx context.Context, dir string, fn func(fs.DirEntry)) error {
	fd, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer fd.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := fd.ReadDir(readDirChunk)
		for _, e := range entries {
			fn(e)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
	}
}

// seeFile handles a file found by a scan: a file reported before and
// unchanged since is left alone; a new or changed file becomes pending
// (its settle clock starts now); a pending file keeps its clock.
func (r *run) seeFile(p string, fi int, e fs.DirEntry) {
	if !r.w.folders[fi].wanted(p) {
		return
	}
	info, err := e.Info()
	if err == nil && info.Mode()&fs.ModeSymlink != 0 {
		info, err = os.Stat(p) // a symlink counts if it points to a regular file
	}
	if err != nil || !info.Mode().IsRegular() {
		return
	}
	size, mtime := info.Size(), info.ModTime()
	if rf, ok := r.reported.get(p); ok && rf.same(size, mtime) {
		rf.gen = r.gen
		r.reported.put(p, rf)
		return
	}
	if _, ok := r.pending[p]; ok {
		return
	}
	now := time.Now()
	pf := &pendingFile{folder: fi, known: true, size: size, mtime: mtime, since: now, first: now}
	r.pending[p] = pf
	r.tellQuiet(p, pf, &r.w.folders[fi], now, false)
}

// tellQuiet tells Options.Quiet, once per size and mtime, of a pending file that looks
// written: unchanged since the last poll, or with an mtime older than a poll period.
func (r *run) tellQuiet(p string, pf *pendingFile, f *folder, now time.Time, unchanged bool) {
	if r.w.quiet == nil || pf.quiet || !pf.known {
		return
	}
	if unchanged || now.Sub(pf.mtime) >= f.poll {
		pf.quiet = true
		r.w.quiet(p, pf.size, pf.mtime)
	}
}

// poll re-stats the pending files due for it and returns those that became
// ready, sorted by folder and path, and the earliest end of a settle that
// falls before the file's next poll (zero if none).
func (r *run) poll(now time.Time) (batch []Ready, settles time.Time) {
	for p, pf := range r.pending {
		if now.Before(pf.nextStat) {
			if pf.early && (settles.IsZero() || pf.nextStat.Before(settles)) {
				settles = pf.nextStat
			}
			continue
		}
		f := &r.w.folders[pf.folder]
		pf.nextStat = now.Add(f.poll)
		if rd, ok := r.check(p, pf, f, now); ok {
			batch = append(batch, rd)
			continue
		}
		// Unchanged so far: look again when its settle ends if that comes first.
		end := pf.since.Add(f.Settle)
		pf.early = pf.known && end.Before(pf.nextStat)
		if pf.early {
			pf.nextStat = end
			if settles.IsZero() || end.Before(settles) {
				settles = end
			}
		}
	}
	slices.SortFunc(batch, func(a, b Ready) int {
		return cmp.Or(cmp.Compare(a.Folder, b.Folder), strings.Compare(a.Path, b.Path))
	})
	return batch, settles
}

// check re-stats one pending file and decides whether it is ready. It
// removes the file from the pending set when it is ready, gone, no longer a
// regular file, or reported before with the same size and mtime.
func (r *run) check(p string, pf *pendingFile, f *folder, now time.Time) (Ready, bool) {
	st, err := os.Stat(p)
	if err != nil {
		if isNotExist(err) {
			r.log.Debug("pending file vanished", "path", p)
			delete(r.pending, p)
			return Ready{}, false
		}
		if !pf.warnedErr {
			pf.warnedErr = true
			r.log.Warn("cannot stat pending file; will retry", "path", p, "err", err)
		}
		return Ready{}, false
	}
	if !st.Mode().IsRegular() {
		delete(r.pending, p)
		return Ready{}, false
	}
	size, mtime := st.Size(), st.ModTime()
	unchanged := false
	switch {
	case !pf.known:
		pf.known, pf.size, pf.mtime = true, size, mtime
	case size != pf.size || !mtime.Equal(pf.mtime):
		pf.size, pf.mtime, pf.since, pf.quiet = size, mtime, now, false
	default:
		unchanged = true
	}
	r.tellQuiet(p, pf, f, now, unchanged)
	if now.Sub(pf.since) < f.Settle {
		if f.MaxWait > 0 && !pf.warnedWait && now.Sub(pf.first) >= f.MaxWait {
			pf.warnedWait = true
			r.log.Warn("file still changing after max wait; still watching it",
				"path", p, "max_wait", f.MaxWait, "size", size)
		}
		return Ready{}, false
	}
	if rf, ok := r.reported.get(p); ok && rf.same(size, mtime) {
		delete(r.pending, p) // touched but unchanged: already reported
		return Ready{}, false
	}
	fd, err := r.w.open(p)
	if err != nil {
		if isNotExist(err) || errors.Is(err, fsx.ErrNotRegular) {
			r.log.Debug("pending file vanished", "path", p)
			delete(r.pending, p)
			return Ready{}, false
		}
		if !pf.warnedErr {
			pf.warnedErr = true
			msg := "cannot open settled file; will retry"
			if errors.Is(err, fs.ErrPermission) {
				msg = "settled file is not readable (permission denied); will retry"
			}
			r.log.Warn(msg, "path", p, "err", err)
		}
		return Ready{}, false
	}
	fd.Close()
	delete(r.pending, p)
	r.reported.put(p, reportedFile{folder: pf.folder, size: size, mtime: mtime, gen: r.gen})
	return Ready{Folder: pf.folder, Path: p, Size: size, ModTime: mtime}, true
}

// lost records that folder fi's root is gone: it is looked for every
// Options.Lookup from now on.
func (r *run) lost(fi int, why error) {
	if r.missing[fi] == nil {
		r.log.Warn("watched folder is gone; looking for it every "+r.w.lookup.String(), "folder", r.w.folders[fi].Path, "err", why)
	}
	r.missing[fi] = why
}

// lookFolders checks that every folder is still there, and watches and scans
// again a missing one that is back. A folder that went without an event (its
// parent was moved, say) is noticed here too. It returns an error only when
// ctx is done.
func (r *run) lookFolders(ctx context.Context) error {
	for i := range r.w.folders {
		f := &r.w.folders[i]
		st, err := os.Stat(f.Path)
		if err == nil && !st.IsDir() {
			err = errors.New("not a directory")
		}
		if r.missing[i] == nil {
			if err != nil {
				r.dropDir(f.Path)
				r.lost(i, err)
				continue
			}
			if r.roots[i] == nil || os.SameFile(r.roots[i], st) {
				continue
			}
			// No event says so when a file system is mounted over the folder: the watch
			// would stay on the directory underneath, blind to what lands in the new one.
			r.log.Warn("watched folder is another directory now (replaced, or a file system mounted over it); watching the new one", "folder", f.Path)
			r.missing[i] = errors.New("the folder was replaced") // before dropDir: not "gone"
			r.dropDir(f.Path)
		}
		if err != nil {
			continue
		}
		r.roots[i] = st
		ok, err := r.scanTree(ctx, f.Path, i)
		if err != nil {
			return err
		}
		if _, watched := r.dirs[f.Path]; !watched {
			continue // its root could not be watched: try again later
		}
		r.missing[i], r.unclean[i] = nil, !ok
		r.log.Info("watched folder is back; watching it again", "folder", f.Path, "pending", len(r.pending))
		if r.w.obs != nil {
			r.w.obs.Rescanned(f.Path, "returned")
		}
	}
	r.observe(time.Now())
	return nil
}

// observe tells the Observer the state of every folder.
func (r *run) observe(now time.Time) {
	r.observed = now
	if r.w.obs == nil {
		return
	}
	states := make([]FolderState, len(r.w.folders))
	for i := range r.w.folders {
		states[i] = FolderState{Path: r.w.folders[i].Path, Err: r.missing[i]}
		if states[i].Err == nil && r.unclean[i] {
			states[i].Err = errors.New("some of its directories could not be watched or read (see the log); retried at the next rescan")
		}
	}
	for _, d := range r.dirs {
		states[d.folder].Dirs++
	}
	for _, p := range r.pending {
		states[p.folder].Pending++
	}
	r.w.obs.Observe(now, states)
}
