// Package gcoretest emulates Gcore Streaming for tests and `chute demo`: the video API
// (/streaming/videos/...) with Gcore's authentication, validation and status codes, and two
// upload servers that are real tusd instances (tustest) checking Gcore's upload metadata.
//
// How it maps to the real service:
//   - Everything listens on loopback. The API and the first upload server share one listener
//     (Server.URL, Server.Listener); the second upload server has its own (SecondListener).
//     GET /streaming/videos/{id}/upload lists an inactive server first, then both, with
//     ssl false; the hostnames are the listeners' host:port.
//   - Tokens are random, bound to one video, and expire after Options.TokenTTL (4h).
//   - A video's status is computed from the clock, not driven by goroutines: empty until its
//     upload completes (tusd has every byte and the stored file is Upload-Length long), then
//     pending for one Step, viewable for one more, then ready; with FailTranscode set when it
//     was created, error after pending. A video with origin_url is "downloaded" after one
//     Step (the emulator never fetches anything): unless the URL contains "fail", in which
//     case it stays empty and gets an error.
//   - iframe_url is http://<API host>/videos/<client_id>_<slug> (a small HTML page the
//     emulator serves, for the demo), hls_url and dash_url are beside it and not served.
//     Options.NoIframeURL leaves iframe_url empty, as clients must then build it.
//   - Not mirrored: webhooks, pagination headers, directories, the full video schema,
//     actually transcoding or fetching origin URLs, and Gcore's exact error texts beyond the
//     documented ones.
package gcoretest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/tus/tustest"
	"github.com/chute-dev/chute/uploader/uploadertest"
)

// Options configure a Server.
type Options struct {
	// Dir holds the upload servers' files (required).
	Dir string
	// APIKey is the only key the API accepts (required).
	APIKey string
	// ClientID is the account's client_id (default 2675).
	ClientID int64
	// TokenTTL is how long an upload token is valid (default 4h).
	TokenTTL time.Duration
	// Step is how long each processing stage lasts: download of an origin URL, pending,
	// viewable (default 200ms).
	Step time.Duration
	// CreateAsArray answers POST /streaming/videos/ with an array of one video, as the
	// OpenAPI document has it, instead of the video object.
	CreateAsArray bool
	// NoIframeURL leaves iframe_url empty in every answer.
	NoIframeURL bool
	// Logs receives tusd's logs as text (nil: discarded).
	Logs io.Writer
}

// UploadFault is how an upload server misbehaves.
type UploadFault int

const (
	// UploadOK serves uploads.
	UploadOK UploadFault = iota
	// UploadBadGateway answers every request with 502.
	UploadBadGateway
	// UploadRefuse drops every connection without an answer, as a dead host does.
	UploadRefuse
)

// Counters are what the emulator has seen.
type Counters struct {
	// APIRequests counts requests to /streaming/ (answered or not).
	APIRequests int
	// VideosCreated counts video entities created.
	VideosCreated int
	// TokensIssued counts answers to GET /streaming/videos/{id}/upload.
	TokensIssued int
	// TokenRejections counts TUS creations refused for their token metadata.
	TokenRejections int
	// UploadRequests counts requests to the upload servers.
	UploadRequests int
	// Uploads counts TUS uploads created on each upload server.
	Uploads [2]int
	// BytesReceived counts PATCH bytes each upload server read.
	BytesReceived [2]int64
}

// Video is a video entity as the API shows it (the fields of Gcore's answer that the
// emulator fills in).
type Video struct {
	// ID is the video id.
	ID int64 `json:"id"`
	// ClientID is the account's id.
	ClientID int64 `json:"client_id"`
	// Name and Description are as created.
	Name        string `json:"name"`
	Description string `json:"description"`
	// Slug is the video's public short name, in its player URL.
	Slug string `json:"slug"`
	// Status is empty, pending, viewable, ready or error.
	Status string `json:"status"`
	// Error says why the video failed or has no file; null when nothing failed.
	Error *string `json:"error"`
	// Duration is in milliseconds, once viewable.
	Duration int64 `json:"duration"`
	// HLSURL and DashURL are the manifests' URLs, once viewable (not served).
	HLSURL  string `json:"hls_url"`
	DashURL string `json:"dash_url"`
	// IframeURL is the player page.
	IframeURL string `json:"iframe_url"`
	// Screenshot is the poster image's URL (not served).
	Screenshot string `json:"screenshot"`
	// ConvertedVideos are the renditions and their progress.
	ConvertedVideos []ConvertedVideo `json:"converted_videos"`
	// OriginURL is where a copied video comes from.
	OriginURL string `json:"origin_url"`
	// OriginSize is the size of the uploaded original.
	OriginSize int64 `json:"origin_size"`
	// DirectoryID and Priority are as created.
	DirectoryID int64 `json:"directory_id,omitempty"`
	Priority    int   `json:"priority"`
	// CreatedAt is RFC 3339.
	CreatedAt string `json:"created_at"`
}

