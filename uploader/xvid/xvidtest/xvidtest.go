// Package xvidtest emulates Xvid MediaHub (API v1) for tests and `chute demo`: OAuth2 client
// credentials, upload records whose form POST goes to a real S3 service (MinIO, or the strict
// in-process stand-in), the finish call and the upload's status, with Xvid's error answers.
//
// How it maps to the real service:
//   - The API listens on loopback (Server.URL). POST /v1/oauth2/token/ takes a form-encoded
//     body with grant_type=client_credential (singular), client_id, client_secret and scope
//     (comma-separated: mediahub, mediahub_write), and answers
//     {"access_token","expires_in"} with expires_in a string, as Xvid's example shows
//     (Options.ExpiresInNumber: a number). Tokens expire after Options.TokenTTL.
//   - POST /v1/files/uploads/?object_key=&pipeline_id= creates an upload record whose
//     form_post_params hold a real S3 POST policy signed by s3test (starts-with conditions on
//     $key under tmp/<pipeline_id>/, $name, $filename, $chunk and $chunks; acl and
//     success_action_status exact), in Xvid's field order, so that the S3 service itself
//     (MinIO, or the stand-in) checks the policy, the fields and the length. The signature
//     is SigV4 (policy, x-amz-algorithm, x-amz-credential, x-amz-date, x-amz-signature) where
//     Xvid's documented answer shows SigV2 (policy, signature, AWSAccessKeyId): a client that
//     posts the fields it is given, in order, cannot tell. form_post_url is the emulator's S3
//     front (Server.UploadListener), which checks the fields before the file against
//     form_post_params (refusing a missing one as AWS does, where MinIO lets a missing
//     starts-with field pass), forwards every byte to S3 unchanged and records the form; or
//     S3 itself with Options.Direct.
//   - PUT /v1/files/uploads/{id} with {"upload":{"nb_chunks":1}} checks that the object is in
//     S3 (with the size the form carried) and turns the record COMPLETING; after
//     Options.Completing it is COMPLETED and has a file id, or carries an error object
//     (FailCompletion). GET /v1/files/uploads/{id} shows the record.
//   - GET /v1/files/downloads/?file_id=&redirect=true redirects to a signed link of the
//     emulator that serves the file (without redirect=true it answers {"url":...}).
//   - Errors are {"error":{"error_code","error_message"}}: 400 0x0230001 Invalid Input,
//     403 0x0000003 Invalid access token, 404 0x0230002 Requested file does not exist,
//     500 0x0000001 Internal Error, as documented. Not documented, so chosen here: refused
//     client credentials are 403 0x0000002, a token without the write scope is 403
//     0x0000004, and the terminal status is COMPLETED.
//   - What a client does wrong is answered as Xvid would and also recorded (Problems): a wrong
//     grant type, a missing scope, writing without mediahub_write, a wrong or expired token,
//     a finish before the file, nb_chunks other than 1, a form that differs from
//     form_post_params, a chunked form; Unfinished lists files received but never finished.
//   - Fault knobs: FailNext (API statuses with Retry-After), FailUploads (S3 errors at the
//     front), ThrottleUploads (slow bodies), Listener and UploadListener (CutAfter: dropped
//     connections), Stall, HoldFinish (the moment between the form POST and the finish),
//     FailCompletion, ExpireTokens, Echo (refusals that quote the credentials back).
//     Requests and FormRequests are the request logs.
//   - Not mirrored: format=xml, jobs, pipelines' webhooks, HMAC-signed download queries.
package xvidtest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
)

// DefaultPipeline is the pipeline the emulator knows when Options.Pipelines is empty (the id
// in Xvid's documentation).
const DefaultPipeline = "53a1ac4914eaa8ffa4fce91b"

// Scopes the token endpoint grants.
const (
	ScopeRead  = "mediahub"
	ScopeWrite = "mediahub_write"
)

