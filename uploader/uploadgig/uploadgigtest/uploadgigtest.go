// Package uploadgigtest emulates UploadGig for tests and `chute demo`: the login that hands
// out an upload action (POST /api/get_upload_action) and the upload host that takes the raw
// file (POST <action>), with the platform's answers, its quota and its login limit.
//
// How it maps to the real service:
//   - Two loopback listeners: the API (Server.URL, Listener) and the upload host
//     (UploadListener), as UploadGig's actions point at a bare IP on port 81.
//   - A login is a form POST of user and pass. It answers code "1" with an action URL
//     (http://<upload host>/upload?identity=<token>) and cmbs, the space left in MB
//     (mebibytes, rounded down); "0" with "Email or password was incorrect!"; "-3" when more
//     than Options.LoginsPerMinute logins came in the last minute, and then for
//     Options.Lockout whatever is sent. Every call counts, refused ones too.
//   - Logins that overlap (one starts while another is being answered) are counted: the
//     platform treats bursts of logins as an attack.
//   - An identity is good for one upload request, within Options.ActionTTL (60s) of its
//     login. A reused, expired or unknown one gets "Invalid identity provided".
//   - The upload needs a Slug header: the file name, percent-decoded as UTF-8 (raw non-ASCII
//     bytes and bad escapes are refused), stored under exactly that name. A Content-Length
//     beyond the space left is refused ("Your storage is full"), as is a chunked body that
//     turns out too large. A refused body is still read to its end, as PHP reads a request
//     before its script runs. A body cut short stores nothing.
//   - The answer is an object keyed "0" with ok, message, url, id (16 characters),
//     file_name and size; url is http://<API host>/file/download/<id>/<name>.
//   - Faults and records come from uploadertest.Faults, one set per host: FailNext (logins)
//     and FailUploads answer a status, Stall holds both, Throttle slows upload bodies,
//     UploadListener.CutAfter drops a connection mid-body; LoginRequests and UploadRequests
//     are the logs. HoldAfterAnswer keeps an upload's response open after its answer.
//   - Not mirrored: the website, folders, premium accounts, file processing, and the
//     platform's exact texts beyond the documented ones.
package uploadgigtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

// The platform's texts.
const (
	MsgBadLogin        = "Email or password was incorrect!"
	MsgRateLimited     = "According to security reasons, you can't login a few minutes"
	MsgUploaded        = "Uploaded was successful, file will be available in a few minutes"
	MsgInvalidIdentity = "Invalid identity provided"
	MsgStorageFull     = "Your storage is full"
	MsgNoFileName      = "No file name given"
	MsgBadFileName     = "Invalid file name"
)

// MiB is what the emulator counts as one MB of cmbs.
const MiB = 1 << 20

// Options configure a Server.
type Options struct {
	// Dir holds the stored files (required unless Discard).
	Dir string
	// User and Pass are the only credentials accepted (required).
	User, Pass string
	// QuotaMB is the account's space in MB (default 10240); cmbs is what is left of it.
	QuotaMB int64
	// ActionTTL is how long an upload action is valid after its login (default 60s).
	ActionTTL time.Duration
	// LoginsPerMinute is how many logins a minute are answered before "-3" (default 10).
	LoginsPerMinute int
	// Lockout is how long every login answers "-3" once the limit was passed (default 3m).
	Lockout time.Duration
	// LoginDelay is how long a login takes to answer (default 5ms), which is what makes
	// overlapping logins visible.
	LoginDelay time.Duration
	// CodeAsNumber answers code as a JSON number (1) instead of a string ("1").
	CodeAsNumber bool
	// CmbsAsString answers cmbs as a quoted string ("10240") instead of a number.
	CmbsAsString bool
	// Discard keeps no bytes of uploads, only their names and sizes (for benchmarks);
	// Stored then has nothing to open.
	Discard bool
}

// Counters are what the emulator has seen.
type Counters struct {
	// Logins counts calls of get_upload_action, whatever they were answered.
	Logins int
	// LoginsRefused counts logins answered "0".
	LoginsRefused int
	// RateLimited counts logins answered "-3".
	RateLimited int
	// OverlappingLogins counts logins that started while another was being answered.
	OverlappingLogins int
	// ActionsIssued counts logins answered "1".
	ActionsIssued int
	// UploadRequests counts requests to the upload host (answered or not).
	UploadRequests int
	// IdentityRefusals counts uploads refused for their identity.
	IdentityRefusals int
	// Refusals counts uploads refused for anything else (Slug, quota).
	Refusals int
	// Uploads counts files stored.
	Uploads int
	// BytesReceived counts body bytes read from upload requests, stored or not.
	BytesReceived int64
}

