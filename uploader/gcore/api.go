package gcore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/chute-dev/chute/uploader"
)

// video is the part of Gcore's video entity that chute reads.
type video struct {
	ID        int64            `json:"id"`
	ClientID  int64            `json:"client_id"`
	Name      string           `json:"name"`
	Slug      string           `json:"slug"`
	Status    string           `json:"status"`
	Error     string           `json:"error"`
	HLSURL    string           `json:"hls_url"`
	IframeURL string           `json:"iframe_url"`
	Converted []convertedVideo `json:"converted_videos"`
}

type convertedVideo struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// failure is the platform's reason for a video in status error.
func (v *video) failure() string {
	if v.Error != "" {
		return v.Error
	}
	for _, c := range v.Converted {
		if c.Error != "" {
			return fmt.Sprintf("%s: %s", c.Name, c.Error)
		}
	}
	return "Gcore gave no reason (status error)"
}

// newVideo is the body of POST /streaming/videos/.
type newVideo struct {
	Video newVideoFields `json:"video"`
}

type newVideoFields struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	DirectoryID int    `json:"directory_id,omitempty"`
	Priority    int    `json:"priority,omitempty"`
	OriginURL   string `json:"origin_url,omitempty"`
}

// uploadInfo is the answer of GET /streaming/videos/{id}/upload.
type uploadInfo struct {
	Servers []uploadServer `json:"servers"`
	Token   string         `json:"token"`
	Video   video          `json:"video"`
}

type uploadServer struct {
	ID       int64  `json:"id"`
	Role     string `json:"role"`
	Hostname string `json:"hostname"`
	Active   bool   `json:"active"`
	SSL      *bool  `json:"ssl"` // absent: https
}

// call sends one API request (after the shared rate limiter).
func (p *Provider) call(ctx context.Context, method, path string, in, out any) error {
	_, err := p.api.Send(ctx, &uploader.Request{Method: method, URL: path, JSON: in, Out: out, Decode: uploader.DecodeJSON})
	return err
}

// createVideo makes the video entity. The answer is one video or (as the OpenAPI document
// and SDK have it) an array of one.
func (p *Provider) createVideo(ctx context.Context, name, origin string) (*video, error) {
	body := newVideo{Video: newVideoFields{
		Name:        name,
		Description: p.opts.Description,
		DirectoryID: p.opts.DirectoryID,
		Priority:    p.opts.Priority,
		OriginURL:   origin,
	}}
	what := fmt.Sprintf("create video %q", name)
	var raw json.RawMessage
	if err := p.call(ctx, http.MethodPost, "/streaming/videos/", body, &raw); err != nil {
		return nil, p.apiError(what, 0, err)
	}
	v, err := decodeCreated(raw)
	if err != nil {
		return nil, uploader.TransientError(fmt.Errorf("gcore: %s: %w", what, err))
	}
	return v, nil
}

func decodeCreated(raw json.RawMessage) (*video, error) {
	raw = bytes.TrimSpace(raw)
	var v video
	if len(raw) > 0 && raw[0] == '[' {
		var vs []video
		if err := json.Unmarshal(raw, &vs); err != nil {
			return nil, fmt.Errorf("unreadable answer: %w", err)
		}
		if len(vs) == 0 {
			return nil, errors.New("the answer is an empty list")
		}
		v = vs[0]
	} else if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("unreadable answer: %w", err)
	}
	if v.ID <= 0 {
		return nil, errors.New("the answer has no video id")
	}
	return &v, nil
}

// fetchToken asks for the upload servers and a new token, into cp.
func (p *Provider) fetchToken(ctx context.Context, cp *checkpoint) error {
	var info uploadInfo
	if err := p.call(ctx, http.MethodGet, fmt.Sprintf("/streaming/videos/%d/upload", cp.VideoID), nil, &info); err != nil {
		return p.apiError("ask for an upload server and token", cp.VideoID, err)
	}
	servers := activeServers(info.Servers)
	if len(servers) == 0 {
		return uploader.TransientError(fmt.Errorf("gcore: Gcore listed no active upload server for video %d", cp.VideoID))
	}
	if info.Token == "" {
		return uploader.TransientError(fmt.Errorf("gcore: Gcore gave no upload token for video %d", cp.VideoID))
	}
	if info.Video.ClientID != 0 {
		cp.ClientID = info.Video.ClientID
	}
	if cp.ClientID == 0 {
		return uploader.TransientError(fmt.Errorf("gcore: Gcore did not tell the account's client_id for video %d", cp.VideoID))
	}
	cp.Token, cp.TokenAt, cp.Servers = info.Token, p.now(), servers
	return nil
}

// activeServers returns the creation URLs of the active upload servers, in the order listed.
func activeServers(list []uploadServer) []string {
	var out []string
	seen := make(map[string]bool)
	for _, s := range list {
		if !s.Active || (s.Role != "upload" && s.Role != "") || s.Hostname == "" {
			continue
		}
		if h, err := url.Parse("//" + s.Hostname); err != nil || h.Host != s.Hostname || h.Path != "" {
			continue // not a bare host[:port]
		}
		scheme := "https"
		if s.SSL != nil && !*s.SSL {
			scheme = "http"
		}
		u := (&url.URL{Scheme: scheme, Host: s.Hostname, Path: "/upload/"}).String()
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// getVideo reads the video entity.
func (p *Provider) getVideo(ctx context.Context, id int64) (*video, error) {
	var v video
	if err := p.call(ctx, http.MethodGet, fmt.Sprintf("/streaming/videos/%d", id), nil, &v); err != nil {
		return nil, p.apiError("ask for the video's status", id, err)
	}
	if v.ID == 0 {
		v.ID = id
	}
	return &v, nil
}

// statusError is an API answer told in Gcore's terms; it unwraps to the *uploader.StatusError.
type statusError struct {
	msg string
	se  *uploader.StatusError
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.se }

// readError reads Gcore's error answers: its field errors ({"errors":{"name":["can't be
// blank"]}}) as "name: can't be blank", or its "error", "detail" or "message".
func readError(a *uploader.Answer, f *uploader.Fault) {
	if m := uploader.JSONErrorText(a.Body, "errors", "error", "detail", "message"); m != "" {
		f.Message = uploader.Shorten(m, 300)
	}
}

// apiError turns a failed API call into an error a user can act on. videoID is the video
// the call was about (0: none), so that a 404 can say the video was deleted.
func (p *Provider) apiError(what string, videoID int64, err error) error {
	var se *uploader.StatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("gcore: %s: %w", what, err)
	}
	detail := ""
	if se.Message != "" {
		detail = ": " + se.Message
	}
	switch code := se.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return uploader.PermanentError(&statusError{se: se, msg: fmt.Sprintf(
			"gcore: %s: Gcore refused the API key (%d %s%s): check api_key (or api_key_file) of provider %q",
			what, code, http.StatusText(code), detail, p.name)})
	case code == http.StatusNotFound && videoID != 0:
		return uploader.PermanentError(&statusError{se: se, msg: fmt.Sprintf(
			"gcore: %s: video %d was deleted on the Gcore side (404 Not Found); the upload cannot go on",
			what, videoID)})
	case code == http.StatusUnprocessableEntity:
		if detail == "" {
			detail = ": no reason given"
		}
		return uploader.PermanentError(&statusError{se: se, msg: fmt.Sprintf(
			"gcore: %s: Gcore rejected the request (422)%s", what, detail)})
	}
	return fmt.Errorf("gcore: %s: %w", what, err)
}
