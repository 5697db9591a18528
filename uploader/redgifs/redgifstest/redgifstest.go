// Package redgifstest emulates the RedGIFs upload API for tests and `chute demo`: tickets
// (POST /v2/upload) keyed by the file's md5, their status, gif creation and the gif's
// encoding status, with RedGIFs' bearer-token check and its `error` objects. The signed PUT
// URLs a ticket hands out are presigned URLs of a real S3 server (s3test: MinIO in tests, its
// in-process stand-in where CHUTE_TEST_NO_MINIO=1 and in the demo).
//
// How it maps to the real service:
//   - The API listens on loopback (Server.URL). By default the signed URLs point at a relay on
//     a second loopback listener (Server.UploadListener) that forwards every PUT to the S3
//     server, so that the emulator records each PUT, can cut it half-way, and rejects what AWS
//     S3 rejects before MinIO sees it (chunked or missing Content-Length: 411; an
//     Authorization header beside the query signature: 400). The signature, its expiry and
//     the stored bytes are MinIO's own business; when the bucket breaks the relay's
//     connection (an early refusal), the relay breaks the client's. Options.Direct hands out
//     MinIO's URLs unchanged instead (for benchmarks: nothing in between). StartS3 starts the
//     S3 server for a test, without s3test's own relay.
//   - A ticket's status is computed when it is asked: "waiting" until the object is in the
//     bucket; then, if its md5 (the ETag of a single PUT) is the ticket's, "pending" for
//     Options.ReadyAfter and then "ready"; otherwise "failed". FailTickets makes new tickets
//     fail once their file arrives, with the platform's words.
//   - Asking for a ticket with an md5 the emulator knows (a ticket that received that file, or
//     one given to KnowMD5) answers method and url null (and status "ready" in the 2023
//     shape): no PUT is needed. Asking again with the md5 of a ticket still waiting answers
//     the same ticket with a freshly signed URL.
//   - Polls of one ticket's status, or of one gif's encoding status, closer than 1 s apart
//     are counted as FastPolls and answered normally.
//   - Every request is recorded (APIRequests, UploadRequests) and counted (Counters). Fault
//     knobs: FailNext (any status, Retry-After), RateLimitNext (429 with error.delay only in
//     the body), ExpireNextURLs (URLs S3 refuses as expired), FailNextPut, Throttle, Stall,
//     StallAfterPut and HoldNextPutAnswer (to kill a client right after its PUT's 200),
//     FailTickets, FailEncoding, KnowMD5.
//   - Not mirrored: OAuth (any request with the configured token is a user token with the
//     upload scope), galleries, the rest of the API, real encoding.
package redgifstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/uploadertest"
	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
)

// Shape is the form of POST /v2/upload's answer.
type Shape int

const (
	// Shape2023 answers {id, method, url, status} (the "Uploading videos" page of 2023).
	Shape2023 Shape = iota
	// Shape2022 answers {id, method, url} (the "Uploading files" page of 2022).
	Shape2022
)

// Options configure a Server.
type Options struct {
	// S3 holds the uploaded files (required): s3test.Start's MinIO, or its stand-in.
	S3 *s3test.Server
	// Token is the only user token the API accepts (required).
	Token string
	// Shape is the form of the ticket answer (default Shape2023).
	Shape Shape
	// ReadyWithURL keeps method and url in the answer for a known md5 (with status "ready"),
	// so that a client must heed the status, not only null URLs.
	ReadyWithURL bool
	// URLTTL is how long a signed URL is valid (default 15 minutes).
	URLTTL time.Duration
	// ReadyAfter is how long a ticket stays "pending" once its file has arrived (default 0).
	ReadyAfter time.Duration
	// EncodeAfter is how long a gif encodes (default 0: complete when first asked).
	EncodeAfter time.Duration
	// GifStatusKey is the key of the gif status answer: "task" (default) or "status".
	GifStatusKey string
	// Direct hands out the bucket's URLs as they are, with no relay in between: nothing is
	// recorded or checked on the PUT, and UploadListener is nil.
	Direct bool
}

