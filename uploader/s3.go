package uploader

import "encoding/xml"

// S3Error is the XML error document S3 (and MinIO) answer with.
type S3Error struct {
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
}

// ReadS3Error is the ErrorDecoder for answers from S3 itself: a PUT to a presigned URL, a
// POST policy upload. It reads S3's XML error (Code, Message) and classes what S3 means:
// RequestTimeout, SlowDown and InternalError are worth another try; a signature, policy or
// length S3 refuses is not (AccessDenied after a delay is an expired URL: the provider asks
// for a new one, which is its own decision).
func ReadS3Error(a *Answer, f *Fault) {
	if !f.Failed {
		return
	}
	var e S3Error
	if xml.Unmarshal(a.Body, &e) != nil || e.Code == "" {
		return
	}
	f.Code, f.Message = e.Code, Shorten(e.Message, maxMessage)
	switch e.Code {
	case "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed":
		f.Class = Transient
	case "SlowDown":
		f.Class = Transient // the engine's backoff, unless S3 said how long
		if f.After > 0 {
			f.Class = RetryAfter
		}
	case "MissingContentLength", "EntityTooLarge", "EntityTooSmall", "InvalidPolicyDocument",
		"SignatureDoesNotMatch", "AccessDenied", "MalformedPOSTRequest", "InvalidArgument":
		f.Class = Permanent
	}
}
