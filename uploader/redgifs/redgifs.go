// Package redgifs is chute's provider for RedGIFs (API v2).
//
// For each file it asks for an upload ticket with the file's md5 (POST /v2/upload; the
// engine computes the md5 in the same read as the sidecar's SHA-256, see NeedDigests), PUTs
// the file to the signed S3 URL the ticket carries (unless the platform knows that md5 and
// needs no upload), polls the ticket's status until the platform has processed the file,
// creates the gif from the ticket (POST /v2/gifs/submit) and, with `wait: encoded`, polls the
// gif's encoding until it is complete.
//
// The ticket id is checkpointed as soon as it is handed out, the end of the PUT and the gif
// id the moment they are known. A resumed job asks the ticket's status before it decides to
// PUT, so a file the platform already received is never sent again, and a gif is never
// submitted twice once its id is saved.
package redgifs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// DefaultEndpoint is the base URL of RedGIFs' public API.
const DefaultEndpoint = "https://api.redgifs.com"

// WatchURL is where a gif is watched: the sidecar's url is WatchURL + the gif id.
const WatchURL = "https://www.redgifs.com/watch/"

// Values of the `wait` key: how far Upload waits before it returns.
const (
	// WaitUploaded returns once the ticket is ready and the gif submitted (the default).
	WaitUploaded = "uploaded"
	// WaitEncoded also waits for the gif's encoding to complete.
	WaitEncoded = "encoded"
)

// DefaultMaxWait is how long Upload waits for RedGIFs to process a file, and then to encode
// its gif, before it gives up.
const DefaultMaxWait = 2 * time.Hour

const (
	// pollFloor is the least time between two status polls of one ticket or gif: RedGIFs'
	// rule is 1 s, and the margin keeps network jitter (a first request that waits for a new
	// connection, a second that reuses it) from bringing two polls closer at the platform.
	// pollCap is what the pause between polls grows to.
	pollFloor = time.Second + 100*time.Millisecond
	pollCap   = 30 * time.Second
	// waitingGrace is how long a ticket may still say "waiting" after chute's PUT was
	// answered 200 before chute concludes the platform never got the file and PUTs again.
	waitingGrace = 2 * time.Minute
	// expiredRetries is how many new tickets one attempt asks for when the signed URL is
	// refused as expired.
	expiredRetries = 2
	// saveTimeout bounds a checkpoint save that must outlive a cancelled upload: losing the
	// gif id would submit a second gif.
	saveTimeout = 10 * time.Second
)

// Options are the `redgifs` provider's config keys (besides type, endpoint and concurrency).
type Options struct {
	// Token is a RedGIFs user token with the upload scope, sent as `Authorization: Bearer`.
	Token string `yaml:"token" chute:"required,secret"`
	// Tags are given to every gif.
	Tags []string `yaml:"tags"`
	// Private makes the gifs private.
	Private bool `yaml:"private"`
	// KeepAudio keeps the video's sound.
	KeepAudio bool `yaml:"keep_audio"`
	// Description is given to every gif ("": none).
	Description string `yaml:"description"`
	// Niches are the niches every gif is posted to (none: none).
	Niches []string `yaml:"niches"`
	// Wait is how far Upload waits: uploaded (default) or encoded.
	Wait string `yaml:"wait"`
	// MaxWait bounds the wait for processing, and then for encoding (default 2h).
	MaxWait time.Duration `yaml:"max_wait"`
}

// DefaultOptions returns the options with their defaults set.
func DefaultOptions() Options {
	return Options{Wait: WaitUploaded, MaxWait: DefaultMaxWait}
}

// Validate reports every option with a value RedGIFs or chute cannot use. A zero Wait or
// MaxWait stands for its default.
func (o Options) Validate() []uploader.FieldError {
	errs := uploader.OneLine("token", o.Token, true)
	if len(errs) == 0 && strings.ContainsAny(bareToken(o.Token), " \t") {
		errs = append(errs, uploader.FieldError{Key: "token", Msg: "must be one word, without spaces (not shown: it is a secret)"})
	}
	for i, t := range o.Tags {
		if strings.TrimSpace(t) == "" {
			errs = append(errs, uploader.FieldError{Key: fmt.Sprintf("tags[%d]", i), Msg: "must not be empty"})
		}
	}
	for i, n := range o.Niches {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, uploader.FieldError{Key: fmt.Sprintf("niches[%d]", i), Msg: "must not be empty"})
		}
	}
	errs = append(errs, uploader.OneOf("wait", o.Wait, WaitUploaded, WaitEncoded)...)
	return append(errs, uploader.NotNegative("max_wait", o.MaxWait, "")...)
}

// bareToken is the token without the spaces around it and the scheme it may be pasted with
// (browsers' developer tools show "Bearer <token>").
func bareToken(t string) string {
	t = strings.TrimSpace(t)
	if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
		t = strings.TrimSpace(t[7:])
	}
	return t
}

// Type is the `redgifs` provider type.
func Type() uploader.Type {
	return uploader.NewType("redgifs", DefaultEndpoint, DefaultOptions, func(env uploader.Env, o Options) (uploader.Provider, error) {
		return New(env, o)
	})
}