// ConvertedVideo is one rendition of a video.
type ConvertedVideo struct {
	// ID is the rendition's id.
	ID int64 `json:"id"`
	// Name is the rendition, e.g. vod720n.
	Name string `json:"name"`
	// Status is processing, complete or error.
	Status string `json:"status"`
	// Progress is a percentage.
	Progress int `json:"progress"`
	// MP4URL is the rendition's file, once complete (not served).
	MP4URL string `json:"mp4_url"`
	// Error says why the rendition failed.
	Error string `json:"error"`
}

// Server is the emulator.
type Server struct {
	// URL is the API's base URL, the provider's endpoint: http://127.0.0.1:PORT.
	URL string
	// Listener serves the API and the first upload server.
	Listener *uploadertest.Listener
	// SecondListener serves the second upload server.
	SecondListener *uploadertest.Listener

	opts    Options
	hosts   [2]string
	dirs    [2]string
	uploads [2]*tustest.Server
	srvs    [2]*uploadertest.HTTPServer
	// faults are the API's knobs (the upload servers have their own).
	faults uploadertest.Faults

	mu            sync.Mutex
	nextID        int64
	videos        map[int64]*video
	byUpload      map[string]int64 // uploadKey -> video id
	tokens        map[string]token
	step          time.Duration
	failTranscode string
	uploadFaults  [2]UploadFault
	counters      Counters
}

type video struct {
	id          int64
	name        string
	description string
	directoryID int64
	priority    int
	slug        string
	origin      string
	created     time.Time
	failMsg     string // transcoding fails with this
	uploadKey   string // the TUS upload that carries the original
	size        int64
	completed   time.Time // when the upload completed; zero until then
}

type token struct {
	videoID int64
	expires time.Time
}

// Start serves the emulator on two free loopback ports.
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("gcoretest: Dir is required")
	}
	if opts.APIKey == "" {
		return nil, errors.New("gcoretest: APIKey is required")
	}
	if opts.ClientID == 0 {
		opts.ClientID = 2675
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 4 * time.Hour
	}
	if opts.Step <= 0 {
		opts.Step = 200 * time.Millisecond
	}
	s := &Server{
		opts:     opts,
		nextID:   2501637,
		videos:   make(map[int64]*video),
		byUpload: make(map[string]int64),
		tokens:   make(map[string]token),
		step:     opts.Step,
	}
	s.faults.Write = writeFault
	for i := range s.uploads {
		s.dirs[i] = filepath.Join(opts.Dir, fmt.Sprintf("upload-%d", i+1))
		h, err := tustest.NewHandler(tustest.Options{
			Dir:       s.dirs[i],
			BasePath:  "/upload/",
			PreCreate: s.preCreate(i),
			Logs:      opts.Logs,
			AfterRequest: func(r *http.Request, status int, header http.Header) {
				switch {
				case r.Method == http.MethodPost && status == http.StatusCreated:
					// A 0-byte upload is complete when created.
					if loc, err := url.Parse(header.Get("Location")); err == nil {
						s.checkComplete(i, path.Base(loc.Path))
					}
				case r.Method == http.MethodPatch && status == http.StatusNoContent:
					s.checkComplete(i, path.Base(r.URL.Path))
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("gcoretest: %w", err)
		}
		s.uploads[i] = h
	}
	var err error
	if s.Listener, err = uploadertest.Listen(); err != nil {
		return nil, fmt.Errorf("gcoretest: %w", err)
	}
	if s.SecondListener, err = uploadertest.Listen(); err != nil {
		s.Listener.Close()
		return nil, fmt.Errorf("gcoretest: %w", err)
	}
	s.hosts = [2]string{s.Listener.Addr().String(), s.SecondListener.Addr().String()}
	s.URL = "http://" + s.hosts[0]

	api := http.NewServeMux()
	api.HandleFunc("POST /streaming/videos", s.create)
	api.HandleFunc("POST /streaming/videos/{$}", s.create)
	api.HandleFunc("GET /streaming/videos", s.list)
	api.HandleFunc("GET /streaming/videos/{$}", s.list)
	api.HandleFunc("GET /streaming/videos/{id}", s.get)
	api.HandleFunc("DELETE /streaming/videos/{id}", s.delete)
	api.HandleFunc("GET /streaming/videos/{id}/upload", s.uploadInfo)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		uploadertest.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "Not found."})
	})

	first := http.NewServeMux()
	first.Handle("/streaming/", s.apiGate(api))
	first.Handle("/upload/", s.uploadServer(0))
	first.HandleFunc("GET /videos/{player}", s.player)
	second := http.NewServeMux()
	second.Handle("/upload/", s.uploadServer(1))

	s.srvs = [2]*uploadertest.HTTPServer{uploadertest.Serve(s.Listener, first), uploadertest.Serve(s.SecondListener, second)}
	return s, nil
}