// Error codes of Xvid's error answers.
const (
	CodeInternal       = "0x0000001"
	CodeBadClient      = "0x0000002" // not documented
	CodeInvalidToken   = "0x0000003"
	CodeScope          = "0x0000004" // not documented
	CodeInvalidInput   = "0x0230001"
	CodeNotFound       = "0x0230002"
	maxObjectKeyLength = 1024 // S3's limit, less the tmp/<pipeline>/ prefix in practice
)

// Options configure a Server.
type Options struct {
	// ClientID and ClientSecret are the only client credentials the token endpoint accepts
	// (required).
	ClientID     string
	ClientSecret string
	// Pipelines are the pipeline ids uploads may name (default: DefaultPipeline).
	Pipelines []string
	// TokenTTL is how long an access token is valid (default 7200s, as Xvid's example).
	TokenTTL time.Duration
	// ExpiresInNumber answers expires_in as a JSON number instead of a string.
	ExpiresInNumber bool
	// S3 is where form POSTs go (required): MinIO, or the stand-in (s3test.StartWith picks).
	// Start MinIO with s3test.Options.Direct: the emulator's S3 front is the relay in front
	// of it (cuts, stalls, faults, the form's record), and a second relay would only keep
	// connections to MinIO open past a test's goroutine check.
	S3 *s3test.Server
	// PolicyTTL is how long an upload record's POST policy is valid (default 24h).
	PolicyTTL time.Duration
	// MaxSize is the content-length-range of the policies (default 64 GiB).
	MaxSize int64
	// Completing is how long a finished upload stays COMPLETING (default 100ms).
	Completing time.Duration
	// Direct makes form_post_url S3 itself instead of the recording front.
	Direct bool
	// Echo makes refusals of credentials quote them back (the client secret, the bearer
	// token), as careless servers do: a client must keep them out of its own messages.
	Echo bool
}

// Problem is something a client did that the real service refuses.
type Problem struct {
	// Kind is one of the Problem* constants.
	Kind string
	// Detail says what was seen.
	Detail string
}

// Kinds of Problem.
const (
	ProblemGrantType    = "grant_type"    // a token request with another grant_type
	ProblemScope        = "scope"         // a token request without scope, or an unknown one
	ProblemClient       = "client"        // refused client credentials
	ProblemWriteScope   = "write_scope"   // a write with a token lacking mediahub_write
	ProblemNoToken      = "no_token"      // an API call without a bearer token
	ProblemBadToken     = "bad_token"     // a token the emulator never issued
	ProblemExpiredToken = "expired_token" // a token past its expiry
	ProblemEarlyFinish  = "early_finish"  // a finish before S3 holds the file (or all of it)
	ProblemNbChunks     = "nb_chunks"     // a finish with nb_chunks other than 1
	ProblemBadInput     = "bad_input"     // any other rejected request
	ProblemForm         = "form"          // a form POST whose fields differ from form_post_params
	ProblemChunked      = "chunked"       // a form POST without Content-Length
)

// Counters are what the emulator has seen.
type Counters struct {
	// APIRequests counts requests to /v1/ (answered or not).
	APIRequests int
	// TokenRequests counts requests to the token endpoint; TokensIssued those answered with a token.
	TokenRequests int
	TokensIssued  int
	// UploadsCreated counts upload records created.
	UploadsCreated int
	// FinishRequests counts PUT /v1/files/uploads/{id} that arrived (before any hold);
	// Finished the uploads that went COMPLETING.
	FinishRequests int
	Finished       int
	// StatusRequests counts GET /v1/files/uploads/{id}.
	StatusRequests int
	// FormPosts counts form POSTs to the S3 front; FormPostsStored those S3 answered 201.
	FormPosts       int
	FormPostsStored int
	// FileBytes counts bytes of the file field that passed through the front, stored or not;
	// StoredBytes those of the form POSTs S3 stored (a form POST is stored whole or not at all).
	FileBytes   int64
	StoredBytes int64
}

