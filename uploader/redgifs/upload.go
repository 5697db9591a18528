package redgifs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// errExpired says the signed URL was refused (403): a new ticket answer brings a new one.
var errExpired = errors.New("the signed upload URL was refused as expired")

// deliver gets the file to the platform: it asks for a ticket and PUTs the file to its signed
// URL, unless the platform has it already. A job resumed with a ticket asks that ticket's
// status first: a file the platform received is never PUT again.
func (p *Provider) deliver(ctx context.Context, job *uploader.Job, cp *checkpoint, save saveFunc, log *slog.Logger) error {
	name := job.File.Name
	if cp.Step == stepTicket && cp.Ticket != "" {
		st, err := p.askStatus(ctx, cp.Ticket)
		switch {
		case statusCode(err) == http.StatusNotFound:
			log.Info("redgifs: the saved ticket is gone, asking for a new one", "ticket", cp.Ticket)
		case err != nil:
			return err
		case st.Status == "failed":
			return p.failed(name, cp.Ticket, st)
		case st.received():
			log.Info("redgifs: the platform has the file already: no upload", "ticket", cp.Ticket, "status", st.Status)
			return p.uploaded(ctx, cp, save)
		}
	}
	for tries := 0; ; tries++ {
		t, err := p.askTicket(ctx, name, cp.MD5)
		if err != nil {
			return err
		}
		if cp.Step != stepTicket || cp.Ticket != t.ID {
			cp.Step, cp.Ticket = stepTicket, t.ID
			if err := save(ctx); err != nil {
				return err
			}
		}
		if t.known() {
			log.Info("redgifs: the platform knows this file (md5): no upload", "ticket", t.ID)
			return p.uploaded(ctx, cp, save)
		}
		log.Info("redgifs: ticket", "ticket", t.ID)
		err = p.put(ctx, job, t)
		if err == nil {
			log.Info("redgifs: file uploaded", "ticket", t.ID, "bytes", job.File.Size)
			return p.uploaded(ctx, cp, save)
		}
		if !errors.Is(err, errExpired) {
			return err
		}
		if tries == expiredRetries {
			return uploader.TransientError(fmt.Errorf("redgifs: upload %q: %d signed URLs in a row were refused: %w", name, tries+1, err))
		}
		log.Info("redgifs: the signed URL has expired, asking for a new ticket", "ticket", t.ID)
	}
}

// uploaded records that the platform has the file.
func (p *Provider) uploaded(ctx context.Context, cp *checkpoint, save saveFunc) error {
	cp.Step, cp.UploadedAt = stepUploaded, p.now()
	return save(ctx)
}

// put sends the file to the ticket's signed URL: the raw file with its exact length and the
// video's Content-Type, and no Authorization (the signature is in the URL).
func (p *Provider) put(ctx context.Context, job *uploader.Job, t *ticket) error {
	if t.Method != nil && *t.Method != "" && !strings.EqualFold(*t.Method, http.MethodPut) {
		return uploader.Permanentf("redgifs: RedGIFs asks for the file with %s, and chute only knows how to PUT it", *t.Method)
	}
	f := job.File
	body := uploader.NewFileBody(f, 0, f.Size).WithType(uploader.ContentType(f.Name)).WithProgress(job.ReportProgress)
	_, err := p.client.Send(ctx, &uploader.Request{
		Method: http.MethodPut,
		URL:    *t.URL,
		Body:   body,
		Expect: []int{http.StatusOK},
		What:   fmt.Sprintf("upload %q to the signed URL of ticket %s", f.Name, t.ID),
		// S3's own XML errors; a 403 (an expired signature) is this provider's to mend.
		Errors:   uploader.ReadS3Error,
		Redactor: p.api.Redactor.With(signature(*t.URL)...),
	})
	switch {
	case err == nil:
		job.ReportProgress(f.Size)
		return nil
	case statusCode(err) == http.StatusForbidden:
		return fmt.Errorf("redgifs: %w: %w", errExpired, err)
	}
	return fmt.Errorf("redgifs: %w", err)
}

// signature lists the query values of a signed URL (signature, credential, token): S3 echoes
// some of them in its error answers.
func signature(signed string) []string {
	u, err := url.Parse(signed)
	if err != nil {
		return nil
	}
	var vals []string
	for _, vs := range u.Query() {
		vals = append(vals, vs...)
	}
	return vals
}

// failed is the permanent error of a ticket the platform could not process.
func (p *Provider) failed(name, id string, st *ticketStatus) error {
	why := errorText(st.Error)
	if why == "" {
		why = "no reason given"
	}
	return uploader.Permanentf("redgifs: RedGIFs could not process %q (ticket %s): %s", name, id, why)
}

