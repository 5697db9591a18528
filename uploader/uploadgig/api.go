package uploadgig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The login's codes.
const (
	codeOK          = "1"
	codeBadLogin    = "0"
	codeRateLimited = "-3"
)

// The upload host's messages that change what happens next.
const (
	msgInvalidIdentity = "Invalid identity provided"
	msgStorageFull     = "Your storage is full"
)

// mb is what one MB of cmbs is read as: a mebibyte, the larger reading, so that no file the
// account has room for is refused (a file that still does not fit is refused by UploadGig
// with "Your storage is full").
const mb = 1 << 20

// loose is a JSON scalar UploadGig sends as a string or as a number ("1" or 1, 10240 or
// "10240"), kept as the text of its value; null and absent are "".
type loose string

func (l *loose) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = loose(strings.TrimSpace(s))
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a string or a number, got %s", b)
		}
		*l = loose(n.String())
	}
	return nil
}

// loginAnswer is get_upload_action's answer: result is an object for code "1", the
// platform's message otherwise.
type loginAnswer struct {
	Code   loose           `json:"code"`
	Result json.RawMessage `json:"result"`
}

// uploadAction is a successful login's result.
type uploadAction struct {
	Action string `json:"action"`
	Cmbs   loose  `json:"cmbs"`
}

// message is a failed login's result as text.
func (a *loginAnswer) message() string {
	var s string
	if err := json.Unmarshal(a.Result, &s); err == nil {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(string(a.Result))
}

// spaceLeft reads cmbs, the space left on the account in MB. ok is false when the answer
// has none or it is not a number: the check is then left to UploadGig.
func spaceLeft(cmbs loose) (mbLeft float64, ok bool) {
	if cmbs == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(cmbs), 64)
	if err != nil || v != v {
		return 0, false
	}
	return max(v, 0), true
}

// fits tells whether size bytes fit in mbLeft MB.
func fits(size int64, mbLeft float64) bool {
	return float64(size) <= mbLeft*mb
}

// Answer is the upload host's answer for the file: the object keyed "0". It is what the
// checkpoint keeps once it has arrived.
type Answer struct {
	OK       bool   `json:"ok"`
	Message  string `json:"message,omitempty"`
	URL      string `json:"url,omitempty"`
	ID       loose  `json:"id,omitempty"`
	FileName string `json:"file_name,omitempty"`
	Size     loose  `json:"size,omitempty"`
}

// decodeAnswer reads an upload answer: {"0": {...}}, or [{...}] should the platform's PHP
// array come out as a list.
func decodeAnswer(b []byte) (Answer, error) {
	b = bytes.TrimSpace(b)
	var raw json.RawMessage
	switch {
	case len(b) > 0 && b[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return Answer{}, err
		}
		var ok bool
		if raw, ok = m["0"]; !ok {
			return Answer{}, errors.New(`no "0" in the answer`)
		}
	case len(b) > 0 && b[0] == '[':
		var l []json.RawMessage
		if err := json.Unmarshal(b, &l); err != nil {
			return Answer{}, err
		}
		if len(l) == 0 {
			return Answer{}, errors.New("the answer is an empty list")
		}
		raw = l[0]
	default:
		return Answer{}, errors.New("the answer is not a JSON object")
	}
	var a Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return Answer{}, err
	}
	a.Message = strings.TrimSpace(a.Message)
	return a, nil
}

// slug encodes a file name for the Slug header: percent-encoded UTF-8 for every byte that is
// not printable ASCII, and for '%' itself, so that a name such as "%41.mp4" is not read as
// "A.mp4" when UploadGig decodes it.
func slug(name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x20 || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