// Upload is an upload record as the API shows it.
type Upload struct {
	ID             string      `json:"id"`
	Status         string      `json:"status"`
	ObjectKey      string      `json:"object_key"`
	NbChunks       int         `json:"nb_chunks"`
	Type           string      `json:"type"`
	FormPostURL    string      `json:"form_post_url"`
	FormPostParams FormParams  `json:"form_post_params"`
	Pipeline       IDRef       `json:"pipeline"`
	File           IDRef       `json:"file"`
	ExpiresAt      *int64      `json:"expires_at,omitempty"`
	Error          *ErrorValue `json:"error,omitempty"`
}

// IDRef is a reference to another object by id.
type IDRef struct {
	ID string `json:"id"`
}

// ErrorValue is Xvid's error object.
type ErrorValue struct {
	Code    string `json:"error_code"`
	Message string `json:"error_message"`
}

// FormParams are form_post_params in their order; they encode as a JSON object in that order.
type FormParams []s3test.FormField

// MarshalJSON writes the fields as one object, in order.
func (p FormParams) MarshalJSON() ([]byte, error) {
	return s3test.PostForm{Fields: p}.FieldsJSON()
}

// Get returns the value of field name.
func (p FormParams) Get(name string) (string, bool) {
	for _, f := range p {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// Server is the emulator.
type Server struct {
	// URL is the API's base URL, the provider's endpoint: http://127.0.0.1:PORT.
	URL string
	// Listener serves the API.
	Listener *uploadertest.Listener
	// UploadListener serves the S3 front that form_post_url points at (unless Direct).
	UploadListener *uploadertest.Listener

	opts    Options
	s3      *s3test.Server
	s3URL   string // form_post_url of S3 itself
	signKey []byte // signs the emulator's download links
	front   *front
	srvs    [2]*uploadertest.HTTPServer
	forward *http.Client
	// apiFaults and s3Faults are the knobs and request logs of the API and the S3 front.
	apiFaults uploadertest.Faults
	s3Faults  uploadertest.Faults

	mu         sync.Mutex
	tokens     map[string]token
	uploads    map[string]*upload
	byFile     map[string]string // file id -> upload id
	byKey      map[string]string // S3 key -> upload id
	problems   []Problem
	counters   Counters
	failFinal  string
	finishGate uploadertest.Gate
}

type token struct {
	scopes  map[string]bool
	expires time.Time
}

type upload struct {
	Upload
	s3Key      string
	posted     int64 // file bytes of the last form POST S3 stored; -1: none
	finishedAt time.Time
	failMsg    string
}

// StartTest starts the emulator for a test and closes it when the test ends. When opts.S3 is
// nil it gets an S3 of the test's own: MinIO started Direct, or the stand-in with
// CHUTE_TEST_NO_MINIO=1.
func StartTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.S3 == nil {
		opts.S3 = s3test.StartWith(t, s3test.Options{Direct: true})
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Start serves the emulator on two free loopback ports.
func Start(opts Options) (*Server, error) {
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("xvidtest: ClientID and ClientSecret are required")
	}
	if opts.S3 == nil {
		return nil, errors.New("xvidtest: S3 is required")
	}
	if len(opts.Pipelines) == 0 {
		opts.Pipelines = []string{DefaultPipeline}
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 7200 * time.Second
	}
	if opts.PolicyTTL <= 0 {
		opts.PolicyTTL = 24 * time.Hour
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 64 << 30
	}
	if opts.Completing <= 0 {
		opts.Completing = 100 * time.Millisecond
	}
	var err error
	s := &Server{
		opts:    opts,
		s3:      opts.S3,
		s3URL:   strings.TrimRight(opts.S3.URL(), "/") + "/" + opts.S3.Bucket() + "/",
		signKey: []byte(randomHex(16)),
		// One connection per form POST: no idle connection outlives a request, so that the
		// suite's goroutine leak check sees only the provider's.
		forward: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, WriteBufferSize: 256 << 10, ReadBufferSize: 64 << 10}},
		tokens:  make(map[string]token),
		uploads: make(map[string]*upload),
		byFile:  make(map[string]string),
		byKey:   make(map[string]string),
	}
	if s.Listener, err = uploadertest.Listen(); err != nil {
		return nil, fmt.Errorf("xvidtest: %w", err)
	}
	if s.UploadListener, err = uploadertest.Listen(); err != nil {
		s.Listener.Close()
		return nil, fmt.Errorf("xvidtest: %w", err)
	}
	s.URL = "http://" + s.Listener.Addr().String()
	s.front = &front{s: s}

	api := http.NewServeMux()
	api.HandleFunc("POST /v1/oauth2/token/{$}", s.token)
	api.HandleFunc("POST /v1/files/uploads/{$}", s.create)
	api.HandleFunc("PUT /v1/files/uploads/{id}", s.finish)
	api.HandleFunc("PUT /v1/files/uploads/{id}/{$}", s.finish)
	api.HandleFunc("GET /v1/files/uploads/{id}", s.get)
	api.HandleFunc("GET /v1/files/uploads/{id}/{$}", s.get)
	api.HandleFunc("GET /v1/files/downloads/{$}", s.download)
	api.HandleFunc("GET /v1/files/content/{file}", s.content)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "Requested resource does not exist")
	})
	s.apiFaults.Write = func(w http.ResponseWriter, status int) {
		writeError(w, status, CodeInternal, "injected fault: "+http.StatusText(status))
	}
	s.s3Faults.Write = func(w http.ResponseWriter, status int) {
		writeS3Error(w, status, "InternalError", "injected fault: "+http.StatusText(status))
	}
	s.srvs[0] = uploadertest.Serve(s.Listener, s.apiFaults.Wrap(s.apiGate(api)))
	s.srvs[1] = uploadertest.Serve(s.UploadListener, s.s3Faults.Wrap(s.front))
	return s, nil
}

