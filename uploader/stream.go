package uploader

import (
	"context"
	"net/http"
	"slices"
)

// Stream sends r as Send does (body, headers, pacer, error reading, redaction) but hands a
// successful answer back unread, for a caller that must act on an answer the moment it is
// complete rather than when the server ends it: UploadGig's upload answer is recorded in the
// checkpoint as soon as its JSON has arrived, so that a server slow to close the response
// (or a crash in the meantime) never has the file sent twice. r.Out and r.Decode are not
// used; the Accept header is the caller's. An answer that is not a success is read whole and
// returned as Send's classed error. The caller closes the body; its reads are bounded by the
// client's AnswerTimeout.
func (c *Client) Stream(ctx context.Context, r *Request) (*http.Response, error) {
	return finish(ctx, r, c.stream)
}

func (c *Client) stream(ctx context.Context, r *Request) (*http.Response, error) {
	req, resp, err := c.exchange(ctx, r)
	if err != nil {
		return nil, err
	}
	if r.Expect == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 || slices.Contains(r.Expect, resp.StatusCode) {
		return resp, nil
	}
	a, f, err := judge(req, resp, r)
	if err != nil {
		return nil, err
	}
	if !f.Failed {
		// The decoder calls it a success, but it is not one of Expect: nothing to stream.
		f.Failed, f.Class = true, Transient
	}
	return nil, faultError(req.Method, req.URL.String(), a, f, r.Redactor)
}
