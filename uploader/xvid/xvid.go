// Package xvid is chute's provider for Xvid MediaHub (API v1).
//
// For each file it creates an upload record (POST /v1/files/uploads/?object_key=&pipeline_id=),
// whose answer carries an S3 POST policy form; it posts the file with every field of that
// form in the order given and the file last (one streamed multipart body of exact length),
// tells Xvid the upload is finished (PUT /v1/files/uploads/{id} with nb_chunks 1) and polls the
// record until it leaves UPLOADING and COMPLETING.
//
// Calls to the API carry an OAuth2 bearer token (client credentials), one for every job of the
// provider, renewed before it expires and once when Xvid refuses it.
//
// The upload record and its form are checkpointed before the form POST, the end of the POST
// before the finish, and the finish before the polling: a resumed job never makes a second
// record, never re-sends a file S3 has stored (a crash in the instant between S3's answer and
// the checkpoint excepted: the same form is then posted again, to the same key), and goes
// straight to polling once it had finished.
package xvid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// DefaultEndpoint is the base URL of Xvid's public API.
const DefaultEndpoint = "https://api.xvid.com"

// Defaults of the options.
const (
	// DefaultScope is what the token asks for: reading and writing MediaHub files.
	DefaultScope = "mediahub,mediahub_write"
	// DefaultPollInterval is the least time between two status polls after the finish.
	DefaultPollInterval = 2 * time.Second
	// DefaultMaxWait is how long Upload polls a COMPLETING upload before giving up.
	DefaultMaxWait = time.Hour
)

const (
	// tokenMargin renews a token this long before Xvid says it expires.
	tokenMargin = 2 * time.Minute
	// pollCap is the longest pause between polls, as the backoff grows.
	pollCap = 30 * time.Second
	// apiRate and apiBurst space the account's API calls (Xvid states no limit; this keeps a
	// burst of new files from hammering it).
	apiRate  = 10
	apiBurst = 10
	// saveTimeout bounds the save of a checkpoint after a remote step, which a stop does not cut.
	saveTimeout = 10 * time.Second
)

// Options are the `xvid` provider's config keys (besides type, endpoint and concurrency).
type Options struct {
	// ClientID is the OAuth2 client's id.
	ClientID string `yaml:"client_id" chute:"required"`
	// ClientSecret is the OAuth2 client's secret.
	ClientSecret string `yaml:"client_secret" chute:"required,secret"`
	// Scope is what the token asks for, comma-separated (default mediahub,mediahub_write).
	Scope string `yaml:"scope"`
	// PipelineID is the MediaHub pipeline the files go into.
	PipelineID string `yaml:"pipeline_id" chute:"required"`
	// ObjectKey is the template of each file's object key (default {path}).
	ObjectKey string `yaml:"object_key"`
	// ExpiresAfter is how long Xvid keeps an uploaded file that no job uses: "" (Xvid's
	// default, 7 days), "never", or a duration such as 720h.
	ExpiresAfter string `yaml:"expires_after"`
	// PollInterval is the least time between two status polls after the finish.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxWait is how long, after the finish, Upload waits for Xvid to complete the upload.
	MaxWait time.Duration `yaml:"max_wait"`
}

// DefaultOptions returns the options with their defaults set.
func DefaultOptions() Options {
	return Options{
		Scope:        DefaultScope,
		ObjectKey:    DefaultObjectKey,
		PollInterval: DefaultPollInterval,
		MaxWait:      DefaultMaxWait,
	}
}

