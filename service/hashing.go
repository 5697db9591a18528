package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
)

// The digests of a large file (its sidecar's SHA-256, and what its provider needs before the
// upload, e.g. RedGIFs' MD5) are computed off the upload's path, where the machine would
// otherwise wait:
//   - ahead: once the watcher sees the file quiet (unchanged over a poll, or untouched for
//     longer than that), while it settles;
//   - beside: on a goroutine of their own while the upload sends, which the kernel then does
//     straight from the page cache (uploader's sendfile), leaving a core for the hash.
//
// A run reads the file through a handle of its own and is only used for an upload of the
// same file (os.SameFile) with the size and mtime it had when the run started and still had
// when it ended. Small files are hashed in the reads that feed their upload (attempt.go).
type hashes struct {
	ctx   context.Context // the daemon's run: every hash ends with it
	log   *slog.Logger
	slots chan struct{} // runs that may read at once (hashSlots)
	keep  time.Duration // how long a finished run nobody took is kept

	mu     sync.Mutex
	byPath map[string]*hashRun
	wg     sync.WaitGroup
}

// hashRun is one pass over a file computing some digests.
type hashRun struct {
	path   string
	size   int64
	mtime  time.Time
	need   []uploader.Digest // SHA-256 first
	cancel context.CancelFunc
	done   chan struct{} // closed once sums and err are set

	info    fs.FileInfo // the file read (set before done closes)
	sums    map[uploader.Digest]string
	err     error
	ended   time.Time
	claimed bool // an attempt uses it (guarded by hashes.mu)
}

// hashSlots is how many runs may read at once: one core fewer than Go runs code on (at
// least one). A hash is all CPU; more of them than that would keep the goroutines that feed
// the uploads' sockets waiting for a core, and the uploads would wait for the hashes.
func hashSlots() int { return max(1, runtime.GOMAXPROCS(0)-1) }

func newHashes(ctx context.Context, log *slog.Logger) *hashes {
	return &hashes{ctx: ctx, log: log, slots: make(chan struct{}, hashSlots()), keep: 10 * time.Minute, byPath: map[string]*hashRun{}}
}

// wait waits for every run to end (after the daemon's context has ended).
func (h *hashes) wait() { h.wg.Wait() }

// ahead starts a run over a quiet file when a slot is free now and no run for the same file
// is on. It never blocks its caller: with every slot taken the machine is busy hashing, and
// the file is hashed in its upload's reads instead.
func (h *hashes) ahead(path string, size int64, mtime time.Time, need []uploader.Digest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep()
	if r, ok := h.byPath[path]; ok {
		if r.size == size && r.mtime.Equal(mtime) && covers(r.need, need) {
			return
		}
		if r.claimed {
			return // an attempt's run: it decides for itself
		}
		r.cancel()
		delete(h.byPath, path)
	}
	if h.trySlot() {
		h.start(path, size, mtime, need, true, true)
	}
}

// forUpload returns a run computing need over the file f of an attempt (opened describes
// it): the one started ahead for it, or a new one. A new one waits for a slot if wait;
// otherwise there is none without a slot free now (nil: the caller hashes in the upload's
// own reads). The caller ends its use with release.
func (h *hashes) forUpload(path string, f *uploader.File, opened fs.FileInfo, need []uploader.Digest, wait bool) *hashRun {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep()
	if r, ok := h.byPath[path]; ok {
		if !r.claimed && r.size == f.Size && r.mtime.Equal(f.ModTime) && covers(r.need, need) && r.matches(opened) {
			r.claimed = true
			return r
		}
		if !r.claimed {
			r.cancel()
			delete(h.byPath, path)
		}
	}
	slot := h.trySlot()
	if !slot && !wait {
		return nil
	}
	r := h.start(path, f.Size, f.ModTime, need, false, slot)
	r.claimed = true
	return r
}

