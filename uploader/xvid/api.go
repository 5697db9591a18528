package xvid

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader"
)

// uploadRecord is the part of Xvid's upload record that chute reads.
type uploadRecord struct {
	ID             string      `json:"id"`
	Status         string      `json:"status"`
	ObjectKey      string      `json:"object_key"`
	Type           string      `json:"type"`
	FormPostURL    string      `json:"form_post_url"`
	FormPostParams formFields  `json:"form_post_params"`
	File           ref         `json:"file"`
	Error          *errorValue `json:"error"`
}

type ref struct {
	ID string `json:"id"`
}

// errorValue is Xvid's error object, in error answers and in a failed upload record.
type errorValue struct {
	Code    string `json:"error_code"`
	Message string `json:"error_message"`
}

// uploadAnswer is every answer about an upload record: {"upload":{...}}.
type uploadAnswer struct {
	Upload *uploadRecord `json:"upload"`
}

// formFields decodes form_post_params, a JSON object, keeping the order of its fields: S3
// gets them in that order.
type formFields []uploader.FormField

// UnmarshalJSON reads an object of string (or scalar) values in order.
func (f *formFields) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		*f = nil
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return errors.New("form_post_params is not an object")
	}
	var out formFields
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		v, err := dec.Token()
		if err != nil {
			return err
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		case nil:
		default:
			return fmt.Errorf("form_post_params.%v is not a scalar", k)
		}
		out = append(out, uploader.FormField{Name: k.(string), Value: s})
	}
	*f = out
	return nil
}

// seconds is expires_in: a string in Xvid's example ("7200"), a number elsewhere.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if str == "" || str == "null" {
		*s = 0
		return nil
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil || f < 0 {
		return fmt.Errorf("expires_in %s is not a number of seconds", b)
	}
	*s = seconds(f)
	return nil
}

// tokenAnswer is the token endpoint's answer.
type tokenAnswer struct {
	AccessToken string  `json:"access_token"`
	ExpiresIn   seconds `json:"expires_in"`
}

// tokenError is a failed token request: never taken for a refused token (which would be
// renewed), whatever its status.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// fetchToken asks for an access token: the TokenSource's fetch.
func (p *Provider) fetchToken(ctx context.Context) (uploader.Token, error) {
	t, err := p.requestToken(ctx)
	if err != nil {
		return t, &tokenError{err}
	}
	return t, nil
}

func (p *Provider) requestToken(ctx context.Context) (uploader.Token, error) {
	var ans tokenAnswer
	_, err := p.api.Send(ctx, &uploader.Request{
		Method: http.MethodPost,
		URL:    "/v1/oauth2/token/",
		Form: url.Values{
			"grant_type":    {"client_credential"}, // singular, as Xvid's API has it
			"client_id":     {p.opts.ClientID},
			"client_secret": {p.opts.ClientSecret},
			"scope":         {p.scope},
		},
		Out:  &ans,
		What: "xvid: get an access token",
	})
	if err != nil {
		var se *uploader.StatusError
		if errors.As(err, &se) && (se.StatusCode == http.StatusForbidden || se.StatusCode == http.StatusUnauthorized) {
			return uploader.Token{}, uploader.PermanentError(fmt.Errorf("%w: Xvid refused the client credentials: check client_id and client_secret (or client_secret_file) of provider %q", err, p.name))
		}
		if uploader.IsPermanent(err) {
			return uploader.Token{}, fmt.Errorf("%w: check scope (%s) of provider %q", err, p.scope, p.name)
		}
		return uploader.Token{}, err
	}
	if ans.AccessToken == "" {
		return uploader.Token{}, uploader.TransientError(errors.New("xvid: get an access token: the answer has no access_token"))
	}
	t := uploader.Token{Value: ans.AccessToken}
	if ans.ExpiresIn > 0 {
		t.Expires = p.now().Add(time.Duration(ans.ExpiresIn) * time.Second)
	}
	return t, nil
}

// call sends one API request with the bearer token, renewing the token once when Xvid
// refuses it; a second refusal is permanent.
func (p *Provider) call(ctx context.Context, r *uploader.Request) error {
	err := p.tokens.Use(ctx, refused, func(ctx context.Context, t uploader.Token) error {
		rr := *r
		rr.Header = http.Header{"Authorization": {"Bearer " + t.Value}}
		rr.Redactor = p.red.With(t.Value)
		_, err := p.api.Send(ctx, &rr)
		return err
	})
	if err != nil && refused(err) {
		return uploader.PermanentError(fmt.Errorf("%w: Xvid refused a freshly issued access token: check the scope (%s) and the pipeline's permissions of provider %q", err, p.scope, p.name))
	}
	return err
}

// createUpload makes the upload record for object key.
func (p *Provider) createUpload(ctx context.Context, key string) (*uploadRecord, error) {
	q := url.Values{"object_key": {key}, "pipeline_id": {p.opts.PipelineID}}
	if e := p.expiresAt(); e != "" {
		q.Set("expires_at", e)
	}
	var ans uploadAnswer
	err := p.call(ctx, &uploader.Request{
		Method: http.MethodPost,
		URL:    "/v1/files/uploads/",
		Query:  q,
		Out:    &ans,
		What:   fmt.Sprintf("xvid: create the upload record for %q", key),
	})
	if err != nil {
		return nil, err
	}
	rec := ans.Upload
	switch {
	case rec == nil || rec.ID == "":
		return nil, uploader.TransientError(fmt.Errorf("xvid: create the upload record for %q: the answer has no upload id", key))
	case len(rec.FormPostParams) == 0:
		return nil, uploader.TransientError(fmt.Errorf("xvid: create the upload record for %q: the answer has no form_post_params", key))
	}
	u, err := url.Parse(rec.FormPostURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, uploader.TransientError(fmt.Errorf("xvid: create the upload record for %q: form_post_url %q is not an http(s) URL", key, uploader.RedactURL(rec.FormPostURL)))
	}
	return rec, nil
}

