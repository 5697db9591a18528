package gcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// upload makes sure all of job.File is on one of Gcore's upload servers. It resumes the TUS
// upload the checkpoint names, or creates one with a valid token, trying the listed servers
// in turn; a token the server refuses is replaced once.
func (p *Provider) upload(ctx context.Context, job *uploader.Job, cp *checkpoint, save func(context.Context) error, log *slog.Logger) error {
	fresh := false // a token was fetched during this call
	for {
		if cp.UploadURL == "" && !p.tokenUsable(cp) {
			if err := p.fetchToken(ctx, cp); err != nil {
				return err
			}
			fresh = true
			log.Debug("gcore: got an upload token", "servers", len(cp.Servers))
			if err := save(ctx); err != nil {
				return err
			}
		}
		token := cp.Token
		err := p.transfer(ctx, job, cp, save, log)
		if err == nil {
			return nil
		}
		err = p.red.With(token).Error(err)
		if cp.UploadURL != "" || !tokenRefused(err) {
			return err
		}
		if fresh {
			return uploader.PermanentError(fmt.Errorf("gcore: the upload server refused a new upload token for video %d: %w", cp.VideoID, err))
		}
		log.Info("gcore: the upload server refused the upload token; asking for a new one", "err", err)
		cp.Token, cp.TokenAt = "", time.Time{}
	}
}

// tokenUsable tells whether cp holds a token that is still good for creating an upload.
func (p *Provider) tokenUsable(cp *checkpoint) bool {
	if cp.Token == "" || len(cp.Servers) == 0 || cp.ClientID == 0 {
		return false
	}
	age := p.now().Sub(cp.TokenAt)
	return age > -time.Minute && age < tokenLifetime-tokenMargin
}

// transfer runs the TUS transfer: on the server that holds cp.UploadURL when there is one,
// else on the first listed server that answers, moving on from one that fails (a network
// error or a 5xx) before the upload exists.
func (p *Provider) transfer(ctx context.Context, job *uploader.Job, cp *checkpoint, save func(context.Context) error, log *slog.Logger) error {
	meta := map[string]string{
		"filename":  job.File.Name,
		"filetype":  uploader.ContentType(job.File.Name),
		"token":     cp.Token,
		"video_id":  strconv.FormatInt(cp.VideoID, 10),
		"client_id": strconv.FormatInt(cp.ClientID, 10),
	}
	servers := cp.Servers
	if cp.UploadURL != "" && cp.Server != "" {
		servers = []string{cp.Server}
	}
	if len(servers) == 0 {
		return uploader.TransientError(fmt.Errorf("gcore: no upload server known for video %d", cp.VideoID))
	}
	var lastErr error
	for _, srv := range servers {
		err := p.tus.Transfer(ctx, srv, job, meta, &cp.UploadURL, func(ctx context.Context) error {
			cp.Step, cp.Server = stepUploading, srv
			return save(ctx)
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || cp.UploadURL != "" || !serverFailed(err) || tokenRefused(err) {
			return err
		}
		log.Warn("gcore: upload server failed; trying the next one", "server", hostOf(srv), "err", p.red.With(cp.Token).Error(err))
		lastErr = err
	}
	if len(servers) == 1 {
		return lastErr
	}
	return fmt.Errorf("gcore: every upload server failed: %w", lastErr)
}

// serverFailed tells whether err says the upload server is down rather than that it
// refused the request: a network error or a 5xx.
func serverFailed(err error) bool {
	var se *uploader.StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 500
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	c, _ := uploader.Classify(err)
	return c == uploader.Transient
}

// tokenRefused tells whether err is an upload server refusing the token (documented as a
// 500 whose text names the token, e.g. "token invalid (null)").
func tokenRefused(err error) bool {
	var se *uploader.StatusError
	return errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode != 429 &&
		strings.Contains(strings.ToLower(se.Body), "token")
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}