// Close stops both listeners and waits for their goroutines.
func (s *Server) Close() error {
	s.Stall(false)
	return errors.Join(s.srvs[0].Close(), s.srvs[1].Close())
}

// FailNext answers the next n API requests with status (and Retry-After when
// retryAfter > 0). The upload servers are not affected: see FailUpload.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.faults.FailNext(n, status, retryAfter)
}

// FailUpload makes upload server i (0 or 1, in the order listed) misbehave, or serve again
// with UploadOK.
func (s *Server) FailUpload(i int, f UploadFault) {
	s.mu.Lock()
	s.uploadFaults[i] = f
	s.mu.Unlock()
}

// UploadServer is upload server i's tusd, for its own knobs (FailNext, Stall).
func (s *Server) UploadServer(i int) *tustest.Server { return s.uploads[i] }

// Stall holds every request, to the API and the upload servers, unanswered until
// Stall(false).
func (s *Server) Stall(on bool) {
	s.faults.Stall(on)
	for _, u := range s.uploads {
		u.Stall(on)
	}
}

// FailTranscode makes the videos created from now on end in status error with msg; ""
// stops it.
func (s *Server) FailTranscode(msg string) {
	s.mu.Lock()
	s.failTranscode = msg
	s.mu.Unlock()
}

// SetStep changes how long each processing stage lasts, for every video at once.
func (s *Server) SetStep(d time.Duration) {
	if d <= 0 {
		d = time.Nanosecond
	}
	s.mu.Lock()
	s.step = d
	s.mu.Unlock()
}

// ExpireTokens makes every upload token issued so far expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	uploadertest.ExpireAll(s.tokens, func(t *token, at time.Time) { t.expires = at })
}

// DeleteVideo removes a video and its tokens, as a user deleting it in Gcore's portal does.
func (s *Server) DeleteVideo(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteLocked(id)
}

func (s *Server) deleteLocked(id int64) bool {
	if _, ok := s.videos[id]; !ok {
		return false
	}
	delete(s.videos, id)
	for k, t := range s.tokens {
		if t.videoID == id {
			delete(s.tokens, k)
		}
	}
	return true
}

// Video returns video id as GET /streaming/videos/{id} shows it.
func (s *Server) Video(id int64) (Video, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.videos[id]
	if !ok {
		return Video{}, false
	}
	return s.viewLocked(v, time.Now()), true
}

// Counters returns what the emulator has seen.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	c := s.counters
	s.mu.Unlock()
	for i, u := range s.uploads {
		st := u.Stats()
		c.Uploads[i], c.BytesReceived[i] = st.Created, st.BytesReceived
	}
	return c
}

// Stats are the conformance suite's counters: Created counts video entities and TUS
// uploads, BytesReceived the bytes both upload servers read.
func (s *Server) Stats() uploadertest.Stats {
	c := s.Counters()
	return uploadertest.Stats{
		Created:       c.VideosCreated + c.Uploads[0] + c.Uploads[1],
		BytesReceived: c.BytesReceived[0] + c.BytesReceived[1],
	}
}

// Stored opens the bytes uploaded for the video a result names (its ID is the video id).
func (s *Server) Stored(res uploader.Result) (io.ReadCloser, error) {
	id, err := strconv.ParseInt(res.ID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("gcoretest: result id %q is not a video id", res.ID)
	}
	s.mu.Lock()
	v, ok := s.videos[id]
	key := ""
	if ok {
		key = v.uploadKey
	}
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("gcoretest: no video %d", id)
	}
	if key == "" {
		return nil, fmt.Errorf("gcoretest: video %d has no upload", id)
	}
	i, uploadID := splitUploadKey(key)
	return s.uploads[i].Stored(uploadID)
}