// Counters are what the emulator has seen.
type Counters struct {
	// APIRequests counts requests to the API (answered or not).
	APIRequests int
	// TicketAnswers counts answers to POST /v2/upload; TicketsCreated the tickets made.
	TicketAnswers  int
	TicketsCreated int
	// KnownAnswers counts ticket answers that needed no PUT.
	KnownAnswers int
	// URLsIssued counts signed URLs handed out.
	URLsIssued int
	// Puts counts PUTs that ended at the relay, PutsOK those the bucket answered 200.
	Puts   int
	PutsOK int
	// PutBytes counts PUT body bytes the relay read from clients (as they arrive).
	PutBytes int64
	// StatusPolls counts ticket status requests; GifPolls gif status requests.
	StatusPolls int
	GifPolls    int
	// FastPolls counts status and gif polls less than 1 s after the previous one of the same
	// ticket or gif.
	FastPolls int
	// GifsCreated counts gifs created (a ticket submitted twice makes two).
	GifsCreated int
	// RateLimited counts 429 answers; Unauthorized 401 answers.
	RateLimited  int
	Unauthorized int
}

// Ticket is a ticket as the emulator holds it.
type Ticket struct {
	ID  string
	MD5 string
	// Status is waiting, pending, ready or failed, as of the last time it was asked.
	Status string
	// Error is the platform's words for a failed ticket.
	Error string
	// Key is the object's key in the bucket ("" for a ticket made by KnowMD5).
	Key string
	// Size and ContentType are the received object's.
	Size        int64
	ContentType string
	// Submits counts POST /v2/gifs/submit of this ticket that made a gif.
	Submits int
}

// Gif is a gif as the emulator holds it.
type Gif struct {
	ID     string
	Ticket string
	// Fields of the submit request.
	KeepAudio   bool
	Private     bool
	Tags        []string
	Description string
	Niches      []string
	Created     time.Time
}

// Server is the emulator.
type Server struct {
	// URL is the API's base URL, the provider's endpoint: http://127.0.0.1:PORT.
	URL string
	// Listener serves the API.
	Listener *uploadertest.Listener
	// UploadListener serves the relay in front of the bucket, where PUTs arrive (nil with
	// Options.Direct).
	UploadListener *uploadertest.Listener

	opts     Options
	relay    string   // http://host:port of the relay
	upstream *url.URL // the bucket's scheme and host, where the relay forwards to
	srvs     []*uploadertest.HTTPServer
	// api and s3 are the fault knobs and request logs of the API and of the relay.
	api, s3 uploadertest.Faults
	// putsOpen counts PUTs in progress at the relay, so that Stats can wait for them to end.
	putsOpen atomic.Int64
	// stallAfterPut stalls the API as the next PUT is answered 200; holdPut holds that
	// answer itself, on putHold.
	stallAfterPut, holdPut atomic.Bool
	putHold                uploadertest.Gate

	mu          sync.Mutex
	tickets     map[string]*ticket
	byMD5       map[string]string // md5 -> the ticket that holds (or awaits) that file
	gifs        map[string]*gif
	failTickets string
	failEncode  string
	expireNext  int
	limitLeft   int
	limitDelay  int
	counters    Counters
}

type ticket struct {
	Ticket
	failMsg  string    // fails with this once its file arrives
	received time.Time // when its file was seen in the bucket
	lastPoll time.Time
}

type gif struct {
	Gif
	failMsg  string
	lastPoll time.Time
}

