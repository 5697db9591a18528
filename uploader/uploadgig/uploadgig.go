// Package uploadgig is chute's provider for UploadGig (file hosting).
//
// For each attempt it logs in (POST /api/get_upload_action with user and pass), which hands
// out an upload action (a URL valid for 60 seconds, for one upload) and the space left on the
// account; it refuses a file larger than that space without sending a byte, then POSTs the
// raw file to the action with its name in the Slug header and reads the answer.
//
// UploadGig counts every call as a login and locks the account for minutes when there are
// too many ("-3"), so the logins of every job of a provider go one at a time, spaced by
// login_interval, and a "-3" pauses every job of the provider (uploader.RateLimitError).
//
// The protocol has no resume: a retry sends the whole file again. What cannot be repeated is
// the stored file, so the answer is saved in the checkpoint the moment it has arrived, and a
// job that finds it there returns it without sending anything.
package uploadgig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/chute-dev/chute/uploader"
)

// DefaultEndpoint is UploadGig's base URL.
const DefaultEndpoint = "https://uploadgig.com"

// Defaults of the options.
const (
	// DefaultRateLimitWait is how long every job waits after a "-3" ("you can't login a few
	// minutes").
	DefaultRateLimitWait = 5 * time.Minute
	// DefaultLoginInterval is the least time between two logins of one provider.
	DefaultLoginInterval = 2 * time.Second
)

// identityRetries is how many times an upload refused for its action ("Invalid identity
// provided": expired or spent) is tried again with a fresh one within one attempt.
const identityRetries = 2

// drainLimit is how long the end of an answer already recorded is waited for.
const drainLimit = 10 * time.Second

// maxAnswer bounds the upload host's answer, a few hundred bytes of JSON.
const maxAnswer = 1 << 20

// Options are the `uploadgig` provider's config keys (besides type, endpoint and
// concurrency).
type Options struct {
	// User is the account's login (its e-mail address).
	User string `yaml:"user" chute:"required"`
	// Pass is the account's password.
	Pass string `yaml:"pass" chute:"required,secret"`
	// RateLimitWait is how long every job of the provider waits after UploadGig answered
	// "-3" to a login.
	RateLimitWait time.Duration `yaml:"rate_limit_wait"`
	// LoginInterval is the least time between two logins (each upload attempt is one).
	LoginInterval time.Duration `yaml:"login_interval"`
}

// DefaultOptions returns the options with their defaults set.
func DefaultOptions() Options {
	return Options{RateLimitWait: DefaultRateLimitWait, LoginInterval: DefaultLoginInterval}
}

// Validate reports every option chute cannot use. A zero RateLimitWait stands for its
// default; a zero LoginInterval does not space logins (they still go one at a time).
func (o Options) Validate() []uploader.FieldError {
	errs := append(uploader.OneLine("user", o.User, false), uploader.OneLine("pass", o.Pass, true)...)
	errs = append(errs, uploader.NotNegative("rate_limit_wait", o.RateLimitWait, "")...)
	return append(errs, uploader.NotNegative("login_interval", o.LoginInterval, "must not be negative (0: logins are not spaced)")...)
}

// Type is the `uploadgig` provider type.
func Type() uploader.Type {
	return uploader.NewType("uploadgig", DefaultEndpoint, DefaultOptions, func(env uploader.Env, o Options) (uploader.Provider, error) {
		return New(env, o)
	})
}

// Provider uploads to UploadGig. One Provider serves every job of one configured provider;
// they share its login slot.
type Provider struct {
	name     string // the provider's name in the config, for messages
	loginURL string
	client   *uploader.Client
	opts     Options
	redactor *uploader.Redactor
	// login holds the one login in flight: UploadGig counts every call, and calls that
	// overlap look like an attack.
	login chan struct{}
	pacer *rate.Limiter // nil: logins not spaced
	// lockedAt is when the last "-3" came (held with the login slot): the jobs that were
	// already waiting for the slot then are told without logging in to hear it again.
	lockedAt time.Time
}

var (
	_ uploader.Provider = (*Provider)(nil)
	_ uploader.Checker  = (*Provider)(nil)
)

// New returns an `uploadgig` provider. env.Endpoint "" means DefaultEndpoint.
func New(env uploader.Env, opts Options) (*Provider, error) {
	if err := uploader.CheckOptions(opts); err != nil {
		return nil, fmt.Errorf("uploadgig: %w", err)
	}
	if env.Client == nil {
		return nil, errors.New("uploadgig: no HTTP client")
	}
	endpoint := env.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if _, err := uploader.ParseEndpoint(endpoint); err != nil {
		return nil, fmt.Errorf("uploadgig: %w", err)
	}
	if opts.RateLimitWait == 0 {
		opts.RateLimitWait = DefaultRateLimitWait
	}
	p := &Provider{
		name:     env.Name,
		loginURL: strings.TrimRight(endpoint, "/") + "/api/get_upload_action",
		client:   env.Client,
		opts:     opts,
		redactor: uploader.NewRedactor(opts.Pass),
		login:    make(chan struct{}, 1),
	}
	if opts.LoginInterval > 0 {
		p.pacer = rate.NewLimiter(rate.Every(opts.LoginInterval), 1)
	}
	return p, nil
}