func uploadKey(server int, id string) string { return strconv.Itoa(server) + "/" + id }

func splitUploadKey(key string) (int, string) {
	i, id, _ := strings.Cut(key, "/")
	n, _ := strconv.Atoi(i)
	return n, id
}

// apiGate stalls, counts, injects faults and checks the API key before the API proper.
func (s *Server) apiGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counters.APIRequests++
		s.mu.Unlock()
		if !s.faults.Intercept(w, r) {
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, key, _ := strings.Cut(auth, " ")
		switch {
		case auth == "":
			uploadertest.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "Authentication credentials were not provided."})
			return
		case !strings.EqualFold(scheme, "APIKey") || subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.APIKey)) != 1:
			uploadertest.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "Invalid API key."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeFault is an injected failure as Gcore's API words it.
func writeFault(w http.ResponseWriter, code int) {
	switch {
	case code == http.StatusUnprocessableEntity:
		uploadertest.WriteJSON(w, code, map[string]any{"errors": map[string][]string{"base": {"injected fault"}}})
	case code == http.StatusTooManyRequests:
		uploadertest.WriteJSON(w, code, map[string]string{"error": "Request was throttled."})
	default:
		uploadertest.WriteJSON(w, code, map[string]string{"error": "injected fault: " + http.StatusText(code)})
	}
}