// Close stops both listeners and waits for their goroutines.
func (s *Server) Close() error {
	s.Stall(false)
	s.HoldFinish(false)
	var errs []error
	for _, srv := range s.srvs {
		errs = append(errs, srv.Close())
	}
	s.forward.CloseIdleConnections()
	return errors.Join(errs...)
}

// FailNext answers the next n API requests (token endpoint included) with status, and a
// Retry-After of retryAfter when it is > 0. The S3 front is not affected: see FailUploads.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.apiFaults.FailNext(n, status, retryAfter)
}

// FailUploads answers the next n form POSTs at the S3 front with status and an S3 XML error,
// without forwarding them.
func (s *Server) FailUploads(n, status int) { s.s3Faults.FailNext(n, status, 0) }

// ThrottleUploads slows the S3 front to about bytesPerSec of request body (0: full speed).
func (s *Server) ThrottleUploads(bytesPerSec int64) { s.s3Faults.Throttle(bytesPerSec) }

// Stall holds every request, to the API and the S3 front, unanswered until Stall(false).
func (s *Server) Stall(on bool) {
	s.apiFaults.Stall(on)
	s.s3Faults.Stall(on)
}

// Requests are the API requests received, oldest first.
func (s *Server) Requests() []uploadertest.Record { return s.apiFaults.Requests() }

// FormRequests are the requests the S3 front received, oldest first.
func (s *Server) FormRequests() []uploadertest.Record { return s.s3Faults.Requests() }

// HoldFinish holds finish requests (PUT /v1/files/uploads/{id}) unanswered, after counting
// them, until HoldFinish(false): the moment between the form POST and the finish.
func (s *Server) HoldFinish(on bool) { s.finishGate.Stall(on) }

// FailCompletion makes the uploads finished from now on end with an error object holding
// msg instead of COMPLETED; "" stops it.
func (s *Server) FailCompletion(msg string) {
	s.mu.Lock()
	s.failFinal = msg
	s.mu.Unlock()
}

// ExpireTokens makes every access token issued so far expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	uploadertest.ExpireAll(s.tokens, func(t *token, at time.Time) { t.expires = at })
}

// Counters returns what the emulator has seen.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}

// Problems returns what clients did wrong, in order.
func (s *Server) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Problem(nil), s.problems...)
}