// File is a stored upload.
type File struct {
	// ID is the file's 16-character id.
	ID string
	// Name is the file name as stored: the decoded Slug.
	Name string
	Size int64
	// SHA256 is the hex digest of the stored bytes ("" with Discard).
	SHA256 string
}

// Server is the emulator.
type Server struct {
	// URL is the API's base URL, the provider's endpoint: http://127.0.0.1:PORT.
	URL string
	// Listener serves the API.
	Listener *uploadertest.Listener
	// UploadListener serves the upload host the actions point at, for cutting uploads.
	UploadListener *uploadertest.Listener

	opts    Options
	apiHost string
	upHost  string
	srvs    [2]*uploadertest.HTTPServer
	// api and up are the fault knobs and request logs of the API and the upload host.
	api, up uploadertest.Faults
	inLogin atomic.Int32

	mu          sync.Mutex
	ttl         time.Duration
	quota       int64 // bytes
	used        int64 // bytes stored
	loginTimes  []time.Time
	lockedUntil time.Time
	limitLeft   int // logins still to answer "-3" (RateLimitNext)
	identities  map[string]identity
	files       map[string]*File
	order       []string
	counters    Counters
	hold        chan struct{} // non-nil: upload answers are held open after the answer
}

type identity struct {
	expires time.Time
	used    bool
}

// Start serves the emulator on two free loopback ports.
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" && !opts.Discard {
		return nil, errors.New("uploadgigtest: Dir is required")
	}
	if opts.User == "" || opts.Pass == "" {
		return nil, errors.New("uploadgigtest: User and Pass are required")
	}
	if opts.QuotaMB <= 0 {
		opts.QuotaMB = 10240
	}
	if opts.ActionTTL <= 0 {
		opts.ActionTTL = 60 * time.Second
	}
	if opts.LoginsPerMinute <= 0 {
		opts.LoginsPerMinute = 10
	}
	if opts.Lockout <= 0 {
		opts.Lockout = 3 * time.Minute
	}
	if opts.LoginDelay <= 0 {
		opts.LoginDelay = 5 * time.Millisecond
	}
	if !opts.Discard {
		if err := os.MkdirAll(filepath.Join(opts.Dir, "files"), 0o700); err != nil {
			return nil, fmt.Errorf("uploadgigtest: %w", err)
		}
	}
	s := &Server{
		opts:       opts,
		quota:      opts.QuotaMB * MiB,
		ttl:        opts.ActionTTL,
		identities: make(map[string]identity),
		files:      make(map[string]*File),
	}
	var err error
	if s.Listener, err = uploadertest.Listen(); err != nil {
		return nil, fmt.Errorf("uploadgigtest: %w", err)
	}
	if s.UploadListener, err = uploadertest.Listen(); err != nil {
		s.Listener.Close()
		return nil, fmt.Errorf("uploadgigtest: %w", err)
	}
	s.apiHost, s.upHost = s.Listener.Addr().String(), s.UploadListener.Addr().String()
	s.URL = "http://" + s.apiHost
	s.api.Write, s.up.Write = writeFault, writeFault

	api := http.NewServeMux()
	api.HandleFunc("POST /api/get_upload_action", s.login)
	api.HandleFunc("GET /file/download/{id}/{name...}", s.download)
	api.HandleFunc("/", s.other)
	up := http.NewServeMux()
	up.HandleFunc("POST /upload", s.upload)
	up.HandleFunc("/", s.other)

	s.srvs[0] = uploadertest.Serve(s.Listener, s.api.Wrap(api))
	s.srvs[1] = uploadertest.Serve(s.UploadListener, s.up.Wrap(up))
	return s, nil
}

// Close stops both listeners and waits for their goroutines.
func (s *Server) Close() error {
	s.Stall(false)
	s.HoldAfterAnswer(false)
	return errors.Join(s.srvs[0].Close(), s.srvs[1].Close())
}

// FailNext answers the next n logins with status (and Retry-After when retryAfter > 0).
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.api.FailNext(n, status, retryAfter)
}

// FailUploads answers the next n upload requests with status, without reading their bodies.
func (s *Server) FailUploads(n, status int) { s.up.FailNext(n, status, 0) }

// Stall holds every request, logins and uploads, unanswered until Stall(false).
func (s *Server) Stall(on bool) {
	s.api.Stall(on)
	s.up.Stall(on)
}

// Throttle limits how fast each upload body is read, in bytes a second (0: no limit).
func (s *Server) Throttle(bytesPerSecond int64) { s.up.Throttle(bytesPerSecond) }

// HoldAfterAnswer keeps upload answers open after their JSON was sent, until
// HoldAfterAnswer(false) or the client leaves: a server that is slow to end its answer. It
// gives tests a window in which the client has the answer and has not finished.
func (s *Server) HoldAfterAnswer(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.hold == nil:
		s.hold = make(chan struct{})
	case !on && s.hold != nil:
		close(s.hold)
		s.hold = nil
	}
}