// Provider uploads to RedGIFs. One Provider serves every job of one configured provider.
type Provider struct {
	api    *uploader.API
	client *uploader.Client
	opts   Options
	polls  *pollTimes
	now    func() time.Time
}

var (
	_ uploader.Provider     = (*Provider)(nil)
	_ uploader.DigestNeeder = (*Provider)(nil)
)

// New returns a `redgifs` provider. env.Endpoint "" means DefaultEndpoint.
func New(env uploader.Env, opts Options) (*Provider, error) {
	if err := uploader.OptionsError("redgifs", opts.Validate()); err != nil {
		return nil, err
	}
	endpoint, err := env.EndpointURL("redgifs", DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	if opts.Wait == "" {
		opts.Wait = WaitUploaded
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = DefaultMaxWait
	}
	token := bareToken(opts.Token)
	opts.Token = token
	return &Provider{
		api: &uploader.API{
			Client:   env.Client,
			Base:     strings.TrimRight(endpoint.String(), "/"),
			Header:   http.Header{"Authorization": {"Bearer " + token}},
			Errors:   decodeErrors,
			Redactor: uploader.NewRedactor(token),
		},
		client: env.Client,
		opts:   opts,
		polls:  newPollTimes(pollFloor),
		now:    time.Now,
	}, nil
}

// NeedDigests asks the engine for the file's md5: the ticket is asked for with it.
func (p *Provider) NeedDigests() []uploader.Digest { return []uploader.Digest{uploader.MD5} }

// Steps of an upload, as the checkpoint records them.
const (
	stepTicket    = "ticket"    // the ticket exists; whether the platform has the file is not known
	stepUploaded  = "uploaded"  // the platform has the file (PUT answered 200, or known by md5)
	stepSubmitted = "submitted" // the gif exists (GifID)
)

// checkpoint is what the provider saves. It holds no secret: not the token, not the signed
// URL (a new one is asked for when needed).
type checkpoint struct {
	Step   string `json:"step"`
	Ticket string `json:"ticket"`
	// MD5 is the file's, as the ticket was asked for with it.
	MD5 string `json:"md5"`
	// UploadedAt is when the file reached the platform; the processing wait counts from it.
	UploadedAt time.Time `json:"uploaded_at,omitzero"`
	GifID      string    `json:"gif_id,omitempty"`
	// SubmittedAt is when the gif was created; the encoding wait counts from it.
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
}

// Upload delivers job.File to RedGIFs as a gif and waits as the options say. It continues
// from job.Checkpoint when there is one.
func (p *Provider) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	log := job.Log().With("provider", "redgifs")
	sum, err := p.md5(ctx, job)
	if err != nil {
		return uploader.Result{}, err
	}
	cp, _ := uploader.LoadCheckpoint[checkpoint](job)
	if cp.MD5 != "" && cp.MD5 != sum {
		log.Warn("redgifs: the checkpoint is for other content, starting over", "ticket", cp.Ticket)
		cp = checkpoint{}
	}
	switch {
	case cp.Step == stepSubmitted && cp.GifID == "",
		cp.Step == stepUploaded && cp.Ticket == "",
		cp.Step != "" && cp.Step != stepTicket && cp.Step != stepUploaded && cp.Step != stepSubmitted:
		log.Warn("redgifs: the checkpoint makes no sense, starting over", "step", cp.Step)
		cp = checkpoint{}
	}
	cp.MD5 = sum
	save := func(ctx context.Context) error {
		// A step the platform has taken must be recorded even when the upload is being
		// stopped: a lost ticket costs a ticket, a lost gif id a second gif.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
		defer cancel()
		return uploader.StoreCheckpoint(sctx, job, cp)
	}

	if cp.Step == "" || cp.Step == stepTicket {
		if err := p.deliver(ctx, job, &cp, save, log); err != nil {
			return uploader.Result{}, err
		}
	}
	if cp.Step == stepUploaded {
		if err := p.waitReady(ctx, &cp, save, log); err != nil {
			return uploader.Result{}, err
		}
		if err := p.submit(ctx, job, &cp, save, log); err != nil {
			return uploader.Result{}, err
		}
	}
	if p.opts.Wait == WaitEncoded {
		if err := p.waitEncoded(ctx, &cp, log); err != nil {
			return uploader.Result{}, err
		}
	}
	return uploader.Result{
		ID:    cp.GifID,
		URL:   WatchURL + url.PathEscape(cp.GifID),
		Extra: map[string]string{"ticket": cp.Ticket, "md5": cp.MD5},
	}, nil
}

// md5 returns the file's md5 as the engine computed it, or computes it when the engine did
// not (an engine without digest support): one more read of the file, but a correct ticket.
func (p *Provider) md5(ctx context.Context, job *uploader.Job) (string, error) {
	if sum := strings.ToLower(job.Digests[uploader.MD5]); len(sum) == 32 {
		return sum, nil
	}
	job.Log().Debug("redgifs: no md5 from the engine; reading the file for it")
	d, err := uploader.ComputeDigests(ctx, job.File, []uploader.Digest{uploader.MD5})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("redgifs: md5 of %s: %w", job.File.Name, err)
	}
	return d[uploader.MD5], nil
}

// save persists the checkpoint.
type saveFunc func(ctx context.Context) error
