package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// State is where a job is in its life: queued -> uploading -> done | failed, with retry_wait
// between attempts.
type State string

// The states of a job.
const (
	// Queued jobs wait for a worker.
	Queued State = "queued"
	// Uploading jobs are held by a worker (or were, when chute stopped: resume them).
	Uploading State = "uploading"
	// RetryWait jobs wait until their NextAttempt.
	RetryWait State = "retry_wait"
	// Done jobs are uploaded; Job.Result says where.
	Done State = "done"
	// Failed jobs failed permanently; Job.LastError says why.
	Failed State = "failed"
)

// States lists every state, in the order of a job's life.
func States() []State { return []State{Queued, Uploading, RetryWait, Done, Failed} }

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case Queued, Uploading, RetryWait, Done, Failed:
		return true
	}
	return false
}

// Result is where a provider put a file.
type Result struct {
	ID    string            `json:"id"`              // the provider's id of the upload
	URL   string            `json:"url"`             // where the upload can be seen
	Extra map[string]string `json:"extra,omitempty"` // provider-specific extras (e.g. hls_url)
}

// Job is one file to upload to one provider, and everything chute knows about it.
type Job struct {
	ID          uint64            `json:"id"`                    // sequence, from the jobs bucket's NextSequence
	Path        string            `json:"path"`                  // absolute path of the file when discovered
	Size        int64             `json:"size"`                  // size when discovered (part of the identity)
	ModTime     time.Time         `json:"mod_time"`              // mtime when discovered (part of the identity)
	Folder      string            `json:"folder"`                // the watched folder's path
	Provider    string            `json:"provider"`              // provider name from the config
	State       State             `json:"state"`                 // where the job is in its life
	Attempts    int               `json:"attempts,omitempty"`    // attempts that ended (failed or succeeded); a crash or stop is not one
	NextAttempt time.Time         `json:"next_attempt,omitzero"` // for RetryWait
	LastError   string            `json:"last_error,omitempty"`  // the last attempt's error, in words
	Checkpoint  []byte            `json:"checkpoint,omitempty"`  // opaque, owned by the provider
	Sent        int64             `json:"sent,omitempty"`        // bytes the server holds, last saved
	SHA256      string            `json:"sha256,omitempty"`      // hex digest of the file, once known
	Result      *Result           `json:"result,omitempty"`      // set once the upload finished (before the ending)
	Digests     map[string]string `json:"digests,omitempty"`     // digests a provider needed, hex, by name
	MovedTo     string            `json:"moved_to,omitempty"`    // with after: move, the destination, chosen before the move
	Sidecar     string            `json:"sidecar,omitempty"`     // where the sidecar was written, once it was
	QueuedAt    time.Time         `json:"queued_at"`             // when the job was added
	StartedAt   time.Time         `json:"started_at,omitzero"`   // when the last attempt started
	FinishedAt  time.Time         `json:"finished_at,omitzero"`  // when the job became Done or Failed
	// History is what happened to the job that a person may want to see later: its errors
	// (the last MaxHistory), retries asked for, and a result it had before it was uploaded
	// again. Records written before it existed have none.
	History []Event `json:"history,omitempty"`
}

// MaxHistory is how many events a job keeps; older ones are dropped.
const MaxHistory = 20