// RateLimitNext answers the next n logins "-3", whatever else holds; the account is not
// locked after them.
func (s *Server) RateLimitNext(n int) {
	s.mu.Lock()
	s.limitLeft = n
	s.mu.Unlock()
}

// LockLogins answers every login "-3" for d from now.
func (s *Server) LockLogins(d time.Duration) {
	s.mu.Lock()
	s.lockedUntil = time.Now().Add(d)
	s.mu.Unlock()
}

// ExpireActions makes every action issued so far expired.
func (s *Server) ExpireActions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	uploadertest.ExpireAll(s.identities, func(id *identity, at time.Time) { id.expires = at })
}

// SetActionTTL changes how long the actions issued from now on are valid.
func (s *Server) SetActionTTL(d time.Duration) {
	s.mu.Lock()
	s.ttl = d
	s.mu.Unlock()
}

// SetQuotaMB changes the account's space, in MB.
func (s *Server) SetQuotaMB(mb int64) {
	s.mu.Lock()
	s.quota = mb * MiB
	s.mu.Unlock()
}

// Counters returns what the emulator has seen.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters
	c.BytesReceived = s.up.BodyBytes("")
	return c
}

// LoginRequests returns the requests to the API (logins and anything else), oldest first,
// each recorded once answered.
func (s *Server) LoginRequests() []uploadertest.Record { return s.api.Requests() }

// UploadRequests returns the requests to the upload host, oldest first, each recorded once
// answered (or cut).
func (s *Server) UploadRequests() []uploadertest.Record { return s.up.Requests() }

// Files returns the stored files, oldest first.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.files[id])
	}
	return out
}

// Stats are the conformance suite's counters: Created counts stored files, BytesReceived
// every upload body byte read.
func (s *Server) Stats() uploadertest.Stats {
	c := s.Counters()
	return uploadertest.Stats{Created: c.Uploads, BytesReceived: c.BytesReceived}
}

// Stored opens the bytes stored for the file a result names (its ID is the file id).
func (s *Server) Stored(res uploader.Result) (io.ReadCloser, error) {
	s.mu.Lock()
	f, ok := s.files[res.ID]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("uploadgigtest: no file %q", res.ID)
	}
	if s.opts.Discard {
		return nil, errors.New("uploadgigtest: the emulator discards uploads")
	}
	return os.Open(s.path(f.ID))
}

func (s *Server) path(id string) string { return filepath.Join(s.opts.Dir, "files", id) }

// other answers what the platform does not serve.
func (s *Server) other(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// login is POST /api/get_upload_action.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.inLogin.Add(1) > 1 {
		s.mu.Lock()
		s.counters.OverlappingLogins++
		s.mu.Unlock()
	}
	defer s.inLogin.Add(-1)

	// Credentials are read from the body only, as PHP's $_POST: never from the query.
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user, pass := r.PostFormValue("user"), r.PostFormValue("pass")
	select {
	case <-time.After(s.opts.LoginDelay):
	case <-r.Context().Done():
		return
	}

	now := time.Now()
	s.mu.Lock()
	s.counters.Logins++
	recent := s.loginTimes[:0]
	for _, t := range s.loginTimes {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	s.loginTimes = append(recent, now)
	if len(s.loginTimes) > s.opts.LoginsPerMinute && !now.Before(s.lockedUntil) {
		s.lockedUntil = now.Add(s.opts.Lockout)
	}
	var code string
	var result any
	switch {
	case s.limitLeft > 0:
		s.limitLeft--
		s.counters.RateLimited++
		code, result = "-3", MsgRateLimited
	case now.Before(s.lockedUntil):
		s.counters.RateLimited++
		code, result = "-3", MsgRateLimited
	case subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.User)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Pass)) != 1:
		s.counters.LoginsRefused++
		code, result = "0", MsgBadLogin
	default:
		for k, id := range s.identities {
			if id.used || now.After(id.expires) {
				delete(s.identities, k) // refused as unknown from now on: the same answer
			}
		}
		tok := uploadertest.RandomHex(20)
		s.identities[tok] = identity{expires: now.Add(s.ttl)}
		s.counters.ActionsIssued++
		left := max(0, s.quota-s.used) / MiB
		var cmbs any = left
		if s.opts.CmbsAsString {
			cmbs = strconv.FormatInt(left, 10)
		}
		code = "1"
		result = map[string]any{"action": "http://" + s.upHost + "/upload?identity=" + tok, "cmbs": cmbs}
	}
	s.mu.Unlock()
	var codeJSON any = code
	if s.opts.CodeAsNumber {
		codeJSON, _ = strconv.Atoi(code)
	}
	uploadertest.WriteJSON(w, http.StatusOK, map[string]any{"code": codeJSON, "result": result})
}

