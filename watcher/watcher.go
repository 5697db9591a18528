// Package watcher turns folders into a stream of ready files: regular files
// that have finished being written. It knows nothing of uploads or databases.
//
// How it works. The goroutine that calls [Watcher.Run] owns all state; Run
// starts no goroutine of its own besides the one inside fsnotify, which it
// closes (and waits for) before returning. fsnotify watches every directory
// of a folder (only the root when the folder is not recursive). fsnotify
// events and directory scans only mark a file pending or restart its settle
// clock; readiness is decided by a poll: every Poll each pending file is
// re-stat'ed, any change of size or mtime restarts its clock, and a file
// unchanged for Settle that can be opened for reading is ready. Per-tick work
// is O(pending files); there are no per-file goroutines or timers.
//
// A full rescan runs at start, every [Options.Rescan], when fsnotify reports
// a queue overflow and when [Watcher.Rescan] is called. The watcher keeps the
// set of reported files (path, size, mtime), so a rescan never reports a file
// twice, while a reported file whose size or mtime changes later becomes
// pending again and is reported again once it settles.
package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chute-dev/chute/internal/fsx"
)

// Defaults and limits.
const (
	// DefaultRescan is the period of full rescans when Options.Rescan is 0.
	DefaultRescan = 10 * time.Minute
	// MinPoll and MaxPoll clamp the default poll period (Settle/4) of a folder.
	MinPoll = 50 * time.Millisecond
	MaxPoll = time.Second

	// eventBuffer is the size of fsnotify's event channel; it absorbs bursts
	// while the loop stats or scans (the kernel queue is the real buffer).
	eventBuffer = 4096
	// readDirChunk is how many directory entries are read between ctx checks.
	readDirChunk = 512
)

// Names of chute's own files, which the watcher never reports.
const (
	// SidecarSuffix ends the name of every sidecar: "<file>.chute.json".
	SidecarSuffix = ".chute.json"

	// SidecarTempPattern is the os.CreateTemp pattern of chute's temporary
	// files (a sidecar being written, a file being copied by a move):
	//
	//	os.CreateTemp(dir, watcher.SidecarTempPattern)
	//
	// creates ".chute.json.<random>.tmp", short whatever the name of the
	// file it is for. [IsChuteFile] recognises it (and the older
	// ".<file>.chute.json.<random>.tmp").
	SidecarTempPattern = SidecarSuffix + ".*.tmp"
)

// IsChuteFile reports whether name (a base name or a path; only the base name
// is looked at) is one of chute's own files: a sidecar ("*.chute.json") or a
// sidecar's temporary file (".<file>.chute.json.<random>.tmp", see
// [SidecarTempPattern]). Such files are never reported.
func IsChuteFile(name string) bool {
	base := filepath.Base(name)
	if strings.HasSuffix(base, SidecarSuffix) {
		return true
	}
	return strings.HasPrefix(base, ".") &&
		strings.HasSuffix(base, ".tmp") &&
		strings.Contains(base, SidecarSuffix+".")
}

// Folder is one watched folder.
type Folder struct {
	// Path is the folder's absolute path. It may itself be a symlink to a
	// directory; symlinks to directories inside it are never followed.
	Path string
	// Recursive watches every directory below Path, including ones created
	// later; otherwise only the files directly in Path are reported.
	Recursive bool
	// Include lists globs (path.Match syntax) a file must match; empty means
	// every file. A glob without '/' is matched against the file's base name;
	// a glob with '/' against the slash-separated path relative to Path (a
	// leading "/" or "./" is ignored). '*' never crosses a '/'.
	Include []string
	// Exclude lists globs, matched like Include, that a file must not match.
	// Exclude wins over Include.
	Exclude []string
	// Settle is how long a file's size and mtime must stay unchanged (and the
	// file must then open for reading) before it is ready. It is measured
	// from when the watcher first saw the file, however old it is on disk.
	Settle time.Duration
	// MaxWait, if positive, is how long a file may keep changing before the
	// watcher logs a warning (once per file); watching goes on.
	MaxWait time.Duration
}