// waitReady polls the ticket's status until the platform has processed the file.
func (p *Provider) waitReady(ctx context.Context, cp *checkpoint, save saveFunc, log *slog.Logger) error {
	poll := uploader.Poller{Floor: pollFloor, Cap: pollCap, MaxWait: p.opts.MaxWait, Now: p.now}
	last := ""
	err := poll.Until(ctx, cp.UploadedAt, func(ctx context.Context) (bool, error) {
		st, err := p.askStatus(ctx, cp.Ticket)
		if statusCode(err) == http.StatusNotFound {
			// The ticket is gone: start again with a new one (the md5 may spare the PUT).
			*cp = checkpoint{MD5: cp.MD5}
			if err := save(ctx); err != nil {
				return false, err
			}
			return false, uploader.TransientError(fmt.Errorf("redgifs: upload ticket vanished before it was ready: %w", err))
		}
		if err != nil {
			return false, err
		}
		if st.Status != last {
			log.Debug("redgifs: ticket status", "ticket", cp.Ticket, "status", st.Status)
			last = st.Status
		}
		switch {
		case st.Status == "ready":
			return true, nil
		case st.Status == "failed":
			return false, p.failed("the file", cp.Ticket, st)
		case !st.received() && p.now().Sub(cp.UploadedAt) > waitingGrace:
			// The platform never saw the PUT's bytes: send them again.
			cp.Step, cp.UploadedAt = stepTicket, time.Time{}
			if err := save(ctx); err != nil {
				return false, err
			}
			return false, uploader.TransientError(fmt.Errorf("redgifs: ticket %s still waits for its file %s after the upload: uploading again", cp.Ticket, waitingGrace))
		}
		return false, nil
	})
	if errors.Is(err, uploader.ErrMaxWait) {
		return uploader.Permanentf("redgifs: RedGIFs had not processed ticket %s %s after the upload (max_wait %s); status %q", cp.Ticket, p.opts.MaxWait, p.opts.MaxWait, last)
	}
	return err
}

// submit creates the gif from the ready ticket and saves its id at once.
func (p *Provider) submit(ctx context.Context, job *uploader.Job, cp *checkpoint, save saveFunc, log *slog.Logger) error {
	tags := p.opts.Tags
	if tags == nil {
		tags = []string{}
	}
	req := map[string]any{
		"ticket":    cp.Ticket,
		"keepAudio": p.opts.KeepAudio,
		"private":   p.opts.Private,
		"tags":      tags,
	}
	if p.opts.Description != "" {
		req["description"] = p.opts.Description
	}
	if len(p.opts.Niches) > 0 {
		req["niches"] = p.opts.Niches
	}
	var out struct {
		ID string `json:"id"`
	}
	_, err := p.api.Send(ctx, &uploader.Request{
		Method: http.MethodPost,
		URL:    "/v2/gifs/submit",
		JSON:   req,
		Out:    &out,
		What:   fmt.Sprintf("create the gif of %q", job.File.Name),
	})
	if statusCode(err) == http.StatusNotFound {
		// The ticket is gone before a gif was made of it: start again with a new one.
		*cp = checkpoint{MD5: cp.MD5}
		if serr := save(ctx); serr != nil {
			return serr
		}
		return uploader.TransientError(fmt.Errorf("redgifs: create the gif of %q: the upload ticket is gone; asking for a new one: %w", job.File.Name, err))
	}
	if err != nil {
		return apiError(err)
	}
	if out.ID == "" {
		// A gif may exist; submitting again could make a second one. The user decides.
		return uploader.Permanentf("redgifs: RedGIFs answered the creation of the gif of %q (ticket %s) without a gif id", job.File.Name, cp.Ticket)
	}
	cp.Step, cp.GifID, cp.SubmittedAt = stepSubmitted, out.ID, p.now()
	log.Info("redgifs: gif created", "gif", out.ID, "ticket", cp.Ticket)
	return save(ctx)
}

// waitEncoded polls the gif's encoding until it is complete.
func (p *Provider) waitEncoded(ctx context.Context, cp *checkpoint, log *slog.Logger) error {
	poll := uploader.Poller{Floor: pollFloor, Cap: pollCap, MaxWait: p.opts.MaxWait, Now: p.now}
	last := ""
	err := poll.Until(ctx, cp.SubmittedAt, func(ctx context.Context) (bool, error) {
		st, err := p.askGifStatus(ctx, cp.GifID)
		if err != nil {
			return false, err
		}
		if s := st.state(); s != last {
			log.Debug("redgifs: gif status", "gif", cp.GifID, "status", s, "progress", st.Progress)
			last = s
		}
		switch st.state() {
		case "complete":
			return true, nil
		case "error":
			why := st.Message
			if why == "" {
				why = errorText(st.Error)
			}
			if why == "" {
				why = "no reason given"
			}
			return false, uploader.Permanentf("redgifs: RedGIFs could not encode gif %s: %s (the gif stays on RedGIFs)", cp.GifID, why)
		}
		return false, nil
	})
	if errors.Is(err, uploader.ErrMaxWait) {
		return uploader.Permanentf("redgifs: gif %s was still %q %s after it was created, and wait: encoded was asked (max_wait %s); the gif stays on RedGIFs", cp.GifID, last, p.opts.MaxWait, p.opts.MaxWait)
	}
	return err
}

// pollTimes keeps the polls of one ticket or gif at least floor apart across the attempts
// of a job (a retry right after a failed attempt would otherwise poll at once).
type pollTimes struct {
	floor time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

func newPollTimes(floor time.Duration) *pollTimes {
	return &pollTimes{floor: floor, last: make(map[string]time.Time)}
}

// do waits until floor has passed since key was last polled, then calls poll.
func (p *pollTimes) do(ctx context.Context, key string, poll func() error) error {
	p.mu.Lock()
	wait := time.Until(p.last[key].Add(p.floor))
	p.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	now := time.Now()
	p.mu.Lock()
	// Only the last floor's polls matter: forget the older ones, so the map stays small.
	for k, at := range p.last {
		if now.Sub(at) >= p.floor {
			delete(p.last, k)
		}
	}
	p.last[key] = now
	p.mu.Unlock()
	return poll()
}