// checkpoint is what a job keeps: how many times the file was sent, and the answer once it
// has arrived.
type checkpoint struct {
	// Sent counts the POSTs of the file begun, saved before each.
	Sent int `json:"sent,omitempty"`
	// Answer is UploadGig's answer for the stored file.
	Answer *Answer `json:"answer,omitempty"`
}

// Upload sends the file, or returns the answer its checkpoint holds.
func (p *Provider) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	f := job.File
	log := job.Log().With("provider", p.name)
	cp, _ := uploader.LoadCheckpoint[checkpoint](job)
	if cp.Answer != nil {
		log.Info("uploadgig: the answer was recorded before: nothing is sent again", "id", string(cp.Answer.ID))
		job.ReportProgress(f.Size)
		return p.result(f, *cp.Answer)
	}
	if cp.Sent > 0 {
		log.Info("uploadgig: an earlier upload of the file was cut before UploadGig answered: sending it whole again (UploadGig cannot resume)", "sent_before", cp.Sent)
	}
	for try := 0; ; try++ {
		act, err := p.action(ctx)
		if err != nil {
			return uploader.Result{}, err
		}
		if left, ok := spaceLeft(act.Cmbs); ok && !fits(f.Size, left) {
			return uploader.Result{}, uploader.Permanentf(
				"file too large for the space left on the account (%s MB): %q is %s; free space on UploadGig, then run chute retry",
				act.Cmbs, f.Name, sizeText(f.Size))
		} else if !ok {
			log.Warn("uploadgig: the login's answer does not say how much space is left; UploadGig will refuse the file if it does not fit", "cmbs", string(act.Cmbs))
		}
		cp.Sent++
		if err := uploader.StoreCheckpoint(ctx, job, cp); err != nil {
			return uploader.Result{}, err
		}
		ans, err := p.send(ctx, job, cp, act.Action)
		if err != nil {
			return uploader.Result{}, err
		}
		if !ans.OK {
			switch {
			case ans.Message == msgInvalidIdentity && try < identityRetries:
				log.Info("uploadgig: the upload action was refused (expired or spent): asking for a new one")
				continue
			case ans.Message == msgInvalidIdentity:
				return uploader.Result{}, uploader.TransientError(fmt.Errorf("upload %q: UploadGig refused %d fresh upload actions in a row: %s", f.Name, try+1, ans.Message))
			case ans.Message == msgStorageFull:
				return uploader.Result{}, uploader.Permanentf("upload %q (%s): UploadGig says %q: free space on the account, then run chute retry", f.Name, sizeText(f.Size), ans.Message)
			default:
				return uploader.Result{}, uploader.Permanentf("upload %q: UploadGig refused the file: %s", f.Name, p.redactor.String(orNone(ans.Message)))
			}
		}
		return p.result(f, ans)
	}
}

// action logs in, one login at a time for the whole provider, and returns the upload action.
func (p *Provider) action(ctx context.Context) (uploadAction, error) {
	asked := time.Now()
	select {
	case p.login <- struct{}{}:
	case <-ctx.Done():
		return uploadAction{}, ctx.Err()
	}
	defer func() { <-p.login }()
	if left := time.Until(p.lockedAt.Add(p.opts.RateLimitWait)); p.lockedAt.After(asked) && left > 0 {
		return uploadAction{}, uploader.RateLimitError(left, fmt.Errorf(
			"UploadGig login %q: locked by UploadGig a moment ago (code -3): every upload of this provider waits %s", p.opts.User, left.Round(time.Second)))
	}
	var a loginAnswer
	_, err := p.client.Send(ctx, &uploader.Request{
		Method:   http.MethodPost,
		URL:      p.loginURL,
		Form:     url.Values{"user": {p.opts.User}, "pass": {p.opts.Pass}},
		Out:      &a,
		Decode:   uploader.DecodeJSON,
		What:     fmt.Sprintf("UploadGig login %q", p.opts.User),
		Errors:   p.loginErrors,
		Redactor: p.redactor,
		Pacer:    p.pacer,
	})
	var se *uploader.StatusError
	switch {
	case err == nil:
	case errors.As(err, &se) && se.Code == codeBadLogin:
		return uploadAction{}, fmt.Errorf("%w (check user and pass, then run chute retry)", err)
	case errors.As(err, &se) && se.Code == codeRateLimited:
		p.lockedAt = time.Now()
		return uploadAction{}, fmt.Errorf("%w (every upload of this provider waits %s)", err, p.opts.RateLimitWait)
	default:
		return uploadAction{}, err
	}
	var act uploadAction
	if err := json.Unmarshal(a.Result, &act); err != nil {
		return uploadAction{}, uploader.TransientError(fmt.Errorf("UploadGig login %q: unreadable result: %w", p.opts.User, err))
	}
	if _, err := uploader.ParseEndpoint(act.Action); err != nil {
		return uploadAction{}, uploader.TransientError(fmt.Errorf("UploadGig login %q: the upload action: %w", p.opts.User, err))
	}
	return act, nil
}

