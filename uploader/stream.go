package uploader

import (
	"context"
	"net/http"
)

// Stream sends r as Send does (body, headers, pacer, error reading, redaction) but hands a
// successful answer back unread, for a caller that must act on an answer the moment it is
// complete rather than when the server ends it: UploadGig's upload answer is recorded in the
// checkpoint as soon as its JSON has arrived, so that a server slow to close the response
// (or a crash in the meantime) never has the file sent twice. r.Out and r.Decode are not
// used. An answer that is not a success is read whole and returned as Send's classed error.
// The caller closes the body; its reads are bounded by the client's AnswerTimeout.
func (c *Client) Stream(ctx context.Context, r *Request) (*http.Response, error) {
	resp, err := c.stream(ctx, r)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		if r.What != "" {
			err = &whatError{what: r.What, err: err}
		}
		return nil, r.Redactor.Error(err)
	}
	return resp, nil
}

func (c *Client) stream(ctx context.Context, r *Request) (*http.Response, error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	target, err := withQuery(r.URL, r.Query)
	if err != nil {
		return nil, PermanentError(err)
	}
	body, err := r.body()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, target, http.NoBody)
	if err != nil {
		return nil, PermanentError(unwrapURLError(err))
	}
	for k, vs := range r.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if body != nil {
		if err := setBody(req, body); err != nil {
			return nil, err
		}
	}
	if r.Pacer != nil {
		if err := r.Pacer.Wait(ctx); err != nil {
			return nil, TransientError(err)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && r.Expect == nil {
		return resp, nil
	}
	for _, code := range r.Expect {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	a, err := readAnswer(resp, r.maxAnswer())
	if err != nil {
		return nil, err
	}
	f := defaultFault(a, r.Expect)
	if r.Errors != nil {
		r.Errors(a, &f)
	}
	if !f.Failed {
		// The decoder calls it a success; there is nothing left to stream.
		f.Failed, f.Class = true, Transient
	}
	return nil, faultError(method, target, a, f, r.Redactor)
}
