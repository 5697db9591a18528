// Package gcore is chute's provider for Gcore Streaming (video hosting).
//
// For each file it creates a video entity (POST /streaming/videos/), asks for the upload
// servers and a token (GET /streaming/videos/{id}/upload), sends the file over TUS to one of
// those servers, then polls the video (GET /streaming/videos/{id}) until it has reached the
// state the `wait` key asks for. A file named *.url instead makes Gcore copy the video from
// the https URL it holds (origin_url): no bytes are sent.
//
// Every step that costs something remotely is recorded in the checkpoint first or right after
// (the video id, the TUS upload URL, the step reached), so a resumed job never creates a
// second video, never re-sends bytes the upload server holds, and goes straight to polling
// once the upload had finished.
package gcore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/tus"
)

// DefaultEndpoint is the base URL of Gcore's public API.
const DefaultEndpoint = "https://api.gcore.com"

// Values of the `wait` key: how far Upload waits before it returns.
const (
	// WaitUploaded returns once Gcore holds the original file.
	WaitUploaded = "uploaded"
	// WaitViewable returns once the video plays in at least one quality (the default).
	WaitViewable = "viewable"
	// WaitReady returns once every quality has been transcoded.
	WaitReady = "ready"
)

// Defaults of the options.
const (
	// DefaultChunkSize is the PATCH size of Gcore's own upload example.
	DefaultChunkSize = 10_000_000
	// DefaultPollInterval is how often the video's status is asked while waiting.
	DefaultPollInterval = 5 * time.Second
	// DefaultMaxWait is how long Upload polls before it gives up on processing.
	DefaultMaxWait = 2 * time.Hour
)

const (
	// tokenLifetime is how long Gcore's upload token is valid; it only has to be valid
	// when the TUS upload is created.
	tokenLifetime = 4 * time.Hour
	// tokenMargin keeps a token this close to expiring from being used.
	tokenMargin = 5 * time.Minute
	// apiRate and apiBurst keep under the API's limit of about 4 requests/s per account.
	apiRate  = 4
	apiBurst = 4
	// playerBase is where Gcore's player lives, for building iframe_url when the API
	// leaves it empty.
	playerBase = "https://player.gvideo.co/videos/"
)

// Options are the `gcore` provider's config keys (besides type, endpoint and concurrency).
type Options struct {
	// APIKey is the account's permanent API token, sent as `Authorization: APIKey <key>`.
	APIKey string `yaml:"api_key" chute:"required,secret"`
	// Wait is how far Upload waits: uploaded, viewable (default) or ready.
	Wait string `yaml:"wait"`
	// Description is given to every video created.
	Description string `yaml:"description"`
	// DirectoryID puts the videos in this directory (0: the root).
	DirectoryID int `yaml:"directory_id"`
	// Priority of processing, -10 (lowest) to 10 (highest); 0 is Gcore's default.
	Priority int `yaml:"priority"`
	// ChunkSize bounds one TUS PATCH; 0 sends the file in one request.
	ChunkSize int64 `yaml:"chunk_size"`
	// PollInterval is how often the video's status is asked while waiting.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxWait is how long, after the upload, Upload waits for processing before failing.
	MaxWait time.Duration `yaml:"max_wait"`
}

// DefaultOptions returns the options with their defaults set.
func DefaultOptions() Options {
	return Options{
		Wait:         WaitViewable,
		ChunkSize:    DefaultChunkSize,
		PollInterval: DefaultPollInterval,
		MaxWait:      DefaultMaxWait,
	}
}

// Validate reports every option with a value Gcore or chute cannot use. A zero Wait,
// PollInterval or MaxWait stands for its default.
func (o Options) Validate() []uploader.FieldError {
	errs := append(uploader.OneLine("api_key", o.APIKey, true), uploader.OneOf("wait", o.Wait, WaitUploaded, WaitViewable, WaitReady)...)
	if o.DirectoryID < 0 {
		errs = append(errs, uploader.FieldError{Key: "directory_id", Msg: "must be a directory id (a positive number), or 0 for the root"})
	}
	if o.Priority < -10 || o.Priority > 10 {
		errs = append(errs, uploader.FieldError{Key: "priority", Msg: "must be between -10 (lowest) and 10 (highest)"})
	}
	errs = append(errs, uploader.NotNegative("chunk_size", o.ChunkSize, "must not be negative (0 sends the file in one request)")...)
	errs = append(errs, uploader.NotNegative("poll_interval", o.PollInterval, "")...)
	return append(errs, uploader.NotNegative("max_wait", o.MaxWait, "")...)
}