// loginErrors reads the login's answer codes, which come in a 200: "0" is a refused login
// (permanent), "-3" a lock of the whole account for minutes (every job waits).
func (p *Provider) loginErrors(a *uploader.Answer, f *uploader.Fault) {
	var la loginAnswer
	if f.Failed || json.Unmarshal(a.Body, &la) != nil {
		return // an HTTP error, or not JSON: the default reading
	}
	f.Code = string(la.Code)
	switch la.Code {
	case codeOK:
		return
	case codeBadLogin:
		f.Class = uploader.Permanent
	case codeRateLimited:
		f.Class, f.After = uploader.RateLimited, p.opts.RateLimitWait
	default:
		f.Class = uploader.Transient // an answer this provider does not know: tried again
	}
	f.Failed, f.Message = true, orNone(la.message())
}

// send POSTs the file to action and reads the answer. The answer is saved in the checkpoint
// as soon as its JSON is complete, before the response has ended: from then on the file is
// never sent again.
func (p *Provider) send(ctx context.Context, job *uploader.Job, cp checkpoint, action string) (Answer, error) {
	f := job.File
	// The request has its own context so that the rest of the answer, once it is recorded,
	// is waited for no longer than drainLimit.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := p.client.Stream(ctx, &uploader.Request{
		Method:   http.MethodPost,
		URL:      action,
		Header:   http.Header{"Slug": {slug(f.Name)}, "Accept": {"application/json"}},
		Body:     uploader.NewFileBody(f, 0, f.Size).WithType("application/octet-stream").WithProgress(job.ReportProgress),
		What:     fmt.Sprintf("upload %q", f.Name),
		Redactor: p.redactor,
	})
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&raw); err != nil {
		if ctx.Err() != nil {
			return Answer{}, ctx.Err()
		}
		return Answer{}, uploader.TransientError(fmt.Errorf("upload %q: read the answer: %w", f.Name, p.redactor.Error(err)))
	}
	ans, err := decodeAnswer(raw)
	if err != nil {
		return Answer{}, uploader.TransientError(fmt.Errorf("upload %q: unreadable answer %s: %w", f.Name, p.redactor.String(uploader.BodyText(raw, 300)), err))
	}
	if ans.OK {
		// Saved even while stopping: the file is stored, and sending it again would store
		// a second copy.
		if err := uploader.StoreCheckpoint(context.WithoutCancel(ctx), job, checkpoint{Sent: cp.Sent, Answer: &ans}); err != nil {
			return Answer{}, err
		}
		job.Log().Info("uploadgig: answer recorded", "provider", p.name, "id", string(ans.ID), "stored_as", ans.FileName)
	}
	// Read to the end, so that the connection is kept for the next upload; a server slow to
	// end its answer is cut after drainLimit: the answer is what mattered.
	stop := time.AfterFunc(drainLimit, cancel)
	defer stop.Stop()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return ans, nil
}

// result is the sidecar's part of an accepted upload.
func (p *Provider) result(f *uploader.File, a Answer) (uploader.Result, error) {
	if a.URL == "" || a.ID == "" {
		return uploader.Result{}, uploader.Permanentf("upload %q: UploadGig accepted the file but its answer has no url or id (%s): look for the file in the account", f.Name, orNone(a.Message))
	}
	name := a.FileName
	if name == "" {
		name = f.Name
	}
	extra := map[string]string{"file_name": name}
	if a.Size != "" {
		extra["size"] = string(a.Size)
	}
	return uploader.Result{ID: string(a.ID), URL: a.URL, Extra: extra}, nil
}

// Check logs in once (`chute check --online`): the credentials work and UploadGig answers.
func (p *Provider) Check(ctx context.Context) error {
	_, err := p.action(ctx)
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(no message)"
	}
	return s
}

// sizeText is a file size in bytes and MB, as messages show it.
func sizeText(n int64) string {
	return strconv.FormatInt(n, 10) + " bytes (" + strconv.FormatFloat(float64(n)/mb, 'f', 1, 64) + " MB)"
}
