package service

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/chute-dev/chute/watcher"
)

// Sidecar is the `<file>.chute.json` written beside a file when its job ends (the spec's
// contract with users and scripts). It records what it describes (size, mtime, sha256): a
// file counts as uploaded only while it is that content.
type Sidecar struct {
	Status string `json:"status"` // "done" or "failed"
	// File is the file's base name; a name that is not valid UTF-8 is shown with each
	// invalid byte as \xNN, and FileBytes holds it exactly (base64 in JSON).
	File         string            `json:"file"`
	FileBytes    []byte            `json:"file_bytes,omitempty"`
	Size         int64             `json:"size"`
	MTime        time.Time         `json:"mtime,omitzero"`
	SHA256       string            `json:"sha256,omitempty"`
	Provider     string            `json:"provider"`
	ProviderName string            `json:"provider_name"`
	ID           string            `json:"id,omitempty"`
	URL          string            `json:"url,omitempty"`
	Extra        map[string]string `json:"extra,omitempty"`
	Error        string            `json:"error,omitempty"`
	Job          uint64            `json:"job"`
	Attempts     int               `json:"attempts"`
	QueuedAt     time.Time         `json:"queued_at"`
	FinishedAt   time.Time         `json:"finished_at"`
}

// maxName is the longest file name (in bytes) the common file systems allow.
const maxName = 255

// tempPattern names chute's temporary files (sidecars being written, files being copied by
// a move): short whatever the file's name, and recognised by watcher.IsChuteFile.
const tempPattern = watcher.SidecarTempPattern

// SidecarPath is where the sidecar of the file at path goes: `<file>.chute.json`, or, when
// that name would pass the 255-byte limit, the start of the name, "~", 16 hex digits of the
// name's SHA-256, then ".chute.json" (the sidecar's `file` says which file it describes).
func SidecarPath(path string) string {
	dir, base := filepath.Split(path)
	if len(base)+len(watcher.SidecarSuffix) <= maxName {
		return path + watcher.SidecarSuffix
	}
	sum := sha256.Sum256([]byte(base))
	tag := "~" + hex.EncodeToString(sum[:8])
	keep := maxName - len(watcher.SidecarSuffix) - len(tag)
	for keep > 0 && !utf8.RuneStart(base[keep]) {
		keep--
	}
	return dir + base[:keep] + tag + watcher.SidecarSuffix
}

// WriteSidecar writes sc beside the file at path atomically: a temporary file, fsync, rename.
// A reader sees the old sidecar or the new one, never half of one.
func WriteSidecar(path string, sc *Sidecar) error { return writeSidecar(path, sc, true) }

// writeSidecar is WriteSidecar; with durable false it skips the fsync. The rename is still
// atomic for every reader while the machine runs; a power loss may lose the new sidecar or
// leave it empty. The engine uses that for done sidecars only: the job's done state, fsynced
// in the state database after the sidecar was written, is the durable record, and
// repairSidecars writes every missing, empty or stale sidecar of a done job again at start.
func writeSidecar(path string, sc *Sidecar, durable bool) error {
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode sidecar: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("write sidecar: %w", err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	if err := os.Rename(tmp.Name(), SidecarPath(path)); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	ok = true
	return nil
}

// ReadSidecar reads the sidecar of the file at path; os.ErrNotExist (wrapped) when there is none.
func ReadSidecar(path string) (*Sidecar, error) {
	f, err := os.Open(SidecarPath(path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var sc Sidecar
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&sc); err != nil {
		return nil, fmt.Errorf("read sidecar %s: %w", SidecarPath(path), err)
	}
	return &sc, nil
}

// sidecarSaysDone reports whether the file at path has a sidecar saying it was uploaded with
// this size and mtime: then it is not uploaded again, even without a state database. A done
// sidecar of the same size and another mtime is a doubt the worker settles by hash.
func sidecarSaysDone(path string, size int64, mtime time.Time) bool {
	sc, err := ReadSidecar(path)
	if err != nil {
		return false
	}
	return sc.Status == "done" && sc.Size == size && !sc.MTime.IsZero() && sc.MTime.Equal(mtime)
}
