package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
)

// JobStatus is one job as `chute status` shows it.
type JobStatus struct {
	ID          uint64            `json:"id"`
	File        string            `json:"file"`
	Folder      string            `json:"folder,omitempty"`
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
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
	Sidecar     string            `json:"sidecar,omitempty"`
	MovedTo     string            `json:"moved_to,omitempty"`
	// Rate is the upload's speed in bytes a second over the last few seconds, and ETA the
	// time left at that speed, in seconds; both only while it runs.
	Rate float64 `json:"rate,omitempty"`
	ETA  float64 `json:"eta_seconds,omitempty"`
	// Note says what the job waits for, when that is not plain from its state: its provider
	// paused, or an upload a crash interrupted.
	Note string `json:"note,omitempty"`
	// History lists the job's errors (the last store.MaxHistory) and what was done to it,
	// oldest first; only in one job's status (`chute status ID`, /v1/jobs/{id}).
	History []store.Event `json:"history,omitempty"`
}

// Interrupted is the note of a job that was uploading when chute stopped without a chance
// to say so (a crash, a power cut): it resumes from its checkpoint at the next start.
const Interrupted = "interrupted; resumes at the next start"

// StatusOf describes j; sent overrides the saved progress when >= 0.
func StatusOf(j store.Job, sent int64) JobStatus {
	s := JobStatus{
		ID: j.ID, File: store.DisplayPath(j.Path), Folder: store.DisplayPath(j.Folder), Provider: j.Provider, State: j.State, Size: j.Size,
		Sent: j.Sent, Attempts: j.Attempts, LastError: j.LastError, QueuedAt: j.QueuedAt,
		Sidecar: store.DisplayPath(j.Sidecar), MovedTo: store.DisplayPath(j.MovedTo),
	}
	if sent >= 0 {
		s.Sent = sent
	}
	if !j.StartedAt.IsZero() {
		t := j.StartedAt
		s.StartedAt = &t
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

// detail is StatusOf with the job's history, for one job shown in full. The history's texts
// went through the scrubber when they were recorded, like LastError.
func detail(j store.Job, sent int64) JobStatus {
	s := StatusOf(j, sent)
	s.History = j.History
	if len(s.History) == 0 && j.LastError != "" && j.State != store.Done {
		// A record from before histories: its last error is all there is.
		s.History = []store.Event{{What: "error", Text: j.LastError}}
	}
	return s
}

// ListJobs reads every job's status from the store, while no daemon runs: a job the store
// says is uploading was cut by a crash, and says so.
func ListJobs(st *store.Store) ([]JobStatus, error) {
	return ListJobsFiltered(st, store.Filter{})
}

// ListJobsFiltered is ListJobs of the jobs that match f.
func ListJobsFiltered(st *store.Store, f store.Filter) ([]JobStatus, error) {
	jobs, err := st.List(f)
	if err != nil {
		return nil, err
	}
	out := make([]JobStatus, len(jobs))
	for i, j := range jobs {
		out[i] = StatusOf(j, -1)
		if j.State == store.Uploading {
			out[i].Note = Interrupted
		}
	}
	return out, nil
}

// JobDetail reads one job in full from the store, while no daemon runs.
func JobDetail(st *store.Store, id uint64) (JobStatus, error) {
	j, err := st.Get(id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return JobStatus{}, fmt.Errorf("job %d: no such job", id)
		}
		return JobStatus{}, err
	}
	s := detail(j, -1)
	if j.State == store.Uploading {
		s.Note = Interrupted
	}
	return s, nil
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
			// The old error stays in the history; it is no longer the job's current one.
			if j.LastError != "" && !inHistory(j, j.LastError) {
				j.Note(store.Event{What: "error", Text: j.LastError})
			}
			if j.State == store.RetryWait {
				// Waiting for its next attempt: run it now.
				j.State = store.Queued
				j.NextAttempt = time.Time{}
				j.LastError = ""
				j.Note(store.Event{What: "retry", Text: "retry asked for while waiting for the next attempt: run now"})
				return nil
			}
			if j.State != store.Failed {
				return fmt.Errorf("job %d is %s, not failed or waiting to retry", j.ID, j.State)
			}
			if _, err := os.Stat(j.Path); err != nil {
				return fmt.Errorf("job %d: the file %s is gone", j.ID, j.Path)
			}
			j.State = store.Queued
			j.Note(store.Event{What: "retry", Text: fmt.Sprintf("retry asked for after it failed (%d %s)", j.Attempts, plural(j.Attempts, "attempt"))})
			j.Attempts = 0
			j.NextAttempt = time.Time{}
			j.FinishedAt = time.Time{}
			j.LastError = ""
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

// inHistory reports whether j's history has an error with text msg.
func inHistory(j *store.Job, msg string) bool {
	for _, e := range j.History {
		if e.What == "error" && e.Text == msg {
			return true
		}
	}
	return false
}

// Reupload starts a new job that uploads again the done file at path, on purpose (`chute
// reupload`): the file as it is now, to the provider of its last job, which keeps its result;
// the new job's history names it. A file being uploaded, or waiting for it, is refused, and so
// is one whose last job failed (`chute retry` is for that).
func Reupload(ctx context.Context, st *store.Store, path string) (store.Job, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return store.Job{}, err
	}
	old, ok, err := st.LatestByPath(abs)
	if err != nil {
		return store.Job{}, err
	}
	if !ok {
		return store.Job{}, fmt.Errorf("%s was never uploaded by chute (no job has this path); a file in a watched folder is uploaded by itself", abs)
	}
	switch old.State {
	case store.Done:
	case store.Failed:
		return store.Job{}, fmt.Errorf("the last job of %s (job %d) failed: run `chute retry %d`", abs, old.ID, old.ID)
	default:
		return store.Job{}, fmt.Errorf("%s is job %d already, which is %s", abs, old.ID, old.State)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return store.Job{}, fmt.Errorf("cannot upload %s again: %w", abs, err)
	}
	if !info.Mode().IsRegular() {
		return store.Job{}, fmt.Errorf("cannot upload %s again: it is not a regular file", abs)
	}
	note := store.Event{What: "reupload", Text: fmt.Sprintf("uploaded again on purpose (chute reupload); job %d uploaded it before", old.ID)}
	if old.Result != nil {
		note.URL = uploader.RedactURL(old.Result.URL)
	}
	return st.Reupload(ctx, old.ID, store.NewJob{Path: abs, Size: info.Size(), ModTime: info.ModTime(), Folder: old.Folder, Provider: old.Provider}, time.Now().UTC(), note)
}

// reuploading reports whether j is a job `chute reupload` made: its file is uploaded even
// though its sidecar says done.
func reuploading(j store.Job) bool {
	for _, e := range j.History {
		if e.What == "reupload" {
			return true
		}
	}
	return false
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
	d.jobsAPI(mux)
	// The retry of `chute retry` (several jobs, or every failed one) and reupload are the
	// socket's alone: the socket is as private as the database beside it.
	mux.HandleFunc("POST /v1/retry", func(w http.ResponseWriter, r *http.Request) {
		var req retryRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, d.retry(r.Context(), req.IDs, req.Failed))
	})
	mux.HandleFunc("POST /v1/reupload", func(w http.ResponseWriter, r *http.Request) {
		var req reuploadRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		j, err := Reupload(r.Context(), d.st, req.Path)
		if err != nil {
			writeJSON(w, reuploadAnswer{Error: err.Error()})
			return
		}
		d.log.Info("queued again on request (chute reupload)", "job", j.ID, "file", j.Path, "provider", j.Provider)
		d.enqueue(j)
		writeJSON(w, reuploadAnswer{Job: j.ID})
	})
	return mux
}

