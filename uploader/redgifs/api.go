package redgifs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// ticket is POST /v2/upload's answer, in its 2022 form ({id, method, url}) or its 2023 one
// (the same and status).
type ticket struct {
	ID     string  `json:"id"`
	Method *string `json:"method"`
	URL    *string `json:"url"`
	Status string  `json:"status"`
}

// known tells whether the platform has the file already: no URL to PUT to, or status ready.
func (t *ticket) known() bool {
	return t.URL == nil || *t.URL == "" || t.Status == "ready"
}

// askTicket asks for an upload ticket for the file with md5 sum. Asking again for the same
// md5 is how a fresh signed URL is had: the platform keys tickets on it.
func (p *Provider) askTicket(ctx context.Context, name, sum string) (*ticket, error) {
	var t ticket
	_, err := p.api.Send(ctx, &uploader.Request{
		Method: http.MethodPost,
		URL:    "/v2/upload",
		JSON:   map[string]string{"md5": sum},
		Out:    &t,
		What:   fmt.Sprintf("ask for an upload ticket for %q", name),
	})
	if err != nil {
		return nil, apiError(err)
	}
	if t.ID == "" {
		return nil, uploader.TransientError(fmt.Errorf("redgifs: ask for an upload ticket for %q: the answer has no ticket id", name))
	}
	return &t, nil
}

// ticketStatus is GET /v2/upload/{id}/status: {"status": ..., "error": ...}.
type ticketStatus struct {
	Status string          `json:"status"`
	Error  json.RawMessage `json:"error"`
}

// received tells whether the platform has the ticket's file: any status but waiting.
func (s *ticketStatus) received() bool { return s.Status != "waiting" && s.Status != "" }

// askStatus asks for a ticket's status, never sooner than pollFloor after the last time it was
// asked (by any attempt).
func (p *Provider) askStatus(ctx context.Context, id string) (*ticketStatus, error) {
	var st ticketStatus
	err := p.polls.do(ctx, "ticket "+id, func() error {
		_, err := p.api.Send(ctx, &uploader.Request{
			URL:  "/v2/upload/" + url.PathEscape(id) + "/status",
			Out:  &st,
			What: "ask for the status of upload ticket " + id,
		})
		return err
	})
	if err != nil {
		return nil, apiError(err)
	}
	return &st, nil
}

// gifStatus is GET /v1/gifs/fetch/status/{id}, e.g. {"task":"encoding","progress":3}: the
// documentation's example says task and its prose status, so both are read.
type gifStatus struct {
	Task     string          `json:"task"`
	Status   string          `json:"status"`
	Progress json.Number     `json:"progress"`
	Message  string          `json:"message"`
	Error    json.RawMessage `json:"error"`
}

func (g *gifStatus) state() string {
	if g.Task != "" {
		return g.Task
	}
	return g.Status
}

func (p *Provider) askGifStatus(ctx context.Context, id string) (*gifStatus, error) {
	var st gifStatus
	err := p.polls.do(ctx, "gif "+id, func() error {
		_, err := p.api.Send(ctx, &uploader.Request{
			URL:  "/v1/gifs/fetch/status/" + url.PathEscape(id),
			Out:  &st,
			What: "ask for the encoding status of gif " + id,
		})
		return err
	})
	if err != nil {
		return nil, apiError(err)
	}
	return &st, nil
}

// apiError puts the words a user needs before a refused token's error.
func apiError(err error) error {
	var se *uploader.StatusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.StatusCode {
	case http.StatusUnauthorized:
		return uploader.PermanentError(fmt.Errorf("redgifs: RedGIFs refused the token (it is wrong or has expired); uploading needs a RedGIFs user token with the upload scope: set a new one as token (or token_file): %w", err))
	case http.StatusForbidden:
		return uploader.PermanentError(fmt.Errorf("redgifs: RedGIFs forbade the request; uploading needs a user token with the upload scope (a client-credentials token is read-only): %w", err))
	}
	return fmt.Errorf("redgifs: %w", err)
}

// statusCode is the HTTP status of a failed answer in err, or 0.
func statusCode(err error) int {
	var se *uploader.StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// decodeErrors reads RedGIFs' API errors: always an `error` object, whose inner keys vary
// ({"code","description"}, {"code","message","status"}, and on 429 a "delay" in seconds).
// A 401 is permanent (a daemon cannot log in again by itself), a 429 pauses every job of the
// provider (the limit is the account's) for error.delay, or Retry-After; a 409 (the ticket is
// not ready yet) is worth another try.
func decodeErrors(a *uploader.Answer, f *uploader.Fault) {
	if !f.Failed {
		return
	}
	msg, code, delay := readErrorObject(a.Body)
	if msg != "" {
		f.Message = msg
	}
	if code != "" {
		f.Code = code
	}
	switch a.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		f.Class = uploader.Permanent
	case http.StatusTooManyRequests:
		f.Class = uploader.RateLimited
		if delay > 0 {
			f.After = delay
		}
	case http.StatusConflict:
		f.Class = uploader.Transient
	}
}

// Keys an error object's words and code are found under, most telling first.
var (
	messageKeys = []string{"message", "description", "detail", "error_description", "msg", "reason", "error"}
	codeKeys    = []string{"code", "name", "errorCode", "error_code", "type"}
)

// readErrorObject reads {"error": ...} whatever its inner keys: the message, the code and
// the delay asked for. An error that is a string is the message; an object without a known
// message key gives its string fields as "key: value".
func readErrorObject(body []byte) (msg, code string, delay time.Duration) {
	var outer struct {
		Error json.RawMessage `json:"error"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&outer) != nil || len(outer.Error) == 0 {
		return "", "", 0
	}
	var s string
	if json.Unmarshal(outer.Error, &s) == nil {
		return s, "", 0
	}
	var inner map[string]any
	d = json.NewDecoder(bytes.NewReader(outer.Error))
	d.UseNumber()
	if d.Decode(&inner) != nil {
		return "", "", 0
	}
	text := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	for _, k := range messageKeys {
		if m := text(inner[k]); m != "" {
			msg = m
			break
		}
	}
	for _, k := range codeKeys {
		if c := text(inner[k]); c != "" {
			code = c
			break
		}
	}
	if msg == "" {
		var parts []string
		for k, v := range inner {
			if t := text(v); t != "" && t != code && k != "status" && k != "delay" {
				parts = append(parts, k+": "+t)
			}
		}
		sort.Strings(parts)
		msg = strings.Join(parts, "; ")
	}
	if v := text(inner["delay"]); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
			delay = time.Duration(secs * float64(time.Second))
		}
	}
	return msg, code, delay
}

// errorText is the platform's words in a failed ticket's or gif's "error" (a string or an
// object), or "".
func errorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	msg, code, _ := readErrorObject([]byte(`{"error":` + string(raw) + `}`))
	if msg == "" {
		return code
	}
	return msg
}
