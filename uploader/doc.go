// Package uploader defines the contract between chute's engine and its upload providers, and
// the kit a provider is built from. Providers know nothing of folders, the state database or
// sidecars; the engine knows nothing of any provider's protocol. A provider package holds its
// protocol and nothing else: what two providers need lives here, once.
//
// # The contract
//
// A provider type (Type, made with NewType) builds a Provider from its options struct (yaml
// tags, `chute:"required"`, `chute:"secret"`, an optional Validate returning []FieldError,
// which New reports with OptionsError; Env.EndpointURL gives the endpoint or its default). One
// Provider serves every job of its config entry, and Upload runs concurrently, up to the
// entry's `concurrency` at once. Upload gets a Job: the File (read it through ReadAt or
// Section, never whole into memory), the Checkpoint saved last, the Digests it asked for
// (implement DigestNeeder), Save, Progress and a logger. Errors carry a class: PermanentError
// (the user must act), TransientError (backoff, an attempt), RetryAfterError (wait, not an
// attempt) and RateLimitError (the whole account waits, every job of the provider).
//
// # Requests: Client.Send and API
//
// Every call to a remote API is a Request sent with Client.Send, or with API.Send, which
// fills in what every call of one provider shares, stated once:
//
//	api := &uploader.API{
//		Client:   env.Client,
//		Base:     "https://api.example.com",
//		Header:   http.Header{"Authorization": {"Bearer " + key}}, // only to Base's host
//		Errors:   decodeErrors,                                     // the API's error format
//		Redactor: uploader.NewRedactor(key),                        // its secrets
//		Pacer:    uploader.NewPacer(4, 4),                          // its rate, shared by jobs
//	}
//	var ticket struct{ ID, URL string }
//	_, err := api.Send(ctx, &uploader.Request{
//		Method: http.MethodPost, URL: "/v2/upload", What: "ask for a ticket",
//		JSON: map[string]string{"md5": job.Digests[uploader.MD5]}, // or Form: url.Values{...}
//		Out:  &ticket,                                              // JSON; Decode: DecodeXML for S3
//	})
//
// Send reads the whole answer (bounded in size, and in time by ClientOptions.AnswerTimeout,
// so a server trickling its answer cannot hold a job) and decodes a success into Out. Any
// other answer is a classed error wrapping a *StatusError. The reading is the default one
// (status -> class, Retry-After -> wait, the body's start -> message) changed by the
// provider's ErrorDecoder, which sees every answer, successes too:
//
//	func decodeErrors(a *uploader.Answer, f *uploader.Fault) {
//		var e struct{ Error struct{ Message string; Delay int } }
//		if json.Unmarshal(a.Body, &e) != nil { return }
//		f.Message = e.Error.Message
//		if a.Status == 429 {
//			f.Class, f.After = uploader.RateLimited, time.Duration(e.Error.Delay)*time.Second
//		}
//	}
//
// Set f.Failed for a 200 that carries an error. Every error Send returns has passed through
// the Request's Redactor: the provider's secrets, in the forms a server echoes them in, and
// URLs' userinfo and query values are replaced by [REDACTED]. Pass errors a provider builds
// itself through Redactor.Error; extend the Redactor per job with With (an upload token, a
// signed URL).
//
// # Bodies
//
// NewFileBody streams a section of the file with an exact Content-Length (a TUS PATCH, a PUT
// to a presigned URL, a raw POST); NewMultipartBody streams a multipart form, fields in order
// and the file last, its length computed up front (an S3 POST policy upload). Both are
// re-read from the start for a retry or a redirect (GetBody) and report progress as bytes
// leave (WithProgress). Put one in Request.Body.
//
// # Polling, credentials, checkpoints
//
// Poller.Until is the one poll loop: a Floor between checks that is never undercut, backoff
// to a Cap, a MaxWait counted from a time the provider keeps in its checkpoint, a Limiter
// shared by every job, and the context. TokenSource holds one credential per provider,
// shared by its concurrent uploads: one fetch in flight, renewed before it expires and once
// after a refusal (Invalidate, or Use). LoadCheckpoint and StoreCheckpoint read and save a
// provider's typed checkpoint as JSON; save before every remote step a crash must not repeat.
//
// # Testing
//
// Package uploadertest holds the conformance suite (Run with a Harness: Resumable, digests
// filled for a DigestNeeder, RateLimit), the fault knobs every emulator shares (Faults:
// FailNext, Stall, Throttle, Trickle, request records; Listener: CutAfter), Serve and
// WriteJSON for an emulator's server, Engine for a provider's own tests (one file's
// checkpoint and digests across calls), and Fake, a provider made of function fields for the
// engine's tests. S3 answers are read with ReadS3Error; JSON error bodies with JSONErrorText.
package uploader