// jobsAPI adds the jobs API, on the control socket and on the listener:
//
//	GET  /v1/jobs?state=S[,S...]&provider=P&limit=N  jobs, by ID
//	GET  /v1/jobs/{id}                               one job, with its history
//	POST /v1/jobs/{id}/retry                         retry a failed or waiting job now
func (d *Daemon) jobsAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/jobs", d.serveJobs)
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := jobID(w, r)
		if !ok {
			return
		}
		j, err := d.st.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, fmt.Sprintf("job %d: no such job", id), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, d.live(j, true))
	})
	mux.HandleFunc("POST /v1/jobs/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		id, ok := jobID(w, r)
		if !ok {
			return
		}
		ans := d.retry(r.Context(), []uint64{id}, false)
		if ans.Error != "" {
			code := http.StatusConflict
			if strings.Contains(ans.Error, "no such job") {
				code = http.StatusNotFound
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(ans)
			return
		}
		writeJSON(w, ans)
	})
}

func jobID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, fmt.Sprintf("bad job id %q", r.PathValue("id")), http.StatusBadRequest)
		return 0, false
	}
	return id, true
}

// retry requeues jobs and has them run now.
func (d *Daemon) retry(ctx context.Context, ids []uint64, failed bool) retryAnswer {
	jobs, err := Retry(ctx, d.st, ids, failed)
	ans := retryAnswer{}
	for _, j := range jobs {
		ans.Requeued = append(ans.Requeued, j.ID)
		d.log.Info("queued again on request (chute retry)", "job", j.ID, "file", j.Path)
		d.runNow(j)
	}
	if err != nil {
		ans.Error = err.Error()
	}
	return ans
}

