package redgifs

import (
	"net/http"

	"github.com/chute-dev/chute/uploader"
)

// DecodeForTest reads an API answer of status with body as the provider does and returns its
// error.
func DecodeForTest(status int, body string) error {
	a := &uploader.Answer{Status: status, Header: http.Header{}, Body: []byte(body)}
	f := uploader.Fault{Failed: true, Class: uploader.Permanent, Message: uploader.BodyText(a.Body, 300)}
	decodeErrors(a, &f)
	return &uploader.StatusError{Method: "GET", URL: "http://x/", StatusCode: status, Message: f.Message, Code: f.Code}
}