// Type is the `gcore` provider type.
func Type() uploader.Type {
	return uploader.NewType("gcore", DefaultEndpoint, DefaultOptions, func(env uploader.Env, o Options) (uploader.Provider, error) {
		return New(env, o)
	})
}

// Provider uploads to Gcore Streaming. One Provider serves every job of one configured
// provider; they share its API rate limiter.
type Provider struct {
	name string // the provider's name in the config, for messages
	api  *uploader.API
	red  *uploader.Redactor // hides the API key
	opts Options
	tus  *tus.Client
	now  func() time.Time
}

var (
	_ uploader.Provider = (*Provider)(nil)
	_ uploader.Checker  = (*Provider)(nil)
)

// New returns a `gcore` provider. env.Endpoint "" means DefaultEndpoint.
func New(env uploader.Env, opts Options) (*Provider, error) {
	if err := uploader.OptionsError("gcore", opts.Validate()); err != nil {
		return nil, err
	}
	endpoint, err := env.EndpointURL("gcore", DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if opts.Wait == "" {
		opts.Wait = WaitViewable
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = DefaultMaxWait
	}
	key := strings.TrimSpace(opts.APIKey)
	// Accept a key pasted with its scheme, as Gcore's portal shows it in examples.
	if k, ok := cutPrefixFold(key, "apikey "); ok {
		key = strings.TrimSpace(k)
	}
	red := uploader.NewRedactor(key)
	return &Provider{
		name: env.Name,
		api: &uploader.API{
			Client:   env.Client,
			Base:     endpoint.String(),
			Header:   http.Header{"Authorization": {"APIKey " + key}},
			Errors:   readError,
			Redactor: red,
			Pacer:    uploader.NewPacer(apiRate, apiBurst),
		},
		red:  red,
		opts: opts,
		// The upload servers authenticate with the token in the metadata: the API key is
		// never sent to them.
		tus: tus.NewClient(tus.ClientOptions{HTTP: env.Client, ChunkSize: opts.ChunkSize, Redactor: red}),
		now: time.Now,
	}, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// Steps of an upload, as the checkpoint records them.
const (
	stepCreated   = "created"   // the video entity exists; no TUS upload yet
	stepUploading = "uploading" // the TUS upload exists (UploadURL)
	stepUploaded  = "uploaded"  // Gcore has the original file (or its URL): only waiting is left
)

// checkpoint is what the provider saves. It is stored in chute's state database; it holds
// the upload token (valid 4 hours, useless once the TUS upload exists) but never the API key.
type checkpoint struct {
	Step     string `json:"step"`
	VideoID  int64  `json:"video_id"`
	ClientID int64  `json:"client_id,omitempty"`
	// Origin is set when the video is copied from a URL: there is nothing to upload.
	Origin bool `json:"origin,omitempty"`
	// Token is the upload token, TokenAt when it was handed out (by our clock).
	Token   string    `json:"token,omitempty"`
	TokenAt time.Time `json:"token_at,omitzero"`
	// Servers are the creation URLs of the active upload servers, in the order listed.
	Servers []string `json:"servers,omitempty"`
	// Server is the creation URL of the server that holds UploadURL.
	Server    string `json:"server,omitempty"`
	UploadURL string `json:"upload_url,omitempty"`
	// UploadedAt is when the upload finished; MaxWait counts from there.
	UploadedAt time.Time `json:"uploaded_at,omitzero"`
}

// Upload delivers job.File to Gcore, or has Gcore copy the URL a *.url file holds, and waits
// as the options say. It continues from job.Checkpoint when there is one.
func (p *Provider) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	log := job.Log() // it carries the provider's name already
	cp, _ := uploader.LoadCheckpoint[checkpoint](job)
	save := func(ctx context.Context) error { return uploader.StoreCheckpoint(ctx, job, cp) }

	if cp.VideoID == 0 {
		name, origin := job.File.Name, ""
		if isURLFile(name) {
			u, err := readOrigin(job.File)
			if err != nil {
				return uploader.Result{}, err
			}
			name, origin = name[:len(name)-len(".url")], u
		}
		v, err := p.createVideo(ctx, name, origin)
		if err != nil {
			return uploader.Result{}, err
		}
		cp = checkpoint{Step: stepCreated, VideoID: v.ID, ClientID: v.ClientID}
		if origin != "" {
			cp.Step, cp.Origin, cp.UploadedAt = stepUploaded, true, p.now()
		}
		log.Info("gcore: video created", "video_id", v.ID, "origin_url", origin != "")
		if err := save(ctx); err != nil {
			return uploader.Result{}, err
		}
	}
	log = log.With("video_id", cp.VideoID)

	if cp.Step != stepUploaded {
		if err := p.upload(ctx, job, &cp, save, log); err != nil {
			return uploader.Result{}, p.red.With(cp.Token).Error(err)
		}
		cp.Step, cp.UploadedAt = stepUploaded, p.now()
		cp.Token, cp.TokenAt, cp.Servers = "", time.Time{}, nil
		log.Info("gcore: file uploaded", "bytes", job.File.Size)
		if err := save(ctx); err != nil {
			return uploader.Result{}, err
		}
	}
	return p.wait(ctx, &cp, log)
}

// Check asks for one page of videos, which proves the API key is accepted.
func (p *Provider) Check(ctx context.Context) error {
	var list json.RawMessage
	if err := p.call(ctx, http.MethodGet, "/streaming/videos?page=1&per_page=1", nil, &list); err != nil {
		return p.apiError("list videos", 0, err)
	}
	return nil
}

// wait polls the video until it reaches opts.Wait, fails, or MaxWait has passed since the
// upload.
func (p *Provider) wait(ctx context.Context, cp *checkpoint, log *slog.Logger) (uploader.Result, error) {
	start := cp.UploadedAt
	if start.IsZero() {
		start = p.now()
	}
	var v *video
	last := ""
	poll := uploader.Poller{Floor: p.opts.PollInterval, MaxWait: p.opts.MaxWait, Now: p.now}
	err := poll.Until(ctx, start, func(ctx context.Context) (bool, error) {
		var err error
		if v, err = p.getVideo(ctx, cp.VideoID); err != nil {
			return false, err
		}
		if v.Status != last {
			log.Debug("gcore: video status", "status", v.Status)
			last = v.Status
		}
		return p.reached(v, cp)
	})
	if errors.Is(err, uploader.ErrMaxWait) {
		return uploader.Result{}, uploader.Permanentf(
			"gcore: video %d is still %q %s after the upload, and wait: %s was asked: processing took too long (max_wait %s); the video stays on Gcore",
			cp.VideoID, v.Status, p.now().Sub(start).Round(time.Second), p.opts.Wait, p.opts.MaxWait)
	}
	if err != nil {
		return uploader.Result{}, err
	}
	return p.result(v, cp), nil
}

// reached tells whether v is as far as opts.Wait asks, or why it never will be.
func (p *Provider) reached(v *video, cp *checkpoint) (bool, error) {
	switch {
	case v.Status == "error":
		return false, uploader.Permanentf("gcore: Gcore could not process video %d: %s", v.ID, v.failure())
	case v.Status == "empty" && v.Error != "":
		if cp.Origin {
			return false, uploader.Permanentf("gcore: Gcore could not download the original file of video %d from its URL: %s", v.ID, v.Error)
		}
		return false, uploader.Permanentf("gcore: Gcore has no original file for video %d: %s", v.ID, v.Error)
	}
	switch p.opts.Wait {
	case WaitUploaded:
		// A file upload is done once TUS is; a copy once Gcore has downloaded the file.
		return !cp.Origin || v.Status != "empty", nil
	case WaitReady:
		return v.Status == "ready", nil
	default:
		return v.Status == "viewable" || v.Status == "ready", nil
	}
}

func (p *Provider) result(v *video, cp *checkpoint) uploader.Result {
	clientID := v.ClientID
	if clientID == 0 {
		clientID = cp.ClientID
	}
	u := v.IframeURL
	if u == "" && v.Slug != "" && clientID != 0 {
		u = fmt.Sprintf("%s%d_%s", playerBase, clientID, v.Slug)
	}
	extra := map[string]string{"status": v.Status}
	if v.HLSURL != "" {
		extra["hls_url"] = v.HLSURL
	}
	if v.Slug != "" {
		extra["slug"] = v.Slug
	}
	if clientID != 0 {
		extra["client_id"] = strconv.FormatInt(clientID, 10)
	}
	return uploader.Result{ID: strconv.FormatInt(v.ID, 10), URL: u, Extra: extra}
}