// ProblemsOf returns the problems of one kind.
func (s *Server) ProblemsOf(kind string) []Problem {
	var out []Problem
	for _, p := range s.Problems() {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// Upload returns upload record id as GET shows it.
func (s *Server) Upload(id string) (Upload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads[id]
	if !ok {
		return Upload{}, false
	}
	return s.viewLocked(u, time.Now()), true
}

// Uploads returns every upload record, in no particular order.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]Upload, 0, len(s.uploads))
	for _, u := range s.uploads {
		out = append(out, s.viewLocked(u, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Unfinished lists the upload records whose file S3 holds but that were never finished: a
// file a client left behind.
func (s *Server) Unfinished(ctx context.Context) ([]Upload, error) {
	s.mu.Lock()
	now := time.Now()
	var open []*upload
	for _, u := range s.uploads {
		if u.finishedAt.IsZero() {
			open = append(open, u)
		}
	}
	s.mu.Unlock()
	var out []Upload
	for _, u := range open {
		_, err := s.s3.Stat(ctx, u.s3Key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xvidtest: stat %s in S3: %w", u.s3Key, err)
		}
		s.mu.Lock()
		if s.byKey[u.s3Key] == u.ID { // a later record for the same key owns the object
			out = append(out, s.viewLocked(u, now))
		}
		s.mu.Unlock()
	}
	return out, nil
}

// Stats are the conformance suite's counters: Created counts upload records, BytesReceived
// the file bytes of the form POSTs S3 stored (an S3 form POST is accepted whole or not at
// all: a cut one adds nothing).
func (s *Server) Stats() uploadertest.Stats {
	c := s.Counters()
	return uploadertest.Stats{Created: c.UploadsCreated, BytesReceived: c.StoredBytes}
}

// Stored opens the object S3 holds for the file a result names (its ID is the file id).
func (s *Server) Stored(ctx context.Context, res uploader.Result) (io.ReadCloser, error) {
	s.mu.Lock()
	u := s.uploads[s.byFile[res.ID]]
	key := ""
	if u != nil {
		key = u.s3Key
	}
	s.mu.Unlock()
	if u == nil {
		return nil, fmt.Errorf("xvidtest: no file %q", res.ID)
	}
	rc, err := s.s3.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("xvidtest: file %s: %w", res.ID, err)
	}
	return rc, nil
}

func (s *Server) problem(kind, format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, Problem{Kind: kind, Detail: fmt.Sprintf(format, args...)})
	s.mu.Unlock()
}

// apiGate counts API requests and refuses formats the emulator does not speak.
func (s *Server) apiGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counters.APIRequests++
		s.mu.Unlock()
		if f := r.URL.Query().Get("format"); f != "" && f != "json" {
			writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: the emulator answers format=json only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	uploadertest.WriteJSON(w, status, map[string]ErrorValue{"error": {Code: code, Message: msg}})
}

// token is POST /v1/oauth2/token/.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counters.TokenRequests++
	s.mu.Unlock()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		s.problem(ProblemBadInput, "token request with Content-Type %q", r.Header.Get("Content-Type"))
		writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: the body must be form-encoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: "+err.Error())
		return
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != "client_credential" {
		s.problem(ProblemGrantType, "grant_type %q", gt)
		writeError(w, http.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("Invalid Input: unsupported grant_type %q", gt))
		return
	}
	if subtle.ConstantTimeCompare([]byte(f.Get("client_id")), []byte(s.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(s.opts.ClientSecret)) != 1 {
		s.problem(ProblemClient, "client %q refused", f.Get("client_id"))
		msg := "Invalid client credentials"
		if s.opts.Echo {
			msg += fmt.Sprintf(" (client_id %q, client_secret %q)", f.Get("client_id"), f.Get("client_secret"))
		}
		writeError(w, http.StatusForbidden, CodeBadClient, msg)
		return
	}
	scopes := map[string]bool{}
	for _, sc := range strings.Split(f.Get("scope"), ",") {
		switch sc = strings.TrimSpace(sc); sc {
		case "":
		case ScopeRead, ScopeWrite:
			scopes[sc] = true
		default:
			s.problem(ProblemScope, "unknown scope %q", sc)
			writeError(w, http.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("Invalid Input: unknown scope %q", sc))
			return
		}
	}
	if len(scopes) == 0 {
		s.problem(ProblemScope, "no scope")
		writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: scope is required")
		return
	}
	ttl := s.opts.TokenTTL
	if v := f.Get("expires_in"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: expires_in must be a positive number of seconds")
			return
		}
		if d := time.Duration(n) * time.Second; d < ttl {
			ttl = d
		}
	}
	tok := randomHex(20)
	s.mu.Lock()
	s.tokens[tok] = token{scopes: scopes, expires: time.Now().Add(ttl)}
	s.counters.TokensIssued++
	s.mu.Unlock()
	secs := int64((ttl + time.Second - 1) / time.Second)
	var expiresIn any = strconv.FormatInt(secs, 10)
	if s.opts.ExpiresInNumber {
		expiresIn = secs
	}
	uploadertest.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": expiresIn})
}

// authorize checks the bearer token and, for a write, its scope; it answers and returns false
// when the call may not go on.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, write bool) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	if auth == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		s.problem(ProblemNoToken, "%s %s without a bearer token", r.Method, r.URL.Path)
		writeError(w, http.StatusForbidden, CodeInvalidToken, "Invalid access token")
		return false
	}
	s.mu.Lock()
	t, ok := s.tokens[tok]
	s.mu.Unlock()
	echo := ""
	if s.opts.Echo {
		echo = " (Authorization: " + auth + ")"
	}
	switch {
	case !ok:
		s.problem(ProblemBadToken, "%s %s with a token never issued", r.Method, r.URL.Path)
		writeError(w, http.StatusForbidden, CodeInvalidToken, "Invalid access token"+echo)
		return false
	case !time.Now().Before(t.expires):
		s.problem(ProblemExpiredToken, "%s %s with a token expired %s ago", r.Method, r.URL.Path, time.Since(t.expires).Round(time.Millisecond))
		writeError(w, http.StatusForbidden, CodeInvalidToken, "Invalid access token"+echo)
		return false
	case write && !t.scopes[ScopeWrite]:
		s.problem(ProblemWriteScope, "%s %s with a token without %s", r.Method, r.URL.Path, ScopeWrite)
		writeError(w, http.StatusForbidden, CodeScope, "Access denied: the token lacks the mediahub_write scope"+echo)
		return false
	case !write && !t.scopes[ScopeRead] && !t.scopes[ScopeWrite]:
		s.problem(ProblemWriteScope, "%s %s with a token without %s", r.Method, r.URL.Path, ScopeRead)
		writeError(w, http.StatusForbidden, CodeScope, "Access denied: the token lacks the mediahub scope"+echo)
		return false
	}
	return true
}