// trySlot takes a slot if one is free.
func (h *hashes) trySlot() bool {
	select {
	case h.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// release ends an attempt's use of r. used: its digests are in the job now, the run is
// forgotten. Otherwise (the upload failed) a run kept for its path goes on, for the next
// attempt of the same file to take.
func (h *hashes) release(r *hashRun, used bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.claimed = false
	mine := h.byPath[r.path] == r
	if used && mine {
		delete(h.byPath, r.path)
	}
	if used || !mine {
		r.cancel()
	}
}

// start begins a run (h.mu held); without a slot (slot false) it waits for one first.
func (h *hashes) start(path string, size int64, mtime time.Time, need []uploader.Digest, ahead, slot bool) *hashRun {
	ctx, cancel := context.WithCancel(h.ctx)
	r := &hashRun{path: path, size: size, mtime: mtime, need: need, cancel: cancel, done: make(chan struct{})}
	h.byPath[path] = r
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer cancel()
		if !slot {
			select {
			case h.slots <- struct{}{}:
			case <-ctx.Done():
				r.end(nil, ctx.Err())
				return
			}
		}
		defer func() { <-h.slots }()
		began := time.Now()
		r.end(r.read(ctx))
		switch {
		case r.err == nil:
			h.log.Debug("hashed", "file", path, "ahead", ahead, "seconds", time.Since(began).Seconds())
		case ctx.Err() == nil:
			h.log.Debug("cannot hash the file", "file", path, "ahead", ahead, "err", r.err)
		}
	}()
	return r
}

// digestsOf returns need (SHA-256 first) for an attempt's file f (opened describes it): a
// large file's from the run ahead when there is one (else a run now), a small file's read now.
func (d *Daemon) digestsOf(ctx context.Context, path string, f *uploader.File, opened fs.FileInfo, need []uploader.Digest) (map[uploader.Digest]string, error) {
	if f.Size >= configs.SmallFile {
		r := d.hashes.forUpload(path, f, opened, need, true)
		sums, err := r.result(ctx, opened)
		d.hashes.release(r, err == nil)
		if err == nil || ctx.Err() != nil {
			return sums, err
		}
		// The run read another file or failed: read this one.
	}
	return uploader.ComputeDigests(ctx, f, need)
}

// sweep forgets finished runs nobody took for h.keep (h.mu held).
func (h *hashes) sweep() {
	for p, r := range h.byPath {
		select {
		case <-r.done:
			if !r.claimed && (r.err != nil || time.Since(r.ended) > h.keep) {
				delete(h.byPath, p)
			}
		default:
		}
	}
}

// errChangedWhileHashed marks a run whose file changed (or was replaced) under it.
var errChangedWhileHashed = errors.New("the file changed while it was hashed")

// read computes the run's digests through a handle of its own.
func (r *hashRun) read(ctx context.Context) (map[uploader.Digest]string, error) {
	f, err := uploader.OpenFile(r.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r.info = info
	if f.Size != r.size || !f.ModTime.Equal(r.mtime) {
		return nil, errChangedWhileHashed
	}
	// ComputeDigests fails if the file's size or mtime change while it reads.
	return uploader.ComputeDigests(ctx, f, r.need)
}

func (r *hashRun) end(sums map[uploader.Digest]string, err error) {
	r.sums, r.err, r.ended = sums, err, time.Now()
	close(r.done)
}

// matches reports whether the run reads the file an attempt opened. Before its file is
// open a run matches on size and mtime alone; it checks them again once it opens it.
func (r *hashRun) matches(opened fs.FileInfo) bool {
	select {
	case <-r.done:
		return r.err == nil && r.info != nil && os.SameFile(r.info, opened)
	default:
		return true
	}
}

// result waits for the run's digests. Its file must be the attempt's (opened): a run that
// opened another file at the same path is no use.
func (r *hashRun) result(ctx context.Context, opened fs.FileInfo) (map[uploader.Digest]string, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	if !os.SameFile(r.info, opened) {
		return nil, fmt.Errorf("%w: another file took its name", errChangedWhileHashed)
	}
	return r.sums, nil
}

// covers reports whether have includes every digest of need.
func covers(have, need []uploader.Digest) bool {
	for _, d := range need {
		if !slices.Contains(have, d) {
			return false
		}
	}
	return true
}

// withSHA256 is need with the sidecar's SHA-256 first.
func withSHA256(need []uploader.Digest) []uploader.Digest {
	out := []uploader.Digest{uploader.SHA256}
	for _, d := range need {
		if d != uploader.SHA256 {
			out = append(out, d)
		}
	}
	return out
}

// quiet is the watcher's word that a file looks written: a large file that is not known
// uploaded is hashed ahead while it settles.
func (d *Daemon) quiet(path string, size int64, mtime time.Time) {
	if size < configs.SmallFile || d.hashes == nil {
		return
	}
	select {
	case d.quietCh <- quietFile{path, size, mtime}:
	default: // busy: the file is hashed beside its upload instead
	}
}

type quietFile struct {
	path  string
	size  int64
	mtime time.Time
}

// hashAhead starts runs ahead for the quiet files that will be uploaded, until ctx ends.
func (d *Daemon) hashAhead(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-d.quietCh:
			folder := d.folderOf(q.path)
			if folder == nil {
				continue
			}
			pr, ok := d.provider(folder.Provider)
			if !ok || sidecarSaysDone(q.path, q.size, q.mtime) {
				continue
			}
			if j, ok, err := d.st.LatestByPath(q.path); err != nil || ok && j.Size == q.size && j.ModTime.Equal(q.mtime) &&
				(j.State == store.Done || j.State == store.Failed || hasDigests(j, pr.digests)) {
				continue // nothing to hash: it is not uploaded again, or its digests are known
			}
			d.hashes.ahead(q.path, q.size, q.mtime, withSHA256(pr.digests))
		}
	}
}