// Start serves the emulator on free loopback ports.
func Start(opts Options) (*Server, error) {
	if opts.S3 == nil {
		return nil, errors.New("redgifstest: S3 is required")
	}
	if opts.Token == "" {
		return nil, errors.New("redgifstest: Token is required")
	}
	if opts.URLTTL <= 0 {
		opts.URLTTL = 15 * time.Minute
	}
	switch opts.GifStatusKey {
	case "":
		opts.GifStatusKey = "task"
	case "task", "status":
	default:
		return nil, fmt.Errorf("redgifstest: GifStatusKey %q is not task or status", opts.GifStatusKey)
	}
	s := &Server{
		opts:    opts,
		tickets: make(map[string]*ticket),
		byMD5:   make(map[string]string),
		gifs:    make(map[string]*gif),
	}
	var err error
	if s.Listener, err = uploadertest.Listen(); err != nil {
		return nil, fmt.Errorf("redgifstest: %w", err)
	}
	s.URL = "http://" + s.Listener.Addr().String()
	api := http.NewServeMux()
	api.HandleFunc("POST /v2/upload", s.ticketAnswer)
	api.HandleFunc("GET /v2/upload/{id}/status", s.ticketStatus)
	api.HandleFunc("POST /v2/gifs/submit", s.submit)
	api.HandleFunc("GET /v1/gifs/fetch/status/{id}", s.gifStatus)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, map[string]any{"code": "NotFound", "message": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	s.api.Write = func(w http.ResponseWriter, status int) {
		writeError(w, status, map[string]any{"name": http.StatusText(status), "detail": "injected fault"})
	}
	s.srvs = append(s.srvs, uploadertest.Serve(s.Listener, s.api.Wrap(s.apiGate(api))))

	if !opts.Direct {
		if s.UploadListener, err = uploadertest.Listen(); err != nil {
			s.Close()
			return nil, fmt.Errorf("redgifstest: %w", err)
		}
		s.relay = "http://" + s.UploadListener.Addr().String()
		if s.upstream, err = url.Parse(opts.S3.URL()); err != nil {
			s.Close()
			return nil, fmt.Errorf("redgifstest: the S3 server's URL: %w", err)
		}
		s.s3.Write = func(w http.ResponseWriter, status int) {
			writeS3Error(w, status, "ServiceUnavailable", "injected fault")
		}
		s.srvs = append(s.srvs, uploadertest.Serve(s.UploadListener, s.countPuts(s.s3.Wrap(s.relayHandler()))))
	}
	return s, nil
}

// Close stops the listeners and waits for their goroutines.
func (s *Server) Close() error {
	s.Stall(false)
	var errs []error
	for _, srv := range s.srvs {
		errs = append(errs, srv.Close())
	}
	return errors.Join(errs...)
}

// FailNext answers the next n API requests with status (and Retry-After when
// retryAfter > 0), the error in RedGIFs' form. The relay is not affected: see FailNextPut.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.api.FailNext(n, status, retryAfter)
}

// FailNextPut answers the next n requests to the relay with status, in S3's XML form,
// without passing them on to the bucket.
func (s *Server) FailNextPut(n, status int) { s.s3.FailNext(n, status, 0) }

// StallAfterPut stalls the API (as Stall(true) does) the moment the next PUT is answered 200,
// before the client can see the answer: a test can then kill the client right after the PUT,
// before it reaches the API again. Stall(false) releases it.
func (s *Server) StallAfterPut() { s.stallAfterPut.Store(true) }

// HoldNextPutAnswer holds the answer of the next PUT the bucket accepted (200) until
// Stall(false), and stalls the API meanwhile: the file is in the bucket, and the client has
// not heard so.
func (s *Server) HoldNextPutAnswer() { s.holdPut.Store(true) }

// Throttle slows the PUT bodies the relay reads to bytesPerSecond (0: no limit).
func (s *Server) Throttle(bytesPerSecond int64) { s.s3.Throttle(bytesPerSecond) }

