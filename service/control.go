package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
)

// JobStatus is one job as `chute status` shows it.
type JobStatus struct {
	ID          uint64            `json:"id"`
	File        string            `json:"file"`
	Provider    string            `json:"provider"`
	State       store.State       `json:"state"`
	Size        int64             `json:"size"`
	Sent        int64             `json:"sent"`
	Attempts    int               `json:"attempts"`
	LastError   string            `json:"last_error,omitempty"`
	ResultID    string            `json:"result_id,omitempty"`
	URL         string            `json:"url,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
	NextAttempt *time.Time        `json:"next_attempt,omitempty"`
	QueuedAt    time.Time         `json:"queued_at"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
}

// StatusOf describes j; sent overrides the saved progress when >= 0.
func StatusOf(j store.Job, sent int64) JobStatus {
	s := JobStatus{
		ID: j.ID, File: store.DisplayPath(j.Path), Provider: j.Provider, State: j.State, Size: j.Size,
		Sent: j.Sent, Attempts: j.Attempts, LastError: j.LastError, QueuedAt: j.QueuedAt,
	}
	if sent >= 0 {
		s.Sent = sent
	}
	if j.Result != nil {
		// Query strings (tokens, signatures) and user info stay out of status output.
		s.ResultID, s.URL, s.Extra = j.Result.ID, uploader.RedactURL(j.Result.URL), j.Result.Extra
	}
	if j.State == store.RetryWait && !j.NextAttempt.IsZero() {
		t := j.NextAttempt
		s.NextAttempt = &t
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		s.FinishedAt = &t
	}
	return s
}

// ListJobs reads every job's status from the store.
func ListJobs(st *store.Store) ([]JobStatus, error) {
	jobs, err := st.List(store.Filter{})
	if err != nil {
		return nil, err
	}
	out := make([]JobStatus, len(jobs))
	for i, j := range jobs {
		out[i] = StatusOf(j, -1)
	}
	return out, nil
}

// Retry puts failed jobs back in the queue (and has jobs waiting for their next attempt run
// now): those in ids, and every failed one when failed is true. It returns the jobs
// requeued; an id that is neither failed nor waiting is an error.
func Retry(ctx context.Context, st *store.Store, ids []uint64, failed bool) ([]store.Job, error) {
	want := append([]uint64(nil), ids...)
	if failed {
		jobs, err := st.List(store.Filter{States: []store.State{store.Failed}})
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			want = append(want, j.ID)
		}
	}
	var out []store.Job
	var problems []string
	seen := map[uint64]bool{}
	for _, id := range want {
		if seen[id] {
			continue
		}
		seen[id] = true
		j, err := st.Update(ctx, id, func(j *store.Job) error {
			if j.State == store.RetryWait {
				// Waiting for its next attempt: run it now.
				j.State = store.Queued
				j.NextAttempt = time.Time{}
				return nil
			}
			if j.State != store.Failed {
				return fmt.Errorf("job %d is %s, not failed or waiting to retry", j.ID, j.State)
			}
			if _, err := os.Stat(j.Path); err != nil {
				return fmt.Errorf("job %d: the file %s is gone", j.ID, j.Path)
			}
			j.State = store.Queued
			j.Attempts = 0
			j.NextAttempt = time.Time{}
			j.FinishedAt = time.Time{}
			return nil
		})
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				problems = append(problems, fmt.Sprintf("job %d: no such job", id))
			} else {
				problems = append(problems, err.Error())
			}
			continue
		}
		out = append(out, j)
	}
	if len(problems) > 0 {
		return out, errors.New(strings.Join(problems, "\n"))
	}
	return out, nil
}

// ControlSocket is the path of the daemon's control socket for a state database: beside it,
// or, when that path is too long for a socket, in the temporary directory under a name
// derived from it.
func ControlSocket(statePath string) string {
	p := statePath + ".sock"
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(statePath))
	return filepath.Join(os.TempDir(), "chute-"+hex.EncodeToString(sum[:8])+".sock")
}

type server struct {
	srv  *http.Server
	l    net.Listener
	done chan struct{}
	path string
}

func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	if s.path != "" {
		_ = os.Remove(s.path)
	}
}

func serve(l net.Listener, h http.Handler, path string) *server {
	s := &server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, l: l, done: make(chan struct{}), path: path}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(l)
	}()
	return s
}

// refuseRunningDaemon returns an error wrapping store.ErrInUse when a daemon answers on the
// control socket of statePath: it runs on this database even if the database file was
// deleted or replaced under it (its lock would then not keep a second daemon out).
func refuseRunningDaemon(statePath string) error {
	c, err := net.DialTimeout("unix", ControlSocket(statePath), 500*time.Millisecond)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("state database %s is %w (its control socket %s answers)", statePath, store.ErrInUse, ControlSocket(statePath))
}

// serveControl answers `chute status` and `chute retry` on a Unix socket beside the state
// database: the database itself is locked while the daemon runs.
func (d *Daemon) serveControl() (*server, error) {
	path := ControlSocket(d.state)
	// We hold the database lock, and refuseRunningDaemon found no daemon answering: a socket
	// file left here is stale.
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	_ = os.Chmod(path, 0o600)
	return serve(l, d.controlHandler(), path), nil
}

