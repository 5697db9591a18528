package s3test

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxPreData is S3's limit on a POST body's fields before the file (20 KB); maxParts bounds
// the parts before it, as MinIO does.
const (
	maxPreData = 20 << 10
	maxParts   = 1000
)

// postResponse is S3's answer to a POST upload with success_action_status 201.
type postResponse struct {
	XMLName  xml.Name `xml:"PostResponse"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}

// postForm is a POST upload's fields before the file, by lower-cased name (S3 matches form
// field names without regard to case).
type postForm map[string][]string

func (f postForm) get(name string) string {
	if v := f[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func malformed(detail string) *s3Error {
	return &s3Error{Status: http.StatusBadRequest, Code: "MalformedPOSTRequest",
		Message: "The body of your POST request is not well-formed multipart/form-data. (" + detail + ")"}
}

func policyFailed(detail string) *s3Error {
	return &s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Invalid according to Policy: " + detail}
}

// post is a browser-style POST upload: the form's fields, then the file, checked against
// the signed policy before a byte of the file is stored.
func (st *standIn) post(w http.ResponseWriter, r *http.Request) {
	if e := noLength(r); e != nil {
		st.fail(w, r, e)
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		st.fail(w, r, &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed",
			Message: "Bucket POST must be of the enclosure-type multipart/form-data"})
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	form := postForm{}
	var (
		file     *multipart.Part
		fileName string
		pre      int
		parts    int
	)
	for file == nil {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			st.fail(w, r, malformed(err.Error()))
			return
		}
		if parts++; parts > maxParts {
			st.fail(w, r, malformed("too many parts"))
			return
		}
		name := part.FormName()
		if name == "" {
			// Not a form field: skipped, but it counts against the limit all the same.
			n, err := io.Copy(io.Discard, io.LimitReader(part, maxPreData+1))
			if pre += int(n); err != nil || pre > maxPreData {
				st.fail(w, r, malformed("a part that is not a form field"))
				return
			}
			continue
		}
		if name == "file" {
			// S3: the file is the last field; whatever follows it is ignored.
			file, fileName = part, part.FileName()
			break
		}
		var v bytes.Buffer
		n, err := io.Copy(&v, io.LimitReader(part, maxPreData+1))
		pre += len(name) + int(n)
		if err != nil {
			st.fail(w, r, malformed(err.Error()))
			return
		}
		if pre > maxPreData {
			st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "MaxPostPreDataLengthExceeded",
				Message: "Your POST request fields preceding the upload file were too large."})
			return
		}
		lname := strings.ToLower(name)
		form[lname] = append(form[lname], v.String())
	}
	if file == nil {
		st.fail(w, r, malformed("The file or text content is missing"))
		return
	}
	key := form.get("key")
	if key == "" {
		st.fail(w, r, malformed("The name of the uploaded key is missing"))
		return
	}
	lengthRange, e := st.checkPolicy(form)
	if e != nil {
		e.Key = key
		st.fail(w, r, e)
		return
	}
	key = strings.ReplaceAll(key, "${filename}", fileName)
	infoOf(r.Context()).key = key
	limit := int64(maxPutSize)
	if lengthRange != nil {
		limit = lengthRange[1]
	}
	tmp, sum, n, err := st.receive(file, limit+1)
	if err != nil {
		infoOf(r.Context()).broken = true
		st.discard(tmp)
		st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "The request body ended before the file did: " + err.Error(), Key: key})
		return
	}
	if n > limit {
		st.discard(tmp)
		st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "EntityTooLarge", Message: "Your proposed upload exceeds the maximum allowed size", Key: key})
		return
	}
	if lengthRange != nil && n < lengthRange[0] {
		st.discard(tmp)
		st.fail(w, r, &s3Error{Status: http.StatusBadRequest, Code: "EntityTooSmall", Message: "Your proposed upload is smaller than the minimum allowed size", Key: key})
		return
	}
	ct := form.get("content-type")
	obj, err := st.commit(tmp, key, n, sum, ct)
	if err != nil {
		st.fail(w, r, &s3Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: err.Error(), Key: key})
		return
	}
	location := "http://" + r.Host + "/" + st.bucket + "/" + key
	w.Header().Set("ETag", `"`+obj.ETag+`"`)
	w.Header().Set("Location", location)
	switch form.get("success_action_status") {
	case "201":
		body, err := xml.Marshal(postResponse{Location: location, Bucket: st.bucket, Key: key, ETag: `"` + obj.ETag + `"`})
		if err != nil {
			st.fail(w, r, &s3Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, xml.Header)
		_, _ = w.Write(body)
	case "200":
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// rawPolicy is a POST policy document.
type rawPolicy struct {
	Expiration string `json:"expiration"`
	Conditions []any  `json:"conditions"`
}

// checkPolicy verifies the form's SigV4 policy signature and every condition of its policy,
// and that every field of the form is named by a condition (S3's rule). It returns the
// policy's content-length-range, nil when it has none.
func (st *standIn) checkPolicy(form postForm) ([]int64, *s3Error) {
	policy := form.get("policy")
	if policy == "" || form.get("x-amz-signature") == "" {
		if form.get("signature") != "" || form.get("awsaccesskeyid") != "" {
			return nil, &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "The stand-in accepts SigV4 POST policies only."}
		}
		return nil, &s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access Denied."}
	}
	if alg := form.get("x-amz-algorithm"); alg != signAlgorithm {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "x-amz-algorithm only supports \"AWS4-HMAC-SHA256\""}
	}
	cred, ok := parseCredential(form.get("x-amz-credential"))
	if !ok {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "x-amz-credential is mal-formed"}
	}
	if e := checkCredential(cred, "x-amz-credential"); e != nil {
		return nil, e
	}
	if _, err := time.Parse(amzDateFormat, form.get("x-amz-date")); err != nil {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "x-amz-date must be in the ISO8601 Long Format"}
	}
	if !hmac.Equal([]byte(form.get("x-amz-signature")), []byte(postSignature(policy, cred.day, cred.region))) {
		return nil, &s3Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: msgSignature}
	}
	doc, err := base64.StdEncoding.DecodeString(policy)
	if err != nil {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidPolicyDocument", Message: "Invalid Policy: Invalid 'POST' form: the policy is not base64."}
	}
	var p rawPolicy
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(&p); err != nil {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidPolicyDocument", Message: "Invalid Policy: " + err.Error()}
	}
	exp, err := time.Parse(time.RFC3339Nano, p.Expiration)
	if err != nil {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidPolicyDocument", Message: "Invalid Policy: Invalid 'expiration' value: '" + p.Expiration + "'"}
	}
	if !exp.After(st.now()) {
		return nil, policyFailed("Policy expired.")
	}
	covered := map[string]bool{}
	var lengthRange []int64
	for _, c := range p.Conditions {
		conds, e := conditions(c)
		if e != nil {
			return nil, e
		}
		for _, c := range conds {
			if c.op == "content-length-range" {
				lengthRange = []int64{c.min, c.max}
				continue
			}
			field := strings.ToLower(strings.TrimPrefix(c.field, "$"))
			if !strings.HasPrefix(c.field, "$") {
				return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidPolicyDocument", Message: "Invalid Policy: Invalid Condition: field names start with $: " + c.field}
			}
			var value string
			if field == "bucket" {
				value = st.bucket
			} else {
				if _, ok := form[field]; !ok {
					// S3: a field the policy names must be in the form, even for starts-with "".
					return nil, policyFailed("Policy Condition failed: [" + c.String() + "]: the form has no field " + strconv.Quote(field))
				}
				if len(form[field]) > 1 {
					return nil, policyFailed("Policy Condition failed: [" + c.String() + "]: the form has the field " + strconv.Quote(field) + " more than once")
				}
				value = form.get(field)
			}
			ok := value == c.value
			if c.op == "starts-with" {
				ok = strings.HasPrefix(value, c.value)
			}
			if !ok {
				return nil, policyFailed("Policy Condition failed: [" + c.String() + "]")
			}
			covered[field] = true
		}
	}
	var extra []string
	for name := range form {
		if name == "policy" || name == "x-amz-signature" || strings.HasPrefix(name, "x-ignore-") || covered[name] {
			continue
		}
		extra = append(extra, name)
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, policyFailed("Extra input fields: " + strings.Join(extra, ", "))
	}
	return lengthRange, nil
}

// condition is one condition of a policy.
type condition struct {
	op, field, value string
	min, max         int64
}

func (c condition) String() string {
	return fmt.Sprintf("%q, %q, %q", c.op, c.field, c.value)
}

// conditions parses one entry of a policy's conditions: {"field": "value"} or
// [op, "$field", value] or ["content-length-range", min, max].
func conditions(c any) ([]condition, *s3Error) {
	bad := func(msg string) *s3Error {
		return &s3Error{Status: http.StatusBadRequest, Code: "InvalidPolicyDocument", Message: "Invalid Policy: Invalid Condition: " + msg}
	}
	switch c := c.(type) {
	case map[string]any:
		var out []condition
		for k, v := range c {
			s, ok := v.(string)
			if !ok {
				return nil, bad("the value of " + k + " is not a string")
			}
			out = append(out, condition{op: "eq", field: "$" + k, value: s})
		}
		return out, nil
	case []any:
		if len(c) != 3 {
			return nil, bad("a condition is an object or an array of three")
		}
		op, _ := c[0].(string)
		op = strings.ToLower(op)
		switch op {
		case "eq", "starts-with":
			field, ok1 := c[1].(string)
			value, ok2 := c[2].(string)
			if !ok1 || !ok2 {
				return nil, bad("the field and value of " + op + " are strings")
			}
			return []condition{{op: op, field: field, value: value}}, nil
		case "content-length-range":
			lo, err1 := toInt(c[1])
			hi, err2 := toInt(c[2])
			if err1 != nil || err2 != nil || lo < 0 || hi < lo {
				return nil, bad("content-length-range takes two integers, min <= max")
			}
			return []condition{{op: op, min: lo, max: hi}}, nil
		}
		return nil, bad("unknown operation " + strconv.Quote(op))
	}
	return nil, bad("a condition is an object or an array")
}

func toInt(v any) (int64, error) {
	switch v := v.(type) {
	case json.Number:
		return v.Int64()
	case string:
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, errors.New("not a number")
}