// Event is one entry of a job's history.
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`            // "error", "retry", "reupload"
	Text string    `json:"text"`            // the error, in words, or what was done
	URL  string    `json:"url,omitempty"`   // for "reupload": the result it had
	Kind string    `json:"class,omitempty"` // for "error": permanent, transient, rate-limited...
}

// Note appends an event to j's history, keeping the last MaxHistory.
func (j *Job) Note(e Event) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	j.History = append(j.History, e)
	if over := len(j.History) - MaxHistory; over > 0 {
		j.History = append(j.History[:0:0], j.History[over:]...)
	}
}

// NoteError sets j's LastError and appends it to its history.
func (j *Job) NoteError(msg, class string) {
	j.LastError = msg
	if msg != "" {
		j.Note(Event{What: "error", Text: msg, Kind: class})
	}
}

// NewJob is a discovered file.
type NewJob struct {
	Path     string    // absolute path of the file
	Size     int64     // size when it settled
	ModTime  time.Time // mtime when it settled
	Folder   string    // the watched folder it was found in
	Provider string    // the provider name the folder maps to
}

func (f NewJob) validate() error {
	if f.Path == "" {
		return fmt.Errorf("new job: empty path")
	}
	if strings.IndexByte(f.Path, 0) >= 0 {
		return fmt.Errorf("new job %q: path contains a NUL byte", f.Path)
	}
	return nil
}

// Added is AddBatch's answer for one file.
type Added struct {
	// Job is the new job, or the existing one for the same identity.
	Job Job
	// Added is true when Job was created by this call.
	Added bool
}

// Filter selects jobs for List.
type Filter struct {
	States   []State // empty: all states
	Provider string  // empty: all providers
	Limit    int     // at most this many jobs; zero or less: no limit
}

// jobFields is Job without its JSON methods, so that they can use the default encoding for
// every field but the paths.
type jobFields Job

// jobJSON is how a Job is stored. Paths are bytes and JSON strings are UTF-8 (encoding/json
// turns each invalid byte into U+FFFD, and the file of that name does not exist): a path that is
// valid UTF-8 is stored as a string, as schema version 1 always did; any other is stored exactly
// in *_bytes (base64), with its DisplayPath in the string for people reading the database.
// The outer fields hide jobFields' fields of the same JSON name.
type jobJSON struct {
	*jobFields
	Path         string `json:"path"`
	PathBytes    []byte `json:"path_bytes,omitempty"`
	Folder       string `json:"folder"`
	FolderBytes  []byte `json:"folder_bytes,omitempty"`
	MovedTo      string `json:"moved_to,omitempty"`
	MovedToBytes []byte `json:"moved_to_bytes,omitempty"`
	Sidecar      string `json:"sidecar,omitempty"`
	SidecarBytes []byte `json:"sidecar_bytes,omitempty"`
}

// pathJSON splits a path into jobJSON's string and bytes.
func pathJSON(p string) (string, []byte) {
	if utf8.ValidString(p) {
		return p, nil
	}
	return DisplayPath(p), []byte(p)
}

// MarshalJSON encodes j as the store keeps it, every byte of its paths intact.
func (j Job) MarshalJSON() ([]byte, error) {
	w := jobJSON{jobFields: (*jobFields)(&j)}
	w.Path, w.PathBytes = pathJSON(j.Path)
	w.Folder, w.FolderBytes = pathJSON(j.Folder)
	w.MovedTo, w.MovedToBytes = pathJSON(j.MovedTo)
	w.Sidecar, w.SidecarBytes = pathJSON(j.Sidecar)
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON wrote, and the plain strings of older databases.
func (j *Job) UnmarshalJSON(b []byte) error {
	var f jobFields
	w := jobJSON{jobFields: &f}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	f.Path, f.Folder = w.Path, w.Folder
	if w.PathBytes != nil {
		f.Path = string(w.PathBytes)
	}
	if w.FolderBytes != nil {
		f.Folder = string(w.FolderBytes)
	}
	f.MovedTo, f.Sidecar = w.MovedTo, w.Sidecar
	if w.MovedToBytes != nil {
		f.MovedTo = string(w.MovedToBytes)
	}
	if w.SidecarBytes != nil {
		f.Sidecar = string(w.SidecarBytes)
	}
	*j = Job(f)
	return nil
}

func encodeJob(j *Job) ([]byte, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode job %d: %w", j.ID, err)
	}
	return b, nil
}

// errCorrupt marks a record that cannot be what this code wrote: the file is damaged.
var errCorrupt = errors.New("corrupt record")

func decodeJob(id uint64, b []byte) (Job, error) {
	var j Job
	if err := j.UnmarshalJSON(b); err != nil { // direct: json.Unmarshal would scan b twice
		return Job{}, fmt.Errorf("decode job %d: %w: %w", id, errCorrupt, err)
	}
	j.ID = id // the key is the truth
	return j, nil
}

// Keys. A NUL separates a path or state from what follows: neither can contain one.

func encodeID(id uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, id)
	return b
}

func decodeID(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func stateKey(s State, id uint64) []byte {
	k := make([]byte, 0, len(s)+9)
	k = append(k, s...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, id)
}

func statePrefix(s State) []byte { return append([]byte(s), 0) }

func identityKey(path string, size int64, mtime time.Time) []byte {
	k := make([]byte, 0, len(path)+17)
	k = append(k, path...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(size))
	return binary.BigEndian.AppendUint64(k, uint64(mtime.UnixNano()))
}

func pathKey(path string, id uint64) []byte {
	k := make([]byte, 0, len(path)+9)
	k = append(k, path...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, id)
}

func (j *Job) identityKey() []byte { return identityKey(j.Path, j.Size, j.ModTime) }