type retryRequest struct {
	IDs    []uint64 `json:"ids"`
	Failed bool     `json:"failed"`
}

type retryAnswer struct {
	Requeued []uint64 `json:"requeued"`
	Error    string   `json:"error,omitempty"`
}

type reuploadRequest struct {
	Path string `json:"path"`
}

type reuploadAnswer struct {
	Job   uint64 `json:"job,omitempty"`
	Error string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ParseFilter reads a jobs filter from URL query values: state (repeated or
// comma-separated), provider and limit.
func ParseFilter(q url.Values) (store.Filter, error) {
	var f store.Filter
	for _, v := range q["state"] {
		for s := range strings.SplitSeq(v, ",") {
			st := store.State(strings.TrimSpace(s))
			if st == "" {
				continue
			}
			if !st.Valid() {
				return f, fmt.Errorf("unknown state %q (one of %s)", st, stateNames())
			}
			f.States = append(f.States, st)
		}
	}
	f.Provider = q.Get("provider")
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return f, fmt.Errorf("bad limit %q: a number, 0 for no limit", l)
		}
		f.Limit = n
	}
	return f, nil
}

// FilterQuery is ParseFilter's inverse.
func FilterQuery(f store.Filter) string {
	q := url.Values{}
	for _, s := range f.States {
		q.Add("state", string(s))
	}
	if f.Provider != "" {
		q.Set("provider", f.Provider)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q.Encode()
}

func stateNames() string {
	var names []string
	for _, s := range store.States() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// serveJobs answers GET /v1/jobs, on the control socket and on the status listener.
func (d *Daemon) serveJobs(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	jobs, err := d.jobs(f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if jobs == nil {
		jobs = []JobStatus{}
	}
	writeJSON(w, jobs)
}

// jobs lists the jobs that match f with live progress for those uploading.
func (d *Daemon) jobs(f store.Filter) ([]JobStatus, error) {
	jobs, err := d.st.List(f)
	if err != nil {
		return nil, err
	}
	out := make([]JobStatus, len(jobs))
	for i, j := range jobs {
		out[i] = d.live(j, false)
	}
	return out, nil
}

// live describes j as it is now: its progress and rate while it uploads, and a note while
// its provider is paused.
func (d *Daemon) live(j store.Job, full bool) JobStatus {
	now := time.Now()
	sent := int64(-1)
	var rate float64
	if v, ok := d.progress.Load(j.ID); ok {
		rate, sent = v.(*inflight).rate(now)
		j.State = store.Uploading // in flight; the database has it once it checkpoints
	}
	var s JobStatus
	if full {
		s = detail(j, sent)
	} else {
		s = StatusOf(j, sent)
	}
	if rate > 0 {
		s.Rate = rate
		if left := j.Size - s.Sent; left > 0 {
			s.ETA = float64(left) / rate
		}
	}
	if pr, ok := d.provider(j.Provider); ok && (j.State == store.Queued || j.State == store.Uploading) {
		if kind, why, until := pr.gate.paused(); kind != "" {
			t := until
			s.NextAttempt = &t
			s.Note = fmt.Sprintf("waiting: provider %s is %s until %s: %s", j.Provider, kind, until.Local().Format(time.TimeOnly), why)
		}
	}
	return s
}

// serveHTTP serves health, the jobs API and Prometheus metrics on the `listen` address.
func (d *Daemon) serveHTTP(addr, token string) (*server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	api := http.NewServeMux()
	d.jobsAPI(api)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.m.reg, promhttp.HandlerOpts{Registry: d.m.reg}))
	mux.Handle("/", guard(token, api))
	d.log.Info("serving status over HTTP", "addr", l.Addr().String(), "token", token != "")
	return serve(l, mux, ""), nil
}

// guard lets through only requests with the bearer token, when there is one.
func guard(token string, h http.Handler) http.Handler {
	if token == "" {
		return h // configs allow no token on loopback only
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hashes of equal length, so that the comparison's time says nothing of the token.
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chute"`)
			http.Error(w, "unauthorized: this needs the listen_token as \"Authorization: Bearer <token>\"", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// stalledAfter is how long the watcher's loop may go without a turn before health says it
// is stuck. A full scan of a large tree holds it for a while; minutes do not.
const stalledAfter = 30 * time.Second

// health says what is wrong, one line a part; none when all is well.
func (d *Daemon) health() []string {
	var bad []string
	if e := d.dbErr.Load(); e != nil {
		bad = append(bad, "the state database cannot be written ("+d.scrub.text((*e).Error())+"); chute retries by itself")
	}
	ws := d.watchState.Load()
	switch {
	case ws == nil:
		bad = append(bad, "the watcher has not started yet")
	case time.Since(ws.at) > stalledAfter:
		bad = append(bad, fmt.Sprintf("the watcher's event loop has not turned for %s", time.Since(ws.at).Round(time.Second)))
	default:
		for _, f := range ws.folders {
			if f.Err != nil {
				bad = append(bad, fmt.Sprintf("folder %s: %v", store.DisplayPath(f.Path), f.Err))
			}
		}
	}
	return bad
}

// serveHealth answers /healthz: 200 "ok" while the database is usable and every folder is
// watched, else 503 with a line per problem.
func (d *Daemon) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if bad := d.health(); len(bad) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, b := range bad {
			fmt.Fprintln(w, "unhealthy: "+b)
		}
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// ErrNoDaemon is returned (wrapped) by the calls to a running daemon when none answers on
// the control socket.
var ErrNoDaemon = errors.New("no daemon answers on the control socket")

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
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return fmt.Errorf("%w: %w", ErrNoDaemon, err)
		}
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
	return QueryJobsFiltered(ctx, statePath, store.Filter{})
}

// QueryJobsFiltered asks a running daemon for its jobs that match f.
func QueryJobsFiltered(ctx context.Context, statePath string, f store.Filter) ([]JobStatus, error) {
	var jobs []JobStatus
	path := "/v1/jobs"
	if q := FilterQuery(f); q != "" {
		path += "?" + q
	}
	if err := callDaemon(ctx, statePath, http.MethodGet, path, nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// QueryJob asks a running daemon for one job in full.
func QueryJob(ctx context.Context, statePath string, id uint64) (JobStatus, error) {
	var j JobStatus
	err := callDaemon(ctx, statePath, http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &j)
	return j, err
}

// RequestReupload asks a running daemon to upload the done file at path again.
func RequestReupload(ctx context.Context, statePath, path string) (uint64, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	var ans reuploadAnswer
	if err := callDaemon(ctx, statePath, http.MethodPost, "/v1/reupload", reuploadRequest{Path: abs}, &ans); err != nil {
		return 0, err
	}
	if ans.Error != "" {
		return 0, errors.New(ans.Error)
	}
	return ans.Job, nil
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
