package uploader

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/chute-dev/chute/internal/fsx"
)

// Provider uploads one file to one remote service.
//
// One Provider serves every job of its config entry, and Upload runs concurrently (up to the
// provider's `concurrency` at once): what the jobs share (a token, a rate limiter) must be safe
// for concurrent use.
//
// Upload may be called again for the same file with the checkpoint it saved last (after a
// crash, a restart or a transient error); it must then continue from there: no second remote
// object, no bytes re-sent that the server already has.
type Provider interface {
	Upload(ctx context.Context, job *Job) (Result, error)
}

// Digest names a digest of a file's content.
type Digest string

// The digests the engine computes.
const (
	MD5    Digest = "md5"
	SHA256 Digest = "sha256"
)

// DigestNeeder is implemented by providers that need digests of the file before the upload
// starts (RedGIFs asks for a ticket with the md5). The engine then reads the file once before
// calling Upload, computes these digests together with the sidecar's SHA-256, keeps them with
// the job (a resume never re-hashes) and hands them over in Job.Digests.
type DigestNeeder interface {
	NeedDigests() []Digest
}

// Checker is implemented by providers that can test their credentials (`chute check --online`).
type Checker interface {
	Check(ctx context.Context) error
}

// Job is one call of Provider.Upload: the file and the provider's saved progress.
type Job struct {
	// File is the file to upload, readable from any offset.
	File *File
	// Checkpoint is what the provider saved last for this file; nil on a first attempt.
	Checkpoint []byte
	// Digests holds, in lower-case hex, the digests a DigestNeeder asked for.
	Digests map[Digest]string
	// Save persists a new checkpoint durably and returns once it is on disk. A provider calls
	// it before every step that costs something remotely (creating an entity, a ticket, an
	// upload URL), so that a crash after the step never repeats it.
	Save func(ctx context.Context, checkpoint []byte) error
	// Progress, when not nil, is told how many bytes the server holds. It must be cheap.
	Progress func(sent int64)
	// Logger carries the job's fields; providers add their own.
	Logger *slog.Logger
}

// SaveCheckpoint calls j.Save when it is set.
func (j *Job) SaveCheckpoint(ctx context.Context, cp []byte) error {
	if j.Save == nil {
		return nil
	}
	if err := j.Save(ctx, cp); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// ReportProgress calls j.Progress when it is set.
func (j *Job) ReportProgress(sent int64) {
	if j.Progress != nil {
		j.Progress(sent)
	}
}

// Log returns the job's logger, or a logger that discards.
func (j *Job) Log() *slog.Logger {
	if j.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Logger
}

// Result is what a finished upload produced; it goes into the sidecar.
type Result struct {
	ID    string            `json:"id"`
	URL   string            `json:"url"`
	Extra map[string]string `json:"extra,omitempty"`
}

// File is a file being uploaded: an open handle that can be read from any offset. It is never
// read whole into memory.
type File struct {
	// Path is the file's path on disk (for logs and MIME types; providers read through the File).
	Path string
	// Name is the base name, as sent to the provider.
	Name string
	// RelPath is the file's path under its watched folder, with / between folders ("a/b.mp4");
	// "" when the engine does not set it (providers then use Name). Providers that name
	// remote objects by path (Xvid's object key) use it; they still know nothing of folders.
	RelPath string
	Size    int64
	ModTime time.Time
	f       *os.File
	observe func(p []byte, off int64)

	zc         zeroCopy     // the descriptor the kernel sends from (sendfile.go)
	zeroCopied atomic.Int64 // bytes the kernel sent from it, for tests
}

// OpenFile opens path for upload. Anything but a regular file (a FIFO, a device) is refused
// without blocking.
func OpenFile(path string) (*File, error) {
	f, st, err := fsx.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	return &File{Path: path, Name: st.Name(), Size: st.Size(), ModTime: st.ModTime(), f: f}, nil
}

// ReadAt reads from the file at off.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	if f.observe != nil && n > 0 {
		f.observe(p[:n], off)
	}
	return n, err
}

// Observe has fn see every byte read from the file, with its offset, so that a digest can be
// computed in the same pass as the upload instead of reading the file twice. fn may be called
// from several goroutines; set it before the file is handed to a provider.
func (f *File) Observe(fn func(p []byte, off int64)) { f.observe = fn }

// Section returns a reader of the file from off to its end (as it was sized when opened).
func (f *File) Section(off int64) *io.SectionReader {
	return io.NewSectionReader(f, off, f.Size-off)
}

// Stat describes the open file (not whatever is at its path now).
func (f *File) Stat() (fs.FileInfo, error) { return f.f.Stat() }

// Close closes the file.
func (f *File) Close() error {
	f.closeZeroCopy()
	return f.f.Close()
}

// Env is what a provider type gets besides its options when it is built.
type Env struct {
	// Name is the provider's name in the config (`providers.<name>`).
	Name string
	// Endpoint is the configured base URL, or "" for the provider's default.
	Endpoint string
	// Client is the shared HTTP helper.
	Client *Client
	Logger *slog.Logger
}

// Type is one kind of provider (`type: tus` in the config).
type Type struct {
	// Name is the value of `type:` in the config.
	Name string
	// DefaultEndpoint is the public service's base URL; "" when the endpoint is required.
	DefaultEndpoint string
	// NewOptions returns a pointer to a new options struct with its defaults set; the config
	// loader fills it from the provider's YAML keys (by their `yaml` tags) and rejects unknown
	// keys. A field tagged `chute:"required"` must be set; `chute:"secret"` marks a credential.
	NewOptions func() any
	// New builds a provider from its filled-in options.
	New func(env Env, options any) (Provider, error)
}

// Registry holds the provider types chute knows, by name.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns a registry of the given types.
func NewRegistry(types ...Type) *Registry {
	r := &Registry{types: make(map[string]Type, len(types))}
	for _, t := range types {
		r.types[t.Name] = t
	}
	return r
}

// Lookup returns the type called name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names lists the known type names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FieldError is one problem an options struct's Validate found. Key is relative to the
// provider (e.g. "wait"); the config loader reports it as "providers.<name>.<Key>", with the
// line it was given on.
type FieldError struct {
	Key string
	Msg string
}

// Validator is implemented by options structs that check more than required fields. The
// config loader calls Validate after filling the struct from the provider's keys.
type Validator interface {
	Validate() []FieldError
}

// UserAgent is sent with every request chute makes.
const UserAgent = "chute/1 (+https://github.com/chute-dev/chute)"
