package tus

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/chute-dev/chute/uploader"
)

// Options are the `tus` provider's config keys (besides type, endpoint and concurrency).
type Options struct {
	// ChunkSize bounds one PATCH, for servers that want chunks; 0 sends the file in one PATCH.
	ChunkSize int64 `yaml:"chunk_size"`
	// Headers are sent with every request, e.g. an Authorization header. Their values are
	// treated as secrets: never logged.
	Headers map[string]string `yaml:"headers" chute:"secret_values"`
	// Metadata is added to every upload's Upload-Metadata besides filename and filetype.
	Metadata map[string]string `yaml:"metadata"`
	// CreationWithUpload sends a file of up to 1 MiB in its creation request where the
	// server announces TUS's creation-with-upload: one request instead of two, and no
	// checkpoint. Off by default: a crash between that request and the result's record sends
	// the file again, and the server keeps a second complete copy.
	CreationWithUpload bool `yaml:"creation_with_upload"`
}

// Type is the `tus` provider type: any TUS 1.0 server; endpoint is its creation URL.
func Type() uploader.Type {
	return uploader.NewType("tus", "", func() Options { return Options{} }, func(env uploader.Env, o Options) (uploader.Provider, error) {
		return New(env, o)
	})
}

// Provider uploads to a TUS server.
type Provider struct {
	endpoint string
	client   *Client
	meta     map[string]string
}

var _ uploader.Provider = (*Provider)(nil)

// New returns a `tus` provider. Credentials in the endpoint go with every request to its
// server: user info as an `Authorization: Basic` header (unless headers set Authorization),
// query values (`?key=...`) on the creation, every HEAD and every PATCH.
func New(env uploader.Env, opts Options) (*Provider, error) {
	u, err := env.EndpointURL("tus", "")
	if err != nil {
		return nil, err
	}
	if opts.ChunkSize < 0 {
		return nil, fmt.Errorf("tus: chunk_size must not be negative")
	}
	h := make(http.Header)
	for k, v := range opts.Headers {
		h.Set(k, v)
	}
	var secrets []string
	if u.User != nil {
		pw, _ := u.User.Password()
		secrets = append(secrets, u.User.Username(), pw)
		if h.Get("Authorization") == "" {
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
		}
		u.User = nil // sent as a header, to every request, rather than lost on the first redirect or Location
	}
	var withUpload int64
	if opts.CreationWithUpload {
		withUpload = withUploadMax
	}
	return &Provider{
		endpoint: u.String(),
		client: NewClient(ClientOptions{HTTP: env.Client, Header: h, ChunkSize: opts.ChunkSize,
			Redactor: uploader.NewRedactor(secrets...), Endpoint: u.String(), CreationWithUpload: withUpload}),
		meta: opts.Metadata,
	}, nil
}

// withUploadMax is the largest file the provider sends in its creation request (with
// creation_with_upload, where the server announces the extension): what a crash before the
// result is recorded can send twice stays small.
const withUploadMax = 1 << 20

// checkpoint is what the provider saves: the upload's URL once it exists.
type checkpoint struct {
	URL string `json:"url"`
}

// Upload sends job.File, resuming the upload its checkpoint names.
func (p *Provider) Upload(ctx context.Context, job *uploader.Job) (uploader.Result, error) {
	cp, _ := uploader.LoadCheckpoint[checkpoint](job)
	meta := map[string]string{"filename": job.File.Name, "filetype": uploader.ContentType(job.File.Name)}
	for k, v := range p.meta {
		meta[k] = v
	}
	save := func(ctx context.Context) error { return uploader.StoreCheckpoint(ctx, job, cp) }
	if err := p.client.Transfer(ctx, p.endpoint, job, meta, &cp.URL, save); err != nil {
		return uploader.Result{}, err
	}
	return uploader.Result{ID: lastSegment(cp.URL), URL: publicURL(cp.URL)}, nil
}

// Transfer makes sure all of job.File is on the server. It resumes the upload at *uploadURL
// from the offset the server reports, or, when there is none or the server no longer has it,
// creates one at creationURL and calls save (with *uploadURL set) before sending a byte, so
// that a crash never creates a second upload for the file.
func (c *Client) Transfer(ctx context.Context, creationURL string, job *uploader.Job, meta map[string]string, uploadURL *string, save func(context.Context) error) error {
	var offset int64
	if *uploadURL != "" {
		off, err := c.Offset(ctx, *uploadURL)
		switch {
		case errors.Is(err, ErrGone):
			job.Log().Warn("tus: the server no longer has the upload; starting a new one", "upload", uploader.RedactURL(*uploadURL))
			*uploadURL = ""
		case err != nil:
			return err
		default:
			offset = off
		}
	}
	if *uploadURL == "" && c.sendsWithCreation(job.File.Size) {
		ok, err := c.announcesWithUpload(ctx, creationURL)
		if err != nil {
			return err
		}
		if ok {
			loc, off, err := c.CreateWithUpload(ctx, creationURL, job.File, meta, job.Progress)
			if err != nil {
				return err
			}
			*uploadURL = loc
			if off == job.File.Size {
				// All of it in one request: there is nothing left to resume, so nothing to
				// save; the engine records the result next.
				job.ReportProgress(off)
				return nil
			}
			if err := save(ctx); err != nil {
				return err
			}
			offset = off
		}
	}
	if *uploadURL == "" {
		loc, err := c.Create(ctx, creationURL, job.File.Size, meta)
		if err != nil {
			return err
		}
		*uploadURL = loc
		if err := save(ctx); err != nil {
			return err
		}
	}
	if offset > job.File.Size {
		return uploader.Permanentf("tus: the server holds %d bytes of a %d-byte file: the file shrank after the upload began", offset, job.File.Size)
	}
	job.ReportProgress(offset)
	if _, err := c.Send(ctx, *uploadURL, job.File, offset, job.Progress); err != nil {
		if errors.Is(err, ErrGone) {
			// Expired mid-way: the next attempt asks again, finds it gone and starts anew.
			return uploader.TransientError(err)
		}
		return err
	}
	return nil
}

// sendsWithCreation says whether a file of size goes in its creation request, where the
// server allows it: small (CreationWithUpload), not empty, and within one chunk.
func (c *Client) sendsWithCreation(size int64) bool {
	return size > 0 && size <= c.withUpload && (c.chunk == 0 || size <= c.chunk)
}

func lastSegment(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return path.Base(strings.TrimSuffix(p.Path, "/"))
}

// publicURL is the upload URL as the sidecar shows it: without user info or a query, where
// credentials and tokens live (the checkpoint keeps the whole URL, to resume).
func publicURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	p.User, p.RawQuery = nil, ""
	return p.String()
}