// Options tune a Watcher. The zero value is usable.
type Options struct {
	// Rescan is the period of full rescans. 0 means DefaultRescan; a
	// negative value disables periodic rescans (overflow rescans and Rescan
	// calls still happen).
	Rescan time.Duration
	// Logger receives the watcher's logs. nil discards them.
	Logger *slog.Logger
	// Poll is how often pending files are re-stat'ed, for every folder. 0
	// means per folder Settle/4 clamped to [MinPoll, MaxPoll].
	Poll time.Duration
	// Ready, when set, is called by Run once every folder is watched and the
	// initial scan is done (from Run's goroutine; it must not block).
	Ready func()
	// Observer, when set, is told what the watcher does, for metrics and
	// health (from Run's goroutine; its methods must not block).
	Observer Observer
	// Quiet, when set, is told once per size and mtime that a pending file
	// looks written: unchanged between two polls, or untouched for longer
	// than its folder's poll period when first seen. It may still change
	// before it settles (then Quiet is told again); a caller can start work
	// that a Ready report of the same size and mtime would need, such as a
	// hash (from Run's goroutine; it must not block).
	Quiet func(path string, size int64, mtime time.Time)
	// Lookup is how often a watched folder that disappeared is looked for
	// (and the folders are checked to still be there). 0 means
	// DefaultLookup.
	Lookup time.Duration
}

// DefaultLookup is Options.Lookup's default.
const DefaultLookup = 2 * time.Second

// Observer is told what a running watcher does. A nil Observer in Options
// means nobody is told.
type Observer interface {
	// Rescanned says a full scan of folder ended; why is "start",
	// "periodic", "overflow", "requested" or "returned" (the folder came
	// back after it disappeared).
	Rescanned(folder, why string)
	// Overflowed says fsnotify's queue overflowed (events were lost; every
	// folder is rescanned).
	Overflowed()
	// Observe reports the state of every folder, from the event loop, at
	// most about once a second and at least every second or so while the
	// loop turns: a report that stops coming means the loop is stuck.
	Observe(at time.Time, folders []FolderState)
}

// FolderState is what Observe says of one folder.
type FolderState struct {
	// Path is the folder's path as given to New (cleaned).
	Path string
	// Dirs is how many of its directories are watched.
	Dirs int
	// Pending is how many of its files are waiting to settle.
	Pending int
	// Err is nil while the folder is watched whole; otherwise why not (it
	// is missing, or some of its directories could not be watched or read).
	Err error
}

// Ready is a file that has settled.
type Ready struct {
	// Folder is the index of the file's folder in the slice given to New.
	Folder int
	// Path is the file's absolute path.
	Path string
	// Size and ModTime are the values that stayed unchanged for Settle.
	Size    int64
	ModTime time.Time
}

// Watcher watches folders and reports ready files. Create one with New and
// call Run; Forget and Rescan may be called from any goroutine.
type Watcher struct {
	folders     []folder
	rescanEvery time.Duration // <= 0: no periodic rescan
	ready       func()
	obs         Observer
	quiet       func(path string, size int64, mtime time.Time)
	lookup      time.Duration // how often missing folders are looked for
	tick        time.Duration // the loop's ticker: the smallest folder poll
	log         *slog.Logger

	// open opens a settled file to check it is readable (never blocking on
	// a FIFO); replaced in tests to simulate a permission error as root.
	open func(name string) (*os.File, error)

	rescanCh chan struct{} // buffered 1: a rescan was asked for
	forgetCh chan struct{} // buffered 1: forgets has entries

	mu      sync.Mutex
	running bool
	forgets []string
}

// folder is a validated Folder with its compiled globs.
type folder struct {
	Folder
	poll             time.Duration
	include, exclude []pattern
}

// pattern is a validated glob.
type pattern struct {
	glob   string
	byPath bool // contains '/': matched against the relative path
}

