package gcore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

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

// call waits for the shared rate limiter, then sends one API request.
func (p *Provider) call(ctx context.Context, method, path string, in, out any) error {
	if err := p.limiter.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return uploader.TransientError(fmt.Errorf("API rate limit: %w", err))
	}
	return p.http.JSON(ctx, method, p.api+path, p.auth, in, out)
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

// apiError turns a failed API call into an error a user can act on. videoID is the video
// the call was about (0: none), so that a 404 can say the video was deleted.
func (p *Provider) apiError(what string, videoID int64, err error) error {
	var se *uploader.StatusError
	if !errors.As(err, &se) {
		return redactSecret(fmt.Errorf("gcore: %s: %w", what, err), p.apiKey, "[api key]")
	}
	detail := ""
	if m := p.platformMessage(se.Body); m != "" {
		detail = ": " + m
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
	return redactSecret(fmt.Errorf("gcore: %s: %w", what, err), p.apiKey, "[api key]")
}

// platformMessage reads what an error answer says: Gcore's field errors
// ({"errors":{"name":["can't be blank"]}}) as "name: can't be blank", or its "error",
// "detail" or "message"; else the start of the body.
func (p *Provider) platformMessage(body string) string {
	body = strings.TrimSpace(body)
	if body == "" {
		return ""
	}
	msg := ""
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &m) == nil {
		for _, k := range []string{"errors", "error", "detail", "message"} {
			if raw, ok := m[k]; ok {
				if msg = flatten("", raw); msg != "" {
					break
				}
			}
		}
	}
	if msg == "" {
		msg = body
	}
	if len(msg) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	if p.apiKey != "" {
		msg = strings.ReplaceAll(msg, p.apiKey, "[api key]")
	}
	return msg
}

// flatten renders a JSON error value (a string, a list of them, or an object of those by
// field) as "field: message; field: message".
func flatten(prefix string, raw json.RawMessage) string {
	label := func(s string) string {
		if prefix == "" {
			return s
		}
		return prefix + ": " + s
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return ""
		}
		return label(s)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var parts []string
		for _, item := range list {
			var s string
			if json.Unmarshal(item, &s) == nil && s != "" {
				parts = append(parts, s)
			} else if f := flatten("", item); f != "" {
				parts = append(parts, f)
			}
		}
		if len(parts) == 0 {
			return ""
		}
		return label(strings.Join(parts, ", "))
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			if f := flatten(name, obj[k]); f != "" {
				parts = append(parts, f)
			}
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

// redactedError shows a message with a secret replaced; it unwraps to the original error,
// so that its class still reads.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactSecret hides secret in err's message.
func redactSecret(err error, secret, label string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, label), err: err}
}

// redactToken hides an upload token in err's message.
func redactToken(err error, token string) error {
	return redactSecret(err, token, "[upload token]")
}