func (d *Daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs", d.serveJobs)
	mux.HandleFunc("POST /v1/retry", func(w http.ResponseWriter, r *http.Request) {
		var req retryRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		jobs, err := Retry(r.Context(), d.st, req.IDs, req.Failed)
		ans := retryAnswer{}
		for _, j := range jobs {
			ans.Requeued = append(ans.Requeued, j.ID)
			d.runNow(j)
		}
		if err != nil {
			ans.Error = err.Error()
		}
		writeJSON(w, ans)
	})
	return mux
}

type retryRequest struct {
	IDs    []uint64 `json:"ids"`
	Failed bool     `json:"failed"`
}

type retryAnswer struct {
	Requeued []uint64 `json:"requeued"`
	Error    string   `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// serveJobs answers GET /v1/jobs, on the control socket and on the status listener.
func (d *Daemon) serveJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := d.jobs()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, jobs)
}

// jobs lists the jobs with live progress for those uploading.
func (d *Daemon) jobs() ([]JobStatus, error) {
	jobs, err := d.st.List(store.Filter{})
	if err != nil {
		return nil, err
	}
	out := make([]JobStatus, len(jobs))
	for i, j := range jobs {
		sent := int64(-1)
		if v, ok := d.progress.Load(j.ID); ok {
			sent = v.(interface{ Load() int64 }).Load()
		}
		out[i] = StatusOf(j, sent)
		if pr, ok := d.provider(j.Provider); ok && (j.State == store.Queued || j.State == store.Uploading) {
			if kind, why, until := pr.gate.paused(); kind != "" {
				t := until
				out[i].NextAttempt = &t
				out[i].LastError = fmt.Sprintf("waiting: provider %s is %s until %s: %s", j.Provider, kind, until.Local().Format(time.TimeOnly), why)
			}
		}
	}
	return out, nil
}

// serveHTTP serves health, status and Prometheus metrics on the `listen` address.
func (d *Daemon) serveHTTP(addr string) (*server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if e := d.dbErr.Load(); e != nil {
			http.Error(w, "unhealthy: the state database cannot be written ("+d.scrub.text((*e).Error())+"); chute retries by itself", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /v1/jobs", d.serveJobs)
	mux.HandleFunc("GET /metrics", d.metrics)
	d.log.Info("serving status over HTTP", "addr", l.Addr().String())
	return serve(l, mux, ""), nil
}

// metrics writes the Prometheus text format by hand: a handful of series do not need a
// client library.
func (d *Daemon) metrics(w http.ResponseWriter, r *http.Request) {
	counts, err := d.st.Counts()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP chute_jobs Jobs in the state database by state.")
	fmt.Fprintln(w, "# TYPE chute_jobs gauge")
	states := make([]string, 0, len(counts))
	for s := range counts {
		states = append(states, string(s))
	}
	sort.Strings(states)
	for _, s := range states {
		fmt.Fprintf(w, "chute_jobs{state=%q} %d\n", s, counts[store.State(s)])
	}
	fmt.Fprintln(w, "# HELP chute_uploads_total Jobs ended since start, by result.")
	fmt.Fprintln(w, "# TYPE chute_uploads_total counter")
	fmt.Fprintf(w, "chute_uploads_total{result=\"done\"} %d\n", d.stats.done.Load())
	fmt.Fprintf(w, "chute_uploads_total{result=\"failed\"} %d\n", d.stats.failed.Load())
	fmt.Fprintln(w, "# HELP chute_retries_total Attempts that failed and were scheduled again.")
	fmt.Fprintln(w, "# TYPE chute_retries_total counter")
	fmt.Fprintf(w, "chute_retries_total %d\n", d.stats.retried.Load())
	fmt.Fprintln(w, "# HELP chute_uploaded_bytes_total Bytes of files uploaded since start.")
	fmt.Fprintln(w, "# TYPE chute_uploaded_bytes_total counter")
	fmt.Fprintf(w, "chute_uploaded_bytes_total %d\n", d.stats.bytes.Load())
}

// controlClient talks to a running daemon's control socket.
func controlClient(statePath string) *http.Client {
	sock := ControlSocket(statePath)
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		},
	}
}

// callDaemon sends one request to a running daemon's control socket and decodes its JSON
// answer into out.
func callDaemon(ctx context.Context, statePath, method, path string, in, out any) error {
	c := controlClient(statePath)
	defer c.CloseIdleConnections()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://chute"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("ask the running daemon: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("ask the running daemon: %w", err)
	}
	return nil
}

// QueryJobs asks a running daemon for its jobs.
func QueryJobs(ctx context.Context, statePath string) ([]JobStatus, error) {
	var jobs []JobStatus
	if err := callDaemon(ctx, statePath, http.MethodGet, "/v1/jobs", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// RequestRetry asks a running daemon to requeue jobs.
func RequestRetry(ctx context.Context, statePath string, ids []uint64, failed bool) ([]uint64, error) {
	var ans retryAnswer
	if err := callDaemon(ctx, statePath, http.MethodPost, "/v1/retry", retryRequest{IDs: ids, Failed: failed}, &ans); err != nil {
		return nil, err
	}
	if ans.Error != "" {
		return ans.Requeued, errors.New(ans.Error)
	}
	return ans.Requeued, nil
}