// create is POST /v1/files/uploads/?object_key=&pipeline_id=[&ip=][&expires_at=].
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, true) {
		return
	}
	q := r.URL.Query()
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.problem(ProblemBadInput, "create upload: %s", msg)
		writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: "+msg)
	}
	key, pipeline := q.Get("object_key"), q.Get("pipeline_id")
	switch {
	case pipeline == "":
		bad("pipeline_id is required")
		return
	case key == "":
		bad("object_key is required")
		return
	case len(key) > maxObjectKeyLength:
		bad("object_key is longer than %d bytes", maxObjectKeyLength)
		return
	case strings.HasPrefix(key, "/") || strings.Contains(key, "//") || strings.ContainsAny(key, "\x00\r\n") || !validUTF8(key):
		bad("object_key %q is not a valid key", key)
		return
	}
	var expiresAt *int64
	if v := q.Get("expires_at"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			bad("expires_at must be a Unix time, or 0 for never")
			return
		}
		expiresAt = &n
	}
	if v := q.Get("ip"); v != "" {
		if _, err := strconv.ParseUint(v, 10, 32); err != nil {
			bad("ip must be an IPv4 address as an integer")
			return
		}
	}
	known := false
	for _, p := range s.opts.Pipelines {
		known = known || p == pipeline
	}
	if !known {
		s.problem(ProblemBadInput, "create upload: unknown pipeline %q", pipeline)
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("Requested pipeline %s does not exist", pipeline))
		return
	}
	prefix := "tmp/" + pipeline + "/"
	s3Key := prefix + key
	form, err := s.s3.PresignPost(s3test.PostPolicy{
		Fields: []s3test.FormField{
			{Name: "name", Value: lastSegment(key), StartsWith: true},
			{Name: "success_action_status", Value: "201"},
			{Name: "filename", Value: "", StartsWith: true},
			{Name: "chunk", Value: "0", StartsWith: true},
			{Name: "chunks", Value: "1", StartsWith: true},
			{Name: "policy"}, // the signing fields go here, as in Xvid's answer
			{Name: "key", Value: s3Key, StartsWith: true, Prefix: prefix},
			{Name: "acl", Value: "private"},
		},
		Expires: s.opts.PolicyTTL,
		MaxSize: s.opts.MaxSize,
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, "Internal Error")
		return
	}
	formURL := s.s3URL
	if !s.opts.Direct {
		formURL = "http://" + s.UploadListener.Addr().String() + "/" + s.s3.Bucket() + "/"
	}
	u := &upload{
		Upload: Upload{
			ID:             randomHex(12),
			Status:         "UPLOADING",
			ObjectKey:      key,
			Type:           "S3",
			FormPostURL:    formURL,
			FormPostParams: FormParams(form.Fields),
			Pipeline:       IDRef{ID: pipeline},
			File:           IDRef{ID: randomHex(12)},
			ExpiresAt:      expiresAt,
		},
		s3Key:  s3Key,
		posted: -1,
	}
	s.mu.Lock()
	// A second record for the same key replaces the first as the owner of the object.
	s.uploads[u.ID] = u
	s.byFile[u.File.ID] = u.ID
	s.byKey[s3Key] = u.ID
	s.counters.UploadsCreated++
	view := s.viewLocked(u, time.Now())
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, map[string]Upload{"upload": view})
}