// New validates folders and options and returns a Watcher. Every folder's
// path must be absolute, its globs well-formed, Settle and MaxWait not
// negative, and no folder may be inside (or equal to) a recursive folder.
// Whether the folders exist is checked by Run.
func New(folders []Folder, opts Options) (*Watcher, error) {
	if opts.Poll < 0 {
		return nil, fmt.Errorf("watcher: negative poll period %v", opts.Poll)
	}
	w := &Watcher{
		folders:  make([]folder, 0, len(folders)),
		log:      opts.Logger,
		open:     openRegular,
		rescanCh: make(chan struct{}, 1),
		forgetCh: make(chan struct{}, 1),
		ready:    opts.Ready,
		obs:      opts.Observer,
		quiet:    opts.Quiet,
		lookup:   opts.Lookup,
	}
	if opts.Lookup < 0 {
		return nil, fmt.Errorf("watcher: negative lookup period %v", opts.Lookup)
	}
	if w.lookup == 0 {
		w.lookup = DefaultLookup
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.rescanEvery = opts.Rescan
	if w.rescanEvery == 0 {
		w.rescanEvery = DefaultRescan
	}
	for i, f := range folders {
		if f.Path == "" || !filepath.IsAbs(f.Path) {
			return nil, fmt.Errorf("watcher: folder %d: path %q is not absolute", i, f.Path)
		}
		if f.Settle < 0 || f.MaxWait < 0 {
			return nil, fmt.Errorf("watcher: folder %s: negative settle or max wait", f.Path)
		}
		c := folder{Folder: f}
		c.Path = filepath.Clean(f.Path)
		c.Include = append([]string(nil), f.Include...)
		c.Exclude = append([]string(nil), f.Exclude...)
		var err error
		if c.include, err = compile(c.Include); err != nil {
			return nil, fmt.Errorf("watcher: folder %s: include: %w", c.Path, err)
		}
		if c.exclude, err = compile(c.Exclude); err != nil {
			return nil, fmt.Errorf("watcher: folder %s: exclude: %w", c.Path, err)
		}
		c.poll = opts.Poll
		if c.poll == 0 {
			c.poll = min(max(c.Settle/4, MinPoll), MaxPoll)
		}
		for _, o := range w.folders {
			if err := overlap(o.Folder, c.Folder); err != nil {
				return nil, err
			}
		}
		w.folders = append(w.folders, c)
	}
	w.tick = MaxPoll
	if opts.Poll > 0 {
		w.tick = opts.Poll
	}
	for _, f := range w.folders {
		w.tick = min(w.tick, f.poll)
	}
	return w, nil
}

// compile validates globs.
func compile(globs []string) ([]pattern, error) {
	out := make([]pattern, 0, len(globs))
	for _, g := range globs {
		clean := strings.TrimPrefix(strings.TrimPrefix(g, "./"), "/")
		if clean == "" {
			return nil, fmt.Errorf("empty pattern %q: %w", g, path.ErrBadPattern)
		}
		if _, err := path.Match(clean, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", g, err)
		}
		out = append(out, pattern{glob: clean, byPath: strings.Contains(clean, "/")})
	}
	return out, nil
}

// overlap reports an error when one folder lies inside the other and the
// outer one is recursive (or both are the same directory): a directory would
// then belong to two folders.
func overlap(a, b Folder) error {
	if a.Path == b.Path {
		return fmt.Errorf("watcher: folder %s given twice", a.Path)
	}
	for _, p := range [2][2]Folder{{a, b}, {b, a}} {
		outer, inner := p[0], p[1]
		if outer.Recursive && within(inner.Path, outer.Path) {
			return fmt.Errorf("watcher: folder %s is inside recursive folder %s", inner.Path, outer.Path)
		}
	}
	return nil
}

// within reports whether p is strictly below dir (both clean).
func within(p, dir string) bool {
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}

// wanted reports whether the file at p (below the folder) passes the
// folder's filters and is not one of chute's files.
func (f *folder) wanted(p string) bool {
	base := filepath.Base(p)
	if IsChuteFile(base) {
		return false
	}
	var rel string
	if f.hasPathGlobs() {
		r, err := filepath.Rel(f.Path, p)
		if err != nil {
			return false
		}
		rel = filepath.ToSlash(r)
	}
	if len(f.include) > 0 && !matchAny(f.include, base, rel) {
		return false
	}
	return !matchAny(f.exclude, base, rel)
}

func (f *folder) hasPathGlobs() bool {
	for _, ps := range [2][]pattern{f.include, f.exclude} {
		for _, p := range ps {
			if p.byPath {
				return true
			}
		}
	}
	return false
}

func matchAny(ps []pattern, base, rel string) bool {
	for _, p := range ps {
		name := base
		if p.byPath {
			name = rel
		}
		if ok, _ := path.Match(p.glob, name); ok { // globs were validated by New
			return true
		}
	}
	return false
}

// Forget drops what the watcher remembers of path (pending state and whether
// it was reported), so that the file is reported again once it settles: the
// path is made pending again if it is in a watched directory and passes the
// filters; if it no longer exists it is dropped at the next poll. Forget does
// not block; it is a no-op when Run is not running.
func (w *Watcher) Forget(path string) {
	path = filepath.Clean(path)
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return
	}
	w.forgets = append(w.forgets, path)
	w.mu.Unlock()
	select {
	case w.forgetCh <- struct{}{}:
	default: // a signal is already pending; the loop takes every queued path
	}
}

// Rescan asks for a full rescan now. It does not block; requests made while a
// rescan is pending are merged.
func (w *Watcher) Rescan() {
	select {
	case w.rescanCh <- struct{}{}:
	default:
	}
}

// takeForgets returns and clears the queued Forget paths.
func (w *Watcher) takeForgets() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.forgets
	w.forgets = nil
	return f
}

func openRegular(name string) (*os.File, error) {
	f, _, err := fsx.OpenRegular(name)
	return f, err
}

// isNotExist reports whether err means the file is gone (also when a path
// component is no longer a directory).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