// writeFault is an injected failure as the platform's web server shows one: an HTML page.
func writeFault(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", code, http.StatusText(code))
}

// answer writes an upload answer: the object keyed "0".
func answer(w http.ResponseWriter, fields map[string]any) {
	uploadertest.WriteJSON(w, http.StatusOK, map[string]any{"0": fields})
}

// refuse reads the rest of the body, as the platform's PHP does before its script runs, and
// answers the upload with ok:false and msg.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, msg string, identityFault bool) {
	_, err := io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	if identityFault {
		s.counters.IdentityRefusals++
	} else {
		s.counters.Refusals++
	}
	s.mu.Unlock()
	if err != nil {
		return // cut: there is no one to answer
	}
	answer(w, map[string]any{"ok": false, "message": msg})
}

// upload is POST /upload?identity=...: the raw file.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	slug, hasSlug := r.Header.Get("Slug"), len(r.Header.Values("Slug")) > 0
	s.mu.Lock()
	s.counters.UploadRequests++

	// The identity is spent by the first request that shows it, whatever becomes of it.
	tok := r.URL.Query().Get("identity")
	id, known := s.identities[tok]
	good := known && !id.used && time.Now().Before(id.expires)
	if known {
		id.used = true
		s.identities[tok] = id
	}
	left := s.quota - s.used
	s.mu.Unlock()
	if !good {
		s.refuse(w, r, MsgInvalidIdentity, true)
		return
	}
	if !hasSlug || strings.TrimSpace(slug) == "" {
		s.refuse(w, r, MsgNoFileName, false)
		return
	}
	name, ok := decodeSlug(slug)
	if !ok {
		s.refuse(w, r, MsgBadFileName, false)
		return
	}
	if r.ContentLength > left { // -1 (chunked) is checked once read
		s.refuse(w, r, MsgStorageFull, false)
		return
	}

	f, n, err := s.receive(r)
	if err != nil {
		return // a cut or short body: nothing is stored, and there is no one left to answer
	}
	s.mu.Lock()
	if n > s.quota-s.used {
		s.mu.Unlock()
		s.discard(f.ID)
		s.refuse(w, r, MsgStorageFull, false)
		return
	}
	f.Name, f.Size = name, n
	s.files[f.ID] = f
	s.order = append(s.order, f.ID)
	s.used += n
	s.counters.Uploads++
	hold := s.hold
	s.mu.Unlock()
	answer(w, map[string]any{
		"ok":        true,
		"message":   MsgUploaded,
		"url":       "http://" + s.apiHost + "/file/download/" + f.ID + "/" + url.PathEscape(name),
		"id":        f.ID,
		"file_name": name,
		"size":      n,
	})
	if hold != nil {
		http.NewResponseController(w).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}
}

// receive reads the body into a new file (or counts it, with Discard). It returns the file's
// record with its ID and SHA256 set, and the bytes read.
func (s *Server) receive(r *http.Request) (*File, int64, error) {
	f := &File{ID: uploadertest.RandomID(16)} // UploadGig's ids have 16 characters
	body := &countingReader{r: r.Body}
	if s.opts.Discard {
		_, err := io.Copy(io.Discard, body)
		return f, body.n, err
	}
	tmp := s.path(f.ID) + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return nil, 0, err
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	_, err = io.CopyBuffer(io.MultiWriter(out, h), body, buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(f.ID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, body.n, err
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	return f, body.n, nil
}

func (s *Server) discard(id string) {
	if !s.opts.Discard {
		_ = os.Remove(s.path(id))
	}
}

// decodeSlug reads a Slug header: ASCII, percent-encoded UTF-8.
func decodeSlug(slug string) (string, bool) {
	for i := 0; i < len(slug); i++ {
		if slug[i] < 0x20 || slug[i] >= 0x7f {
			return "", false
		}
	}
	name, err := url.PathUnescape(slug)
	if err != nil || name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "/\\\x00") {
		return "", false
	}
	return name, true
}

// download is GET /file/download/{id}/{name}: the page the answer's url points at.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f, ok := s.files[r.PathValue("id")]
	var c File
	if ok {
		c = *f
	}
	s.mu.Unlock()
	if !ok || c.Name != r.PathValue("name") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>%s</title><h1>%s</h1><p>UploadGig emulator: %d bytes stored as file %s.</p>\n",
		html.EscapeString(c.Name), html.EscapeString(c.Name), c.Size, html.EscapeString(c.ID))
}

// countingReader counts what it reads.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Names returns the stored files' names, sorted.
func (s *Server) Names() []string {
	var names []string
	for _, f := range s.Files() {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return names
}
