package service

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/chute-dev/chute/watcher"
)

// Sidecar is the `<file>.chute.json` written beside a file when its job ends (the spec's
// contract with users and scripts).
type Sidecar struct {
	Status       string            `json:"status"` // "done" or "failed"
	File         string            `json:"file"`
	Size         int64             `json:"size"`
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

// SidecarPath is where the sidecar of the file at path goes.
func SidecarPath(path string) string { return path + watcher.SidecarSuffix }

// WriteSidecar writes sc beside the file at path atomically: a temporary file, fsync, rename.
// A reader sees the old sidecar or the new one, never half of one.
func WriteSidecar(path string, sc *Sidecar) error {
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode sidecar: %w", err)
	}
	b = append(b, '\n')
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The pattern is the one watcher.IsChuteFile knows: ".<file>.chute.json.<random>.tmp".
	tmp, err := os.CreateTemp(dir, "."+name+watcher.SidecarSuffix+".*.tmp")
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
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
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

// sidecarSaysDone reports whether the file at path has a sidecar saying it was uploaded at
// this size: then it is not uploaded again, even without a state database.
func sidecarSaysDone(path string, size int64) bool {
	sc, err := ReadSidecar(path)
	if err != nil {
		return false
	}
	return sc.Status == "done" && sc.Size == size
}
