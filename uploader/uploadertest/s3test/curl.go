package s3test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The curl baselines for the providers' benchmarks: the same bytes to the same server in the
// same run, by a client with no overhead of its own worth speaking of. Expect: 100-continue is
// turned off, as Go's client does not send it either.

// Curl returns the curl binary, skipping tb when there is none.
func Curl(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		tb.Skip("curl is not installed: no baseline to compare with")
	}
	return p
}

// CurlPut PUTs the file at path to a presigned URL with `curl -T` and returns how long it
// took; tb fails unless S3 answered 200.
func CurlPut(tb testing.TB, presigned, path string) time.Duration {
	tb.Helper()
	return runCurl(tb, http200, "-T", path, presigned)
}

// CurlPost posts form with the file at path as its last field with `curl -F` and returns how
// long it took; tb fails unless S3 answered 201 (or 204, 200 as the form asks).
func CurlPost(tb testing.TB, form PostForm, path string) time.Duration {
	tb.Helper()
	args := []string{}
	want := "204"
	for _, f := range form.Fields {
		// --form-string: a value is literal, never "@file" or "<file".
		args = append(args, "--form-string", f.Name+"="+f.Value)
		if strings.EqualFold(f.Name, "success_action_status") && (f.Value == "200" || f.Value == "201") {
			want = f.Value
		}
	}
	args = append(args, "-F", "file=@"+path+";type=application/octet-stream", form.URL)
	return runCurl(tb, want, args...)
}

const http200 = "200"

func runCurl(tb testing.TB, want string, args ...string) time.Duration {
	tb.Helper()
	curl := Curl(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	all := append([]string{"-sS", "-H", "Expect:", "-o", os.DevNull, "-w", "%{http_code}"}, args...)
	cmd := exec.CommandContext(ctx, curl, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		tb.Fatalf("curl: %v: %s", err, redactArgs(errb.String()))
	}
	if code := strings.TrimSpace(out.String()); code != want {
		n, _ := strconv.Atoi(code)
		tb.Fatalf("curl: the server answered %d, want %s", n, want)
	}
	return elapsed
}

// redactArgs keeps signatures out of test logs: curl may quote the URL it was given.
func redactArgs(s string) string {
	if i := strings.Index(s, "X-Amz-"); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

// String names the server for benchmark output.
func (s *Server) String() string { return fmt.Sprintf("%s at %s", s.kind, s.endpoint) }