// RateLimitNext answers the next n API requests 429 with the wait only in the body
// (error.delay, in seconds), as RedGIFs does: no Retry-After header.
func (s *Server) RateLimitNext(n int, delaySeconds int) {
	s.mu.Lock()
	s.limitLeft, s.limitDelay = n, delaySeconds
	s.mu.Unlock()
}

// ExpireNextURLs makes the next n signed URLs expired when handed out (correctly signed an
// hour ago, valid for a minute), so that the bucket itself refuses the PUT (403).
func (s *Server) ExpireNextURLs(n int) {
	s.mu.Lock()
	s.expireNext = n
	s.mu.Unlock()
}

// FailTickets makes the tickets created from now on fail with msg once their file arrives;
// "" stops it.
func (s *Server) FailTickets(msg string) {
	s.mu.Lock()
	s.failTickets = msg
	s.mu.Unlock()
}

// FailEncoding makes the gifs created from now on end their encoding in "error" with msg;
// "" stops it.
func (s *Server) FailEncoding(msg string) {
	s.mu.Lock()
	s.failEncode = msg
	s.mu.Unlock()
}

// KnowMD5 makes the platform know a file with this md5 already, under a new ready ticket,
// whose id it returns.
func (s *Server) KnowMD5(md5hex string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &ticket{Ticket: Ticket{ID: newTicketID(), MD5: strings.ToLower(md5hex), Status: "ready"}}
	t.received = time.Now().Add(-s.opts.ReadyAfter)
	s.tickets[t.ID] = t
	s.byMD5[t.MD5] = t.ID
	return t.ID
}

// Stall holds every request, to the API and the relay, unanswered until Stall(false).
func (s *Server) Stall(on bool) {
	s.api.Stall(on)
	s.s3.Stall(on)
	if !on {
		s.putHold.Stall(false)
	}
}

// Counters returns what the emulator has seen.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	c := s.counters
	s.mu.Unlock()
	c.PutBytes = s.s3.BodyBytes(http.MethodPut)
	return c
}

// APIRequests returns the requests the API received, oldest first.
func (s *Server) APIRequests() []uploadertest.Record { return s.api.Requests() }

// UploadRequests returns the requests the relay received (the PUTs), oldest first.
func (s *Server) UploadRequests() []uploadertest.Record { return s.s3.Requests() }

// Stats are the conformance suite's counters: Created counts tickets and gifs,
// BytesReceived the PUT body bytes that reached the relay. It first waits (up to 5 s) for
// PUTs in progress to end, so that a PUT the client has just abandoned is counted whole.
func (s *Server) Stats() uploadertest.Stats {
	for deadline := time.Now().Add(5 * time.Second); s.putsOpen.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	c := s.Counters()
	return uploadertest.Stats{Created: c.TicketsCreated + c.GifsCreated, BytesReceived: c.PutBytes}
}

// Ticket returns ticket id.
func (s *Server) Ticket(id string) (Ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		return Ticket{}, false
	}
	return t.Ticket, true
}

// Gif returns gif id.
func (s *Server) Gif(id string) (Gif, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gifs[id]
	if !ok {
		return Gif{}, false
	}
	return g.Gif, true
}

// Gifs returns every gif created, in no order.
func (s *Server) Gifs() []Gif {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Gif, 0, len(s.gifs))
	for _, g := range s.gifs {
		out = append(out, g.Gif)
	}
	return out
}