// errFormExpired is S3 refusing a form whose policy has expired.
var errFormExpired = errors.New("the upload form expired: the next attempt asks Xvid for a new upload record")

// postResponse is S3's answer to a form POST with success_action_status 201.
type postResponse struct {
	Location string `xml:"Location"`
	Bucket   string `xml:"Bucket"`
	Key      string `xml:"Key"`
	ETag     string `xml:"ETag"`
}

// sizeRange reads the content-length-range condition of the form's S3 POST policy (base64
// JSON), when there is one.
func sizeRange(form []uploader.FormField) (lo, hi int64, ok bool) {
	v, found := formValue(form, "policy")
	if !found {
		return 0, 0, false
	}
	doc, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return 0, 0, false
	}
	var pol struct {
		Conditions []json.RawMessage `json:"conditions"`
	}
	if json.Unmarshal(doc, &pol) != nil {
		return 0, 0, false
	}
	for _, c := range pol.Conditions {
		var arr []json.RawMessage
		if json.Unmarshal(c, &arr) != nil || len(arr) != 3 {
			continue
		}
		var name string
		if json.Unmarshal(arr[0], &name) != nil || !strings.EqualFold(name, "content-length-range") {
			continue
		}
		if json.Unmarshal(arr[1], &lo) == nil && json.Unmarshal(arr[2], &hi) == nil {
			return lo, hi, true
		}
	}
	return 0, 0, false
}

// postForm sends the file to S3 with the record's form: every field in order, the file last.
func (p *Provider) postForm(ctx context.Context, job *uploader.Job, cp *checkpoint) error {
	if lo, hi, ok := sizeRange(cp.Form); ok && (job.File.Size < lo || job.File.Size > hi) {
		// S3 would refuse it after the whole file was sent.
		return uploader.Permanentf("xvid: %s is %d bytes; Xvid's upload form takes files of %d to %d bytes", job.File.Name, job.File.Size, lo, hi)
	}
	body, err := uploader.NewMultipartBody(cp.Form, "file", job.File, job.File.Name, "")
	if err != nil {
		return uploader.PermanentError(fmt.Errorf("xvid: build the upload form: %w", err))
	}
	body.WithProgress(job.ReportProgress)
	expect := []int{http.StatusNoContent} // S3's answer when the form asks for no status
	if v, ok := formValue(cp.Form, "success_action_status"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			expect = []int{n}
		}
	}
	var secrets []string
	for _, f := range cp.Form {
		switch strings.ToLower(f.Name) {
		case "policy", "signature", "x-amz-signature", "x-amz-credential", "awsaccesskeyid", "x-amz-security-token":
			secrets = append(secrets, f.Value)
		}
	}
	var ans postResponse
	_, err = p.api.Client.Send(ctx, &uploader.Request{
		Method:   http.MethodPost,
		URL:      cp.FormURL,
		Body:     body,
		Out:      &ans,
		Decode:   uploader.DecodeXML,
		Expect:   expect,
		What:     fmt.Sprintf("xvid: post %s to S3 (upload %s)", job.File.Name, cp.UploadID),
		Errors:   uploader.ReadS3Error,
		Redactor: p.red.With(secrets...),
	})
	if err != nil {
		var se *uploader.StatusError
		if errors.As(err, &se) && se.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(se.Message), "expired") {
			return uploader.TransientError(fmt.Errorf("%w: %w", err, errFormExpired))
		}
		return err
	}
	if key, _ := formValue(cp.Form, "key"); ans.Key != "" && key != "" && ans.Key != key {
		return uploader.TransientError(fmt.Errorf("xvid: S3 stored the file under %q, the form named %q", ans.Key, key))
	}
	return nil
}

func formValue(fields []uploader.FormField, name string) (string, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// finish tells Xvid the file is in S3.
func (p *Provider) finish(ctx context.Context, id string) error {
	return p.call(ctx, &uploader.Request{
		Method: http.MethodPut,
		URL:    "/v1/files/uploads/" + url.PathEscape(id),
		JSON:   map[string]any{"upload": map[string]int{"nb_chunks": 1}},
		Out:    &uploadAnswer{},
		What:   fmt.Sprintf("xvid: finish upload %s", id),
	})
}

// getUpload reads the upload record.
func (p *Provider) getUpload(ctx context.Context, id string) (*uploadRecord, error) {
	var ans uploadAnswer
	err := p.call(ctx, &uploader.Request{
		URL:  "/v1/files/uploads/" + url.PathEscape(id),
		Out:  &ans,
		What: fmt.Sprintf("xvid: ask for the status of upload %s", id),
	})
	if err != nil {
		return nil, err
	}
	if ans.Upload == nil {
		return nil, uploader.TransientError(fmt.Errorf("xvid: status of upload %s: the answer has no upload", id))
	}
	return ans.Upload, nil
}

// decodeAPIError reads Xvid's {"error":{"error_code","error_message"}}. 400, 404 and 403
// are permanent (a 403 is renewed once first, by call), 500 and the rest of 5xx transient:
// the default classes.
func decodeAPIError(a *uploader.Answer, f *uploader.Fault) {
	if !f.Failed {
		return
	}
	var e struct {
		Error *errorValue `json:"error"`
	}
	if json.Unmarshal(a.Body, &e) == nil && e.Error != nil {
		f.Code = e.Error.Code
		if e.Error.Message != "" {
			f.Message = uploader.Shorten(e.Error.Message, 300)
		}
	}
}