func lastSegment(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[i+1:]
	}
	return key
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*upload, bool) {
	s.mu.Lock()
	u, ok := s.uploads[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		s.problem(ProblemBadInput, "%s %s: no such upload", r.Method, r.URL.Path)
		writeError(w, http.StatusNotFound, CodeNotFound, "Requested file does not exist")
	}
	return u, ok
}

// finish is PUT /v1/files/uploads/{id} with {"upload":{"nb_chunks":1}}.
func (s *Server) finish(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counters.FinishRequests++
	s.mu.Unlock()
	if !s.finishGate.Wait(r.Context()) {
		return
	}
	if !s.authorize(w, r, true) {
		return
	}
	u, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var body struct {
		Upload *struct {
			NbChunks *int `json:"nb_chunks"`
		} `json:"upload"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil || body.Upload == nil || body.Upload.NbChunks == nil {
		s.problem(ProblemNbChunks, "finish %s without upload.nb_chunks", u.ID)
		writeError(w, http.StatusBadRequest, CodeInvalidInput, `Invalid Input: the body must be {"upload":{"nb_chunks":N}}`)
		return
	}
	if n := *body.Upload.NbChunks; n != 1 {
		s.problem(ProblemNbChunks, "finish %s with nb_chunks %d for a one-chunk upload", u.ID, n)
		writeError(w, http.StatusBadRequest, CodeInvalidInput, fmt.Sprintf("Invalid Input: nb_chunks is %d, the upload has 1 chunk", n))
		return
	}
	s.mu.Lock()
	already := !u.finishedAt.IsZero()
	posted := u.posted
	s.mu.Unlock()
	if !already {
		info, err := s.s3.Stat(r.Context(), u.s3Key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			s.problem(ProblemEarlyFinish, "finish %s before S3 holds %s", u.ID, u.s3Key)
			writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: the file has not been uploaded")
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, CodeInternal, "Internal Error")
			return
		case posted >= 0 && info.Size != posted:
			s.problem(ProblemEarlyFinish, "finish %s: S3 holds %d bytes, the form carried %d", u.ID, info.Size, posted)
			writeError(w, http.StatusBadRequest, CodeInvalidInput, "Invalid Input: the file has not been uploaded completely")
			return
		}
		s.mu.Lock()
		if u.finishedAt.IsZero() {
			u.finishedAt, u.failMsg, u.NbChunks = time.Now(), s.failFinal, 1
			s.counters.Finished++
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	view := s.viewLocked(u, time.Now())
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, map[string]Upload{"upload": view})
}

// get is GET /v1/files/uploads/{id}.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counters.StatusRequests++
	s.mu.Unlock()
	if !s.authorize(w, r, false) {
		return
	}
	u, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	view := s.viewLocked(u, time.Now())
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, map[string]Upload{"upload": view})
}

// download is GET /v1/files/downloads/?file_id=&redirect=true.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, false) {
		return
	}
	id := r.URL.Query().Get("file_id")
	s.mu.Lock()
	u := s.uploads[s.byFile[id]]
	ready := u != nil && s.viewLocked(u, time.Now()).Status == "COMPLETED"
	s.mu.Unlock()
	if !ready {
		writeError(w, http.StatusNotFound, CodeNotFound, "Requested file does not exist")
		return
	}
	exp := time.Now().Add(time.Hour).Unix()
	link := fmt.Sprintf("%s/v1/files/content/%s?expires=%d&signature=%s", s.URL, url.PathEscape(id), exp, s.sign(id, exp))
	if r.URL.Query().Get("redirect") == "true" {
		http.Redirect(w, r, link, http.StatusFound)
		return
	}
	uploadertest.WriteJSON(w, http.StatusOK, map[string]string{"url": link})
}

// sign is the signature of a download link for file id, valid until exp.
func (s *Server) sign(id string, exp int64) string {
	m := hmac.New(sha256.New, s.signKey)
	fmt.Fprintf(m, "%s\n%d", id, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// content serves a file from a signed download link, as the real service's redirect target
// (a signed S3 URL) does.
func (s *Server) content(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file")
	exp, _ := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	if !hmac.Equal([]byte(r.URL.Query().Get("signature")), []byte(s.sign(id, exp))) || time.Now().Unix() > exp {
		writeError(w, http.StatusForbidden, CodeInvalidToken, "Invalid or expired download link")
		return
	}
	rc, err := s.Stored(r.Context(), uploader.Result{ID: id})
	if err != nil {
		writeError(w, http.StatusNotFound, CodeNotFound, "Requested file does not exist")
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = io.Copy(w, rc)
}

// viewLocked renders u as the API shows it at now.
func (s *Server) viewLocked(u *upload, now time.Time) Upload {
	v := u.Upload
	v.FormPostParams = append(FormParams(nil), u.FormPostParams...)
	switch {
	case u.finishedAt.IsZero():
		v.Status = "UPLOADING"
	case now.Before(u.finishedAt.Add(s.opts.Completing)):
		v.Status = "COMPLETING"
	case u.failMsg != "":
		v.Status = "FAILED"
		v.Error = &ErrorValue{Code: CodeInternal, Message: u.failMsg}
	default:
		v.Status = "COMPLETED"
	}
	return v
}

// formPosted records a form POST that S3 answered 201 for key, with the file's size.
func (s *Server) formPosted(key string, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters.FormPostsStored++
	s.counters.StoredBytes += size
	if u := s.uploads[s.byKey[key]]; u != nil {
		u.posted = size
	}
}

// expectedForm returns the form_post_params of the upload that owns key.
func (s *Server) expectedForm(key string) (FormParams, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.uploads[s.byKey[key]]
	if u == nil {
		return nil, false
	}
	return u.FormPostParams, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