// Stored opens the bytes in the bucket for the gif a result names (its ID is the gif id).
func (s *Server) Stored(res uploader.Result) (io.ReadCloser, error) {
	s.mu.Lock()
	g, ok := s.gifs[res.ID]
	var key string
	if ok {
		if t := s.tickets[g.Ticket]; t != nil {
			key = t.Key
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return nil, fmt.Errorf("redgifstest: no gif %q", res.ID)
	case key == "":
		return nil, fmt.Errorf("redgifstest: gif %q has no uploaded file (its ticket was known by md5)", res.ID)
	}
	return s.opts.S3.Open(context.Background(), key)
}

// apiGate counts, rate-limits when asked and checks the token before the API proper (the
// stall and FailNext are uploadertest.Faults', before it).
func (s *Server) apiGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counters.APIRequests++
		s.mu.Unlock()
		if s.rateLimit(w) {
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, tok, _ := strings.Cut(auth, " ")
		switch {
		case auth == "":
			s.count(func(c *Counters) { c.Unauthorized++ })
			writeError(w, http.StatusUnauthorized, map[string]any{"code": "AuthorizationHeaderMissing", "description": "The Authorization header is missing"})
			return
		case !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token)) != 1:
			s.count(func(c *Counters) { c.Unauthorized++ })
			// The real service echoes what it got in some messages; clients must not repeat it.
			writeError(w, http.StatusUnauthorized, map[string]any{"code": "AuthException", "message": "invalid authorization data: " + auth, "status": 401})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) count(f func(*Counters)) {
	s.mu.Lock()
	f(&s.counters)
	s.mu.Unlock()
}

// rateLimit answers 429 with the delay in the body, if RateLimitNext asked for it.
func (s *Server) rateLimit(w http.ResponseWriter) bool {
	s.mu.Lock()
	if s.limitLeft <= 0 {
		s.mu.Unlock()
		return false
	}
	s.limitLeft--
	delay := s.limitDelay
	s.counters.RateLimited++
	s.mu.Unlock()
	writeError(w, http.StatusTooManyRequests, map[string]any{"code": "TooManyRequests", "message": "You have been rate limited, retry later", "delay": delay, "status": 429})
	return true
}

// writeError answers {"error": inner}: RedGIFs' error object, whose inner keys vary.
func writeError(w http.ResponseWriter, code int, inner map[string]any) {
	uploadertest.WriteJSON(w, code, map[string]any{"error": inner})
}

var md5Hex = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// readMD5 reads the md5 from a form, JSON or empty body.
func readMD5(r *http.Request) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var sum string
	switch ct {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(b))
		if err != nil {
			return "", fmt.Errorf("the form cannot be read: %v", err)
		}
		sum = v.Get("md5")
	case "application/json":
		var body map[string]json.RawMessage
		if err := json.Unmarshal(b, &body); err != nil {
			return "", fmt.Errorf("the JSON cannot be read: %v", err)
		}
		if raw, ok := body["md5"]; ok {
			if err := json.Unmarshal(raw, &sum); err != nil {
				return "", errors.New("md5 must be a string")
			}
		}
	default:
		return "", fmt.Errorf("unsupported content type %q", r.Header.Get("Content-Type"))
	}
	if sum != "" && !md5Hex.MatchString(sum) {
		return "", fmt.Errorf("md5 %q is not 32 hex digits", sum)
	}
	return strings.ToLower(sum), nil
}

// ticketAnswer is POST /v2/upload.
func (s *Server) ticketAnswer(w http.ResponseWriter, r *http.Request) {
	sum, err := readMD5(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, map[string]any{"code": "InvalidRequest", "description": err.Error()})
		return
	}
	var t *ticket
	if sum != "" {
		s.mu.Lock()
		t = s.tickets[s.byMD5[sum]]
		s.mu.Unlock()
	}
	if t != nil {
		if err := s.refresh(r.Context(), t); err != nil {
			bucketDown(w, err)
			return
		}
	}
	s.mu.Lock()
	if t != nil && t.Status == "failed" {
		t = nil // a failed ticket is dead: the file gets a new one
	}
	created := t == nil
	if created {
		t = &ticket{Ticket: Ticket{ID: newTicketID(), MD5: sum, Status: "waiting"}, failMsg: s.failTickets}
		t.Key = "uploads/" + t.ID
		s.tickets[t.ID] = t
		if sum != "" {
			s.byMD5[sum] = t.ID
		}
		s.counters.TicketsCreated++
	}
	s.counters.TicketAnswers++
	known := t.Status != "waiting"
	expire := false
	if known {
		s.counters.KnownAnswers++
	}
	if !known || s.opts.ReadyWithURL {
		if s.expireNext > 0 {
			s.expireNext--
			expire = true
		}
		s.counters.URLsIssued++
	}
	view := t.Ticket
	s.mu.Unlock()

	answer := map[string]any{"id": view.ID, "method": nil, "url": nil}
	if !known || s.opts.ReadyWithURL {
		key := view.Key
		if key == "" {
			key = "uploads/" + view.ID
		}
		signed, err := s.signedURL(r.Context(), key, expire)
		if err != nil {
			writeError(w, http.StatusInternalServerError, map[string]any{"code": "InternalError", "message": "cannot sign the upload URL: " + err.Error()})
			return
		}
		answer["method"], answer["url"] = http.MethodPut, signed
	}
	if s.opts.Shape == Shape2023 {
		answer["status"] = view.Status
	}
	uploadertest.WriteJSON(w, http.StatusOK, answer)
}