// create is POST /streaming/videos/.
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Video *struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			DirectoryID int64  `json:"directory_id"`
			Priority    int    `json:"priority"`
			OriginURL   string `json:"origin_url"`
		} `json:"video"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		uploadertest.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "JSON parse error: " + err.Error()})
		return
	}
	if body.Video == nil {
		uploadertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": map[string][]string{"name": {"can't be blank"}}})
		return
	}
	f := body.Video
	errs := map[string][]string{}
	if strings.TrimSpace(f.Name) == "" {
		errs["name"] = append(errs["name"], "can't be blank")
	}
	if f.Priority < -10 || f.Priority > 10 {
		errs["priority"] = append(errs["priority"], "must be in -10..10")
	}
	if f.DirectoryID < 0 {
		errs["directory_id"] = append(errs["directory_id"], "is invalid")
	}
	if f.OriginURL != "" {
		if msg := badOrigin(f.OriginURL); msg != "" {
			errs["origin_url"] = append(errs["origin_url"], msg)
		}
	}
	if len(errs) > 0 {
		uploadertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": errs})
		return
	}
	now := time.Now()
	s.mu.Lock()
	s.nextID++
	v := &video{
		id:          s.nextID,
		name:        f.Name,
		description: f.Description,
		directoryID: f.DirectoryID,
		priority:    f.Priority,
		slug:        randomSlug(),
		origin:      f.OriginURL,
		created:     now,
		failMsg:     s.failTranscode,
	}
	s.videos[v.id] = v
	s.counters.VideosCreated++
	view := s.viewLocked(v, now)
	s.mu.Unlock()
	if s.opts.CreateAsArray {
		uploadertest.WriteJSON(w, http.StatusCreated, []Video{view})
		return
	}
	uploadertest.WriteJSON(w, http.StatusCreated, view)
}

// badOrigin says why Gcore would refuse to copy from raw, or "".
func badOrigin(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return "is not a valid URL"
	case u.Scheme != "https":
		return "must be an https URL"
	}
	p := strings.ToLower(u.Path)
	if strings.HasSuffix(p, ".m3u8") || strings.HasSuffix(p, ".mpd") {
		return "HLS and DASH are not supported: give the URL of an original video file"
	}
	return ""
}

// list is GET /streaming/videos/: the newest videos first, page and per_page as Gcore's.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if page < 1 {
		page = 1
	}
	if per < 1 || per > 100 {
		per = 25
	}
	now := time.Now()
	s.mu.Lock()
	ids := make([]int64, 0, len(s.videos))
	for id := range s.videos {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	out := []Video{}
	for i := (page - 1) * per; i < len(ids) && i < page*per; i++ {
		out = append(out, s.viewLocked(s.videos[ids[i]], now))
	}
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*video, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err == nil {
		if v, ok := s.videos[id]; ok {
			return v, true
		}
	}
	uploadertest.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "Not found."})
	return nil, false
}

// get is GET /streaming/videos/{id}.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v, ok := s.lookup(w, r)
	var view Video
	if ok {
		view = s.viewLocked(v, time.Now())
	}
	s.mu.Unlock()
	if ok {
		uploadertest.WriteJSON(w, http.StatusOK, view)
	}
}

// delete is DELETE /streaming/videos/{id}.
func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v, ok := s.lookup(w, r)
	if ok {
		s.deleteLocked(v.id)
	}
	s.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// uploadInfo is GET /streaming/videos/{id}/upload: the upload servers and a new token.
func (s *Server) uploadInfo(w http.ResponseWriter, r *http.Request) {
	type server struct {
		ID       int64  `json:"id"`
		Role     string `json:"role"`
		Hostname string `json:"hostname"`
		Active   bool   `json:"active"`
		SSL      bool   `json:"ssl"`
	}
	s.mu.Lock()
	v, ok := s.lookup(w, r)
	if !ok {
		s.mu.Unlock()
		return
	}
	now := time.Now()
	tok := randomHex(24)
	s.tokens[tok] = token{videoID: v.id, expires: now.Add(s.opts.TokenTTL)}
	s.counters.TokensIssued++
	answer := struct {
		Servers []server `json:"servers"`
		Token   string   `json:"token"`
		Video   Video    `json:"video"`
	}{
		Servers: []server{
			// An inactive server, which clients must skip.
			{ID: 9, Role: "upload", Hostname: "vod-uploader-retired.invalid", Active: false, SSL: true},
			{ID: 1, Role: "upload", Hostname: s.hosts[0], Active: true, SSL: false},
			{ID: 2, Role: "upload", Hostname: s.hosts[1], Active: true, SSL: false},
		},
		Token: tok,
		Video: s.viewLocked(v, now),
	}
	s.mu.Unlock()
	uploadertest.WriteJSON(w, http.StatusOK, answer)
}

// player is the page iframe_url points at.
func (s *Server) player(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("player")
	s.mu.Lock()
	var view *Video
	for _, v := range s.videos {
		if fmt.Sprintf("%d_%s", s.opts.ClientID, v.slug) == name {
			vv := s.viewLocked(v, time.Now())
			view = &vv
			break
		}
	}
	s.mu.Unlock()
	if view == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>%s</title><h1>%s</h1><p>Gcore emulator: video %d is <b>%s</b>. The emulator stores the upload but does not transcode or play it.</p>\n",
		html.EscapeString(view.Name), html.EscapeString(view.Name), view.ID, html.EscapeString(view.Status))
}

// viewLocked renders v as the API shows it at now.
func (s *Server) viewLocked(v *video, now time.Time) Video {
	step := s.step
	status, errMsg := "empty", ""
	done := v.completed
	if v.origin != "" {
		done = v.created.Add(step)
	}
	switch {
	case v.origin != "" && strings.Contains(v.origin, "fail"):
		if !now.Before(v.created.Add(step)) {
			errMsg = "Failed to download the original file after 3 attempts: 404 Not Found"
		}
	case done.IsZero() || now.Before(done):
	default:
		switch e := now.Sub(done); {
		case e < step:
			status = "pending"
		case v.failMsg != "":
			status, errMsg = "error", v.failMsg
		case e < 2*step:
			status = "viewable"
		default:
			status = "ready"
		}
	}
	base := "http://" + s.hosts[0] + fmt.Sprintf("/videos/%d_%s", s.opts.ClientID, v.slug)
	out := Video{
		ID:          v.id,
		ClientID:    s.opts.ClientID,
		Name:        v.name,
		Description: v.description,
		Slug:        v.slug,
		Status:      status,
		Screenshot:  base + "/screenshot.jpg",
		OriginURL:   v.origin,
		OriginSize:  v.size,
		DirectoryID: v.directoryID,
		Priority:    v.priority,
		CreatedAt:   v.created.UTC().Format(time.RFC3339),
	}
	if !s.opts.NoIframeURL {
		out.IframeURL = base
	}
	if errMsg != "" {
		out.Error = &errMsg
	}
	renditions := []string{"vod360n", "vod720n"}
	switch status {
	case "pending", "error":
		for i, n := range renditions {
			c := ConvertedVideo{ID: int64(i + 1), Name: n, Status: "processing", Progress: 50}
			if status == "error" {
				c.Status, c.Progress, c.Error = "error", 0, errMsg
			}
			out.ConvertedVideos = append(out.ConvertedVideos, c)
		}
	case "viewable", "ready":
		out.HLSURL, out.DashURL = base+"/master.m3u8", base+"/master.mpd"
		out.Duration = max(1000, v.size/125) // as if the file were 1 Mbit/s
		for i, n := range renditions {
			c := ConvertedVideo{ID: int64(i + 1), Name: n, Status: "complete", Progress: 100, MP4URL: fmt.Sprintf("%s/qid%d_%s.mp4", base, i+1, n)}
			if status == "viewable" && i > 0 {
				c.Status, c.Progress, c.MP4URL = "processing", 50, ""
			}
			out.ConvertedVideos = append(out.ConvertedVideos, c)
		}
	}
	if out.ConvertedVideos == nil {
		out.ConvertedVideos = []ConvertedVideo{}
	}
	return out
}

// uploadServer is upload server i: faults, then tusd, then the completion check.
func (s *Server) uploadServer(i int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counters.UploadRequests++
		fault := s.uploadFaults[i]
		s.mu.Unlock()
		switch fault {
		case UploadBadGateway:
			http.Error(w, "502 Bad Gateway: upload server unavailable", http.StatusBadGateway)
			return
		case UploadRefuse:
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
				return
			}
			panic(http.ErrAbortHandler)
		}
		s.uploads[i].ServeHTTP(w, r)
	})
}

// checkComplete marks the video whose upload this is as uploaded once the stored file has
// all its bytes.
func (s *Server) checkComplete(i int, id string) {
	key := uploadKey(i, id)
	s.mu.Lock()
	v := s.videos[s.byUpload[key]]
	if v == nil || v.uploadKey != key || !v.completed.IsZero() {
		s.mu.Unlock()
		return
	}
	size := v.size
	s.mu.Unlock()
	st, err := os.Stat(filepath.Join(s.dirs[i], id))
	if err != nil || st.Size() != size {
		return
	}
	s.mu.Lock()
	if v.uploadKey == key && v.completed.IsZero() {
		v.completed = time.Now()
	}
	s.mu.Unlock()
}

// preCreate is upload server i's tusd pre-create hook: it checks the token, video_id and
// client_id metadata the way Gcore's upload servers do, and names the upload.
func (s *Server) preCreate(i int) func(tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
	return func(hook tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
		meta := hook.Upload.MetaData
		s.mu.Lock()
		defer s.mu.Unlock()
		reject := func(msg string) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
			s.counters.TokenRejections++
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusd.Error{
				ErrorCode: "ERR_GCORE_TOKEN",
				Message:   msg,
				HTTPResponse: tusd.HTTPResponse{
					StatusCode: http.StatusInternalServerError,
					Body:       msg + "\n",
					Header:     tusd.HTTPHeader{"Content-Type": "text/plain; charset=utf-8"},
				},
			}
		}
		orNull := func(s string) string {
			if s == "" {
				return "null"
			}
			return s
		}
		tok, ok := s.tokens[meta["token"]]
		switch {
		case meta["token"] == "":
			return reject("token invalid (null)")
		case !ok:
			return reject("token invalid")
		case time.Now().After(tok.expires):
			return reject("token expired")
		case meta["video_id"] != strconv.FormatInt(tok.videoID, 10):
			return reject(fmt.Sprintf("token video (%d) does not match this video (%s)", tok.videoID, orNull(meta["video_id"])))
		case meta["client_id"] != strconv.FormatInt(s.opts.ClientID, 10):
			return reject(fmt.Sprintf("token client (%d) does not match this client (%s)", s.opts.ClientID, orNull(meta["client_id"])))
		}
		v, ok := s.videos[tok.videoID]
		if !ok {
			return reject(fmt.Sprintf("token video (%d) not found", tok.videoID))
		}
		if hook.Upload.SizeIsDeferred {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusd.NewError("ERR_GCORE_LENGTH", "Upload-Length is required", http.StatusBadRequest)
		}
		id := fmt.Sprintf("%d-%s", v.id, randomHex(8))
		key := uploadKey(i, id)
		v.uploadKey, v.size, v.completed = key, hook.Upload.Size, time.Time{}
		s.byUpload[key] = v.id
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{ID: id}, nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomSlug is a 15-character slug like Gcore's ("FnlHXwA16ZMxmUr").
func randomSlug() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
