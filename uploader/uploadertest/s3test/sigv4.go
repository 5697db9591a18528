package s3test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// AWS Signature Version 4, as S3 checks it: the stand-in verifies query signatures (presigned
// URLs) and POST policy signatures with these; ExpiredPutURL signs with them.
const (
	signAlgorithm   = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	scopeDateFormat = "20060102"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	maxPresignAge   = 7 * 24 * time.Hour // S3's longest X-Amz-Expires
	maxClockSkew    = 15 * time.Minute   // S3 refuses requests dated further ahead
)

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// signingKey derives the day's key for the region and service s3.
func signingKey(secret string, day time.Time, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day.UTC().Format(scopeDateFormat))
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	return hmacSHA256(k, "aws4_request")
}

func scope(t time.Time, region string) string {
	return t.UTC().Format(scopeDateFormat) + "/" + region + "/s3/aws4_request"
}

// canonicalQuery is S3's canonical query string: sorted, %20 for spaces.
func canonicalQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

// querySignature is the signature of a presigned request: only the host header (and the
// headers named in signed) are covered, the payload is not.
func querySignature(method, path string, q url.Values, headers, signed string, t time.Time, region string) string {
	canonical := strings.Join([]string{method, s3utils.EncodePath(path), canonicalQuery(q), headers, signed, unsignedPayload}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := signAlgorithm + "\n" + t.UTC().Format(amzDateFormat) + "\n" + scope(t, region) + "\n" + hex.EncodeToString(sum[:])
	return hex.EncodeToString(hmacSHA256(signingKey(SecretKey, t, region), toSign))
}

// presignV4 presigns u for method as if at t, valid for expires, with the test credentials.
func presignV4(method string, u *url.URL, t time.Time, expires time.Duration) string {
	q := u.Query()
	q.Set("X-Amz-Algorithm", signAlgorithm)
	q.Set("X-Amz-Credential", AccessKey+"/"+scope(t, Region))
	q.Set("X-Amz-Date", t.UTC().Format(amzDateFormat))
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	q.Set("X-Amz-SignedHeaders", "host")
	sig := querySignature(method, u.Path, q, "host:"+u.Host+"\n", "host", t, Region)
	signed := *u
	signed.RawQuery = canonicalQuery(q) + "&X-Amz-Signature=" + sig
	return signed.String()
}

// credential is a parsed X-Amz-Credential: ACCESSKEY/DAY/REGION/s3/aws4_request.
type credential struct {
	accessKey string
	day       time.Time
	region    string
}

func parseCredential(s string) (credential, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 5 || parts[3] != "s3" || parts[4] != "aws4_request" {
		return credential{}, false
	}
	day, err := time.Parse(scopeDateFormat, parts[1])
	if err != nil {
		return credential{}, false
	}
	return credential{accessKey: parts[0], day: day, region: parts[2]}, true
}

// checkCredential is S3's answer to a credential that is not ours, or nil.
func checkCredential(c credential, param string) *s3Error {
	if c.accessKey != AccessKey {
		return &s3Error{Status: http.StatusForbidden, Code: "InvalidAccessKeyId",
			Message: "The AWS Access Key Id you provided does not exist in our records."}
	}
	if c.region != Region {
		return &s3Error{Status: http.StatusBadRequest, Code: "AuthorizationQueryParametersError",
			Message: "Error parsing the " + param + " parameter; the region '" + c.region + "' is wrong; expecting '" + Region + "'"}
	}
	return nil
}

// verifyPresigned checks a presigned request's query signature at now, as S3 does: the
// parameters, then the date and expiry, then the signature.
func verifyPresigned(r *http.Request, now time.Time) *s3Error {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") == "" && q.Get("X-Amz-Signature") == "" {
		if r.Header.Get("Authorization") != "" {
			return &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
				Message: "The stand-in accepts presigned (query-signed) requests only."}
		}
		return &s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access Denied."}
	}
	bad := func(msg string) *s3Error {
		return &s3Error{Status: http.StatusBadRequest, Code: "AuthorizationQueryParametersError", Message: msg}
	}
	if q.Get("X-Amz-Algorithm") != signAlgorithm {
		return bad("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
	}
	for _, p := range []string{"X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"} {
		if len(q[p]) != 1 {
			return bad("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
		}
	}
	cred, ok := parseCredential(q.Get("X-Amz-Credential"))
	if !ok {
		return bad("Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
	}
	if e := checkCredential(cred, "X-Amz-Credential"); e != nil {
		return e
	}
	date, err := time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
	if err != nil {
		return bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
	}
	if date.Format(scopeDateFormat) != cred.day.Format(scopeDateFormat) {
		return &s3Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: msgSignature}
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs < 0 {
		return bad("X-Amz-Expires should be a number")
	}
	if time.Duration(secs)*time.Second > maxPresignAge {
		return bad("X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	if date.After(now.Add(maxClockSkew)) {
		return &s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Request is not valid yet"}
	}
	if now.After(date.Add(time.Duration(secs) * time.Second)) {
		return &s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Request has expired"}
	}
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if !sort.StringsAreSorted(signed) || !slices.Contains(signed, "host") {
		return &s3Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: msgSignature}
	}
	var headers strings.Builder
	for _, h := range signed {
		headers.WriteString(h)
		headers.WriteByte(':')
		if h == "host" {
			headers.WriteString(r.Host)
		} else {
			vals := r.Header.Values(h)
			for i, v := range vals {
				if i > 0 {
					headers.WriteByte(',')
				}
				headers.WriteString(strings.Join(strings.Fields(v), " "))
			}
		}
		headers.WriteByte('\n')
	}
	got := q.Get("X-Amz-Signature")
	q.Del("X-Amz-Signature")
	want := querySignature(r.Method, r.URL.Path, q, headers.String(), strings.Join(signed, ";"), date, cred.region)
	if !hmac.Equal([]byte(got), []byte(want)) {
		return &s3Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: msgSignature}
	}
	return nil
}

// postSignature is the SigV4 signature of a POST policy (base64, as the form carries it).
func postSignature(policy string, day time.Time, region string) string {
	return hex.EncodeToString(hmacSHA256(signingKey(SecretKey, day, region), policy))
}

const msgSignature = "The request signature we calculated does not match the signature you provided. Check your key and signing method."