// signedURL presigns a PUT of key (expired already when expired is set) and points it at
// the relay unless Direct.
func (s *Server) signedURL(ctx context.Context, key string, expired bool) (string, error) {
	var raw string
	var err error
	if expired {
		raw, err = s.opts.S3.ExpiredPutURL(key)
	} else {
		raw, err = s.opts.S3.PresignPut(ctx, key, s.opts.URLTTL)
	}
	if err != nil || s.opts.Direct {
		return raw, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	relay, _ := url.Parse(s.relay)
	// The relay restores the bucket's Host, which the signature covers.
	u.Scheme, u.Host = relay.Scheme, relay.Host
	return u.String(), nil
}

// refresh brings t's status up to now, looking into the bucket while it waits (without
// holding s.mu over the network call).
func (s *Server) refresh(ctx context.Context, t *ticket) error {
	s.mu.Lock()
	key, waiting := t.Key, t.Status == "waiting"
	s.mu.Unlock()
	var obj s3test.Object
	found := false
	if waiting && key != "" {
		o, err := s.opts.S3.Stat(ctx, key)
		switch {
		case err == nil:
			obj, found = o, true
		case errors.Is(err, fs.ErrNotExist):
		default:
			return err
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if found && t.Status == "waiting" {
		t.received, t.Size, t.ContentType = now, obj.Size, obj.ContentType
		switch {
		case t.MD5 != "" && !strings.EqualFold(strings.Trim(obj.ETag, `"`), t.MD5):
			t.Status, t.Error = "failed", "the file received does not match the md5 the ticket was made with"
		case t.failMsg != "":
			t.Status, t.Error = "failed", t.failMsg
		default:
			t.Status = "pending"
		}
	}
	if t.Status == "pending" && !now.Before(t.received.Add(s.opts.ReadyAfter)) {
		t.Status = "ready"
	}
	return nil
}

func bucketDown(w http.ResponseWriter, err error) {
	writeError(w, http.StatusServiceUnavailable, map[string]any{"code": "ServiceUnavailable", "message": "storage unavailable: " + err.Error()})
}

// polledLocked counts a status poll in polls and flags it when it came closer than 1 s
// after the last one of the same ticket or gif (at *last). s.mu is held.
func (s *Server) polledLocked(polls *int, last *time.Time, now time.Time) {
	*polls++
	if !last.IsZero() && now.Sub(*last) < time.Second {
		s.counters.FastPolls++
	}
	*last = now
}

// ticketStatus is GET /v2/upload/{id}/status.
func (s *Server) ticketStatus(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.mu.Lock()
	t, ok := s.tickets[r.PathValue("id")]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, map[string]any{"code": "NotFound", "description": "upload ticket not found"})
		return
	}
	s.polledLocked(&s.counters.StatusPolls, &t.lastPoll, now)
	s.mu.Unlock()
	if err := s.refresh(r.Context(), t); err != nil {
		bucketDown(w, err)
		return
	}
	s.mu.Lock()
	answer := map[string]any{"id": t.ID, "status": t.Status}
	if t.Status == "failed" {
		answer["error"] = t.Error
	}
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, answer)
}