// Validate reports every option with a value Xvid or chute cannot use. A zero Scope,
// ObjectKey, PollInterval or MaxWait stands for its default.
func (o Options) Validate() []uploader.FieldError {
	errs := append(uploader.OneLine("client_id", o.ClientID, false), uploader.OneLine("client_secret", o.ClientSecret, true)...)
	add := func(key, format string, args ...any) {
		errs = append(errs, uploader.FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if id := strings.TrimSpace(o.PipelineID); id == "" {
		add("pipeline_id", "required: the id of the MediaHub pipeline the files go into")
	} else if strings.ContainsAny(id, "/?#&= \t\r\n") {
		add("pipeline_id", "%q is not a pipeline id", id)
	}
	if o.Scope != "" {
		if _, err := scopes(o.Scope); err != nil {
			add("scope", "%v", err)
		}
	}
	if o.ObjectKey != "" {
		if msg := checkKeyTemplate(o.ObjectKey); msg != "" {
			add("object_key", "%s", msg)
		}
	}
	if _, _, err := expiresAfter(o.ExpiresAfter); err != nil {
		add("expires_after", "%v", err)
	}
	errs = append(errs, uploader.NotNegative("poll_interval", o.PollInterval, "")...)
	return append(errs, uploader.NotNegative("max_wait", o.MaxWait, "")...)
}

// scopes checks a comma-separated scope list and returns it tidied.
func scopes(s string) (string, error) {
	var out []string
	for _, sc := range strings.Split(s, ",") {
		sc = strings.TrimSpace(sc)
		if sc == "" {
			continue
		}
		if strings.ContainsAny(sc, " \t\r\n&=") {
			return "", fmt.Errorf("%q is not a scope name", sc)
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return "", errors.New("must name at least one scope (default " + DefaultScope + ")")
	}
	return strings.Join(out, ","), nil
}

// expiresAfter reads the expires_after option: set is false for Xvid's default; never
// gives d 0.
func expiresAfter(s string) (d time.Duration, set bool, err error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return 0, false, nil
	case "never":
		return 0, true, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil || d < time.Minute {
		return 0, false, fmt.Errorf("%q is not \"never\" or a duration of at least 1m (e.g. 720h)", s)
	}
	return d, true, nil
}

// Type is the `xvid` provider type.
func Type() uploader.Type {
	return uploader.NewType("xvid", DefaultEndpoint, DefaultOptions, func(env uploader.Env, o Options) (uploader.Provider, error) {
		return New(env, o)
	})
}

// Provider uploads to Xvid MediaHub. One Provider serves every job of one configured
// provider; they share its token and its API pacer.
type Provider struct {
	name     string // the provider's name in the config, for messages
	endpoint string // without a trailing slash
	opts     Options
	scope    string
	expires  time.Duration // with hasExp: 0 = never
	hasExp   bool
	api      *uploader.API
	tokens   *uploader.TokenSource
	red      *uploader.Redactor
	now      func() time.Time
}

var (
	_ uploader.Provider = (*Provider)(nil)
	_ uploader.Checker  = (*Provider)(nil)
)

// New returns an `xvid` provider. env.Endpoint "" means DefaultEndpoint.
func New(env uploader.Env, opts Options) (*Provider, error) {
	if err := uploader.OptionsError("xvid", opts.Validate()); err != nil {
		return nil, err
	}
	base, err := env.EndpointURL("xvid", DefaultEndpoint)
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimRight(base.String(), "/")
	if opts.Scope == "" {
		opts.Scope = DefaultScope
	}
	if opts.ObjectKey == "" {
		opts.ObjectKey = DefaultObjectKey
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = DefaultMaxWait
	}
	opts.ClientID, opts.ClientSecret, opts.PipelineID = strings.TrimSpace(opts.ClientID), strings.TrimSpace(opts.ClientSecret), strings.TrimSpace(opts.PipelineID)
	scope, _ := scopes(opts.Scope)
	exp, hasExp, _ := expiresAfter(opts.ExpiresAfter)
	red := uploader.NewRedactor(opts.ClientSecret)
	p := &Provider{
		name:     env.Name,
		endpoint: endpoint,
		opts:     opts,
		scope:    scope,
		expires:  exp,
		hasExp:   hasExp,
		red:      red,
		now:      time.Now,
	}
	p.api = &uploader.API{
		Client:   env.Client,
		Base:     p.endpoint,
		Errors:   decodeAPIError,
		Redactor: red,
		Pacer:    uploader.NewPacer(apiRate, apiBurst),
	}
	p.tokens = uploader.NewTokenSource(p.fetchToken, tokenMargin)
	return p, nil
}

// Steps of an upload, as the checkpoint records them.
const (
	stepCreated  = "created"  // the upload record exists; the form has not been stored by S3
	stepPosted   = "posted"   // S3 stored the file (201); Xvid has not been told
	stepFinished = "finished" // Xvid was told (nb_chunks 1); only waiting is left
)

// checkpoint is what the provider saves. It holds the upload record's form, whose policy
// and signature let anyone post to that one key until the policy expires: it stays in chute's
// state database, never in a log or an error.
type checkpoint struct {
	Step       string               `json:"step"`
	UploadID   string               `json:"upload_id"`
	FileID     string               `json:"file_id"`
	ObjectKey  string               `json:"object_key"`
	PipelineID string               `json:"pipeline_id"`
	FormURL    string               `json:"form_url,omitempty"`
	Form       []uploader.FormField `json:"form,omitempty"`
	FinishedAt time.Time            `json:"finished_at,omitzero"`
}

// Upload delivers job.File to Xvid, continuing from job.Checkpoint when there is one.
func (p *Provider) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	log := job.Log().With("provider", "xvid")
	cp, _ := uploader.LoadCheckpoint[checkpoint](job)

	if cp.UploadID == "" || cp.Step == "" {
		key, err := objectKey(p.opts.ObjectKey, job.File)
		if err != nil {
			return uploader.Result{}, err
		}
		rec, err := p.createUpload(ctx, key)
		if err != nil {
			return uploader.Result{}, err
		}
		cp = checkpoint{
			Step:       stepCreated,
			UploadID:   rec.ID,
			FileID:     rec.File.ID,
			ObjectKey:  key,
			PipelineID: p.opts.PipelineID,
			FormURL:    rec.FormPostURL,
			Form:       rec.FormPostParams,
		}
		log.Info("xvid: upload record created", "upload_id", cp.UploadID, "object_key", key)
		if err := uploader.StoreCheckpoint(ctx, job, cp); err != nil {
			return uploader.Result{}, err
		}
	}
	log = log.With("upload_id", cp.UploadID)

	if cp.Step == stepCreated {
		if err := p.postForm(ctx, job, &cp); err != nil {
			if errors.Is(err, errFormExpired) {
				// The record's form can no longer be used: the next attempt makes a new record.
				log.Warn("xvid: the upload form expired; a new upload record will be made")
				if serr := uploader.StoreCheckpoint(ctx, job, checkpoint{}); serr != nil {
					return uploader.Result{}, serr
				}
			}
			return uploader.Result{}, err
		}
		cp.Step, cp.FormURL, cp.Form = stepPosted, "", nil
		log.Info("xvid: file stored", "bytes", job.File.Size)
		if err := storeDone(ctx, job, cp); err != nil {
			return uploader.Result{}, err
		}
	}

	if cp.Step == stepPosted {
		if err := p.finish(ctx, cp.UploadID); err != nil {
			return uploader.Result{}, err
		}
		cp.Step, cp.FinishedAt = stepFinished, p.now()
		if err := storeDone(ctx, job, cp); err != nil {
			return uploader.Result{}, err
		}
	}
	return p.wait(ctx, &cp, log)
}

// storeDone saves the checkpoint of a remote step that has just succeeded. A stop that
// arrives in the meantime does not cancel the save: the step is done, and a checkpoint that
// missed it would repeat it (post the file again) on the next attempt.
func storeDone(ctx context.Context, job *uploader.Job, cp checkpoint) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	return uploader.StoreCheckpoint(ctx, job, cp)
}

// Check gets a token, which proves the client credentials and the scope are accepted.
func (p *Provider) Check(ctx context.Context) error {
	_, err := p.fetchToken(ctx)
	return err
}

// wait polls the upload record until it leaves UPLOADING and COMPLETING.
func (p *Provider) wait(ctx context.Context, cp *checkpoint, log *slog.Logger) (uploader.Result, error) {
	poll := uploader.Poller{Floor: p.opts.PollInterval, Cap: max(p.opts.PollInterval, pollCap), MaxWait: p.opts.MaxWait}
	var rec *uploadRecord
	last := ""
	err := poll.Until(ctx, cp.FinishedAt, func(ctx context.Context) (bool, error) {
		r, err := p.getUpload(ctx, cp.UploadID)
		if err != nil {
			return false, err
		}
		if r.Status != last {
			log.Debug("xvid: upload status", "status", r.Status)
			last = r.Status
		}
		if r.Error != nil {
			return false, uploader.Permanentf("xvid: Xvid could not complete upload %s (%s): %s", cp.UploadID, r.Error.Code, p.red.String(r.Error.Message))
		}
		rec = r
		// Only UPLOADING and COMPLETING are documented; any other status without an error
		// is taken as done.
		return r.Status != "UPLOADING" && r.Status != "COMPLETING", nil
	})
	if errors.Is(err, uploader.ErrMaxWait) {
		return uploader.Result{}, uploader.Permanentf("xvid: upload %s is still %s %s after the finish (max_wait %s); the file stays at Xvid",
			cp.UploadID, last, p.now().Sub(cp.FinishedAt).Round(time.Second), p.opts.MaxWait)
	}
	if err != nil {
		return uploader.Result{}, err
	}
	fileID := rec.File.ID
	if fileID == "" {
		fileID = cp.FileID
	}
	if fileID == "" {
		return uploader.Result{}, uploader.Permanentf("xvid: upload %s is %s but Xvid names no file id", cp.UploadID, rec.Status)
	}
	extra := map[string]string{"object_key": cp.ObjectKey, "pipeline_id": cp.PipelineID, "upload_id": cp.UploadID}
	if rec.Status != "" {
		extra["status"] = rec.Status
	}
	return uploader.Result{
		ID:    fileID,
		URL:   p.endpoint + "/v1/files/downloads/?" + url.Values{"file_id": {fileID}, "redirect": {"true"}}.Encode(),
		Extra: extra,
	}, nil
}

// expiresAt is the expires_at query value for a record made now, or "" for none.
func (p *Provider) expiresAt() string {
	if !p.hasExp {
		return ""
	}
	if p.expires == 0 {
		return "0"
	}
	return strconv.FormatInt(p.now().Add(p.expires).Unix(), 10)
}

// refused tells whether an API error is Xvid refusing the token (403): worth one renewal.
func refused(err error) bool {
	var te *tokenError
	if errors.As(err, &te) {
		return false
	}
	var se *uploader.StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusForbidden
}