// submitFields are the keys POST /v2/gifs/submit takes: the official ones and those
// unofficial clients send.
var submitFields = map[string]bool{
	"ticket": true, "keepAudio": true, "private": true, "tags": true,
	"description": true, "niches": true, "sexuality": true, "contentType": true, "draft": true,
}

// submit is POST /v2/gifs/submit.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string) {
		writeError(w, http.StatusBadRequest, map[string]any{"code": "InvalidRequest", "message": msg, "status": 400})
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		bad("the body must be JSON")
		return
	}
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&raw); err != nil {
		bad("the JSON cannot be read: " + err.Error())
		return
	}
	for k := range raw {
		if !submitFields[k] {
			bad("unknown field " + strconv.Quote(k))
			return
		}
	}
	var g Gif
	var sexuality, contentType string
	var draft bool
	fields := []struct {
		key      string
		dst      any
		required bool
	}{
		{"ticket", &g.Ticket, true}, {"keepAudio", &g.KeepAudio, true}, {"private", &g.Private, true},
		{"tags", &g.Tags, true}, {"description", &g.Description, false}, {"niches", &g.Niches, false},
		{"sexuality", &sexuality, false}, {"contentType", &contentType, false}, {"draft", &draft, false},
	}
	for _, f := range fields {
		v, ok := raw[f.key]
		if !ok {
			if f.required {
				bad(f.key + " is required")
				return
			}
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil || string(v) == "null" {
			bad(fmt.Sprintf("%s has the wrong type (%s)", f.key, v))
			return
		}
	}
	for _, tag := range g.Tags {
		if strings.TrimSpace(tag) == "" {
			bad("tags must not be empty strings")
			return
		}
	}
	for _, n := range g.Niches {
		if strings.TrimSpace(n) == "" {
			bad("niches must not be empty strings")
			return
		}
	}
	s.mu.Lock()
	t, ok := s.tickets[g.Ticket]
	s.mu.Unlock()
	if ok {
		if err := s.refresh(r.Context(), t); err != nil {
			bucketDown(w, err)
			return
		}
	}
	now := time.Now()
	s.mu.Lock()
	switch {
	case !ok:
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, map[string]any{"code": "TicketNotFound", "description": "no such upload ticket"})
		return
	case t.Status != "ready":
		st := t.Status
		s.mu.Unlock()
		writeError(w, http.StatusConflict, map[string]any{"code": "TicketNotReady", "message": "the upload is " + st + ", not ready"})
		return
	}
	g.ID, g.Created = s.newGifIDLocked(), now
	s.gifs[g.ID] = &gif{Gif: g, failMsg: s.failEncode}
	t.Submits++
	s.counters.GifsCreated++
	duration := max(1, t.Size/(250<<10)) // as if 2 Mbit/s
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, map[string]any{"id": g.ID, "duration": duration})
}

// gifStatus is GET /v1/gifs/fetch/status/{id}.
func (s *Server) gifStatus(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.mu.Lock()
	g, ok := s.gifs[r.PathValue("id")]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, map[string]any{"code": "GifNotFound", "message": "gif not found"})
		return
	}
	s.polledLocked(&s.counters.GifPolls, &g.lastPoll, now)
	elapsed := now.Sub(g.Created)
	answer := map[string]any{}
	key := s.opts.GifStatusKey
	switch {
	case elapsed < s.opts.EncodeAfter:
		answer[key], answer["progress"] = "encoding", int(100*elapsed/s.opts.EncodeAfter)
	case g.failMsg != "":
		answer[key], answer["message"] = "error", g.failMsg
	default:
		answer[key], answer["progress"] = "complete", 100
	}
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, answer)
}

// relayHandler forwards PUTs to the bucket after AWS S3's own checks.
func (s *Server) relayHandler() http.Handler {
	proxy := &httputil.ReverseProxy{
		// One connection per PUT, closed after it: nothing of the relay's lingers between
		// requests (the conformance suite checks for goroutines left behind).
		Transport: &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 2 * time.Minute},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.upstream) // the bucket's host, which the signature covers
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The bucket broke the connection (it may answer a refused PUT early and close
			// before the body is in): the client sees a broken connection too, as it would
			// talking to S3 itself.
			if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
				_ = conn.Close()
				return
			}
			writeS3Error(w, http.StatusBadGateway, "BadGateway", "the relay could not reach the bucket: "+err.Error())
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodPut:
			writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		case len(r.TransferEncoding) > 0 || r.ContentLength < 0:
			writeS3Error(w, http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
		case r.Header.Get("Authorization") != "":
			writeS3Error(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		default:
			proxy.ServeHTTP(w, r)
		}
	})
}

// countPuts counts the relay's PUTs and their answers. A PUT is counted when its answer's
// status is written, before the client can see it, so that a test reading Counters after its
// PUT ended finds it there; one the client abandoned is counted when it ends.
func (s *Server) countPuts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			next.ServeHTTP(w, r)
			return
		}
		s.putsOpen.Add(1)
		defer s.putsOpen.Add(-1)
		pw := &putWriter{ResponseWriter: w, s: s, r: r}
		defer pw.count(0)
		next.ServeHTTP(pw, r)
	})
}

// putWriter counts a PUT's answer as its status is written.
type putWriter struct {
	http.ResponseWriter
	s       *Server
	r       *http.Request
	counted bool
}

func (w *putWriter) count(status int) {
	if w.counted {
		return
	}
	w.counted = true
	if status == http.StatusOK && w.s.stallAfterPut.CompareAndSwap(true, false) {
		w.s.api.Stall(true)
	}
	if status == http.StatusOK && w.s.holdPut.CompareAndSwap(true, false) {
		w.s.api.Stall(true)
		w.s.putHold.Stall(true)
		defer w.s.putHold.Wait(w.r.Context())
	}
	w.s.mu.Lock()
	w.s.counters.Puts++
	if status == http.StatusOK {
		w.s.counters.PutsOK++
	}
	w.s.mu.Unlock()
}

func (w *putWriter) WriteHeader(code int) {
	if code >= 200 {
		w.count(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *putWriter) Write(b []byte) (int, error) {
	w.count(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *putWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeS3Error(w http.ResponseWriter, code int, s3code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", s3code, msg)
}

func newTicketID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gifWords make ids like RedGIFs' ("palegoldenroddarkvioletibis"): two colours and an animal.
var (
	colours = []string{"pale", "golden", "rod", "dark", "violet", "amber", "azure", "coral", "ivory", "jade", "lilac", "olive", "ruby", "sandy", "teal", "wheat"}
	animals = []string{"ibis", "otter", "lynx", "heron", "koala", "marten", "newt", "okapi", "quail", "raven", "stoat", "tapir", "vole", "wombat", "yak", "zebu"}
)

func (s *Server) newGifIDLocked() string {
	for {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		id := colours[b[0]%16] + colours[b[1]%16] + colours[b[2]%16] + animals[b[3]%16]
		if _, taken := s.gifs[id]; !taken {
			return id
		}
	}
}

// StartS3 starts the S3 server for a test's emulator: MinIO (the stand-in with
// CHUTE_TEST_NO_MINIO=1) without s3test's relay, since the emulator's own relay is the one hop
// in front of it. It stops when the test ends.
func StartS3(t testing.TB) *s3test.Server {
	t.Helper()
	return s3test.StartWith(t, s3test.Options{Direct: true})
}
