package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/store"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpGet returns the status and body of GET url with the given Authorization ("" : none);
// status 0 when nothing answered.
func httpGet(url, auth string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape parses the daemon's /metrics with Prometheus' own parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	var code int
	var body string
	waitFor(t, func() bool { code, body = httpGet("http://"+addr+"/metrics", ""); return code == http.StatusOK }, "/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// metric finds the series of family name whose labels include labels (name, value pairs).
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is the value of a counter or gauge series; -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := metric(fams, name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// After one upload the provider's counters moved and its duration histogram has one
// observation; after a 429 the rate-limited failures did.
func TestMetrics(t *testing.T) {
	addr := freeAddr(t)
	e := newEnv(t, "")
	e.cfg.Listen = addr
	e.start()
	data := bytes.Repeat([]byte("m"), 300<<10)
	p := filepath.Join(e.inbox, "a.mp4")
	write(t, p, data)
	e.checkDone(p, data)
	var fams map[string]*dto.MetricFamily
	waitFor(t, func() bool {
		fams = scrape(t, addr)
		return value(fams, "chute_jobs_finished_total", "provider", "own", "state", "done") == 1
	}, "the job counted as done")
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"chute_uploaded_bytes_total", []string{"provider", "own"}, float64(len(data))},
		{"chute_upload_successes_total", []string{"provider", "own"}, 1},
		{"chute_upload_attempts_total", []string{"provider", "own"}, 1},
		{"chute_files_discovered_total", []string{"provider", "own"}, 1},
		{"chute_jobs", []string{"provider", "own", "state", "done"}, 1},
		{"chute_jobs", []string{"provider", "own", "state", "queued"}, 0},
		{"chute_upload_failures_total", []string{"provider", "own", "reason", "rate_limited"}, 0},
		{"chute_upload_in_flight_bytes", []string{"provider", "own"}, 0},
		{"chute_folder_up", []string{"folder", e.inbox}, 1},
		{"chute_folder_watched_dirs", []string{"folder", e.inbox}, 1},
		{"chute_folder_rescans_total", []string{"folder", e.inbox, "reason", "start"}, 1},
		{"chute_state_database_up", nil, 1},
		{"chute_build_info", []string{"version", "dev"}, 1},
	}
	for _, c := range checks {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := metric(fams, "chute_upload_duration_seconds", "provider", "own")
	if h == nil || h.Histogram == nil || h.Histogram.GetSampleCount() != 1 || h.Histogram.GetSampleSum() <= 0 {
		t.Errorf("duration histogram: %v", h)
	}
	if ts := value(fams, "chute_last_success_timestamp_seconds", "provider", "own"); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success at %v", ts)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if fams[name] == nil && !(strings.HasPrefix(name, "process_") && !processMetrics()) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// Prometheus' own linter (what `promtool check metrics` runs) finds nothing to say.
	var list []*dto.MetricFamily
	for name, f := range fams {
		if strings.HasPrefix(name, "chute_") {
			list = append(list, f)
		}
	}
	if problems, err := promlint.NewWithMetricFamilies(list).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}

	e.srv.FailNext(1, http.StatusTooManyRequests, 100*time.Millisecond)
	q := filepath.Join(e.inbox, "b.mp4")
	write(t, q, []byte("after a 429"))
	e.checkDone(q, []byte("after a 429"))
	waitFor(t, func() bool {
		fams = scrape(t, addr)
		return value(fams, "chute_jobs_finished_total", "provider", "own", "state", "done") == 2
	}, "the second job counted as done")
	if got := value(fams, "chute_upload_failures_total", "provider", "own", "reason", "rate_limited"); got != 1 {
		t.Errorf("rate-limited failures = %v, want 1", got)
	}
	if got := value(fams, "chute_upload_successes_total", "provider", "own"); got != 2 {
		t.Errorf("successes = %v, want 2", got)
	}
	if h := metric(fams, "chute_upload_duration_seconds", "provider", "own"); h.Histogram.GetSampleCount() != 2 {
		t.Errorf("duration observations = %d, want 2", h.Histogram.GetSampleCount())
	}
}

// processMetrics says whether the process collector has anything to say here.
func processMetrics() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// /healthz names a watched folder that was removed, and is ok again soon after it is back;
// files dropped into it then are uploaded.
func TestHealthFolderRemovedAndBack(t *testing.T) {
	addr := freeAddr(t)
	e := newEnv(t, "")
	e.cfg.Listen = addr
	e.start()
	url := "http://" + addr + "/healthz"
	waitFor(t, func() bool { c, _ := httpGet(url, ""); return c == http.StatusOK }, "/healthz ok")
	if err := os.RemoveAll(e.inbox); err != nil {
		t.Fatal(err)
	}
	var body string
	waitFor(t, func() bool {
		var c int
		c, body = httpGet(url, "")
		return c == http.StatusServiceUnavailable
	}, "/healthz to say the folder is gone")
	if !strings.Contains(body, "folder "+e.inbox) {
		t.Errorf("/healthz does not name the folder: %q", body)
	}
	if err := os.MkdirAll(e.inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	p := filepath.Join(e.inbox, "after.mp4")
	write(t, p, []byte("dropped into the folder once it was back"))
	waitFor(t, func() bool { c, _ := httpGet(url, ""); return c == http.StatusOK }, "/healthz ok again")
	if took := time.Since(back); took > 8*time.Second {
		t.Errorf("healthy again %v after the folder came back, want a few seconds", took)
	}
	e.checkDone(p, []byte("dropped into the folder once it was back"))
	q := filepath.Join(e.inbox, "later.mp4")
	write(t, q, []byte("and later"))
	e.checkDone(q, []byte("and later"))
}

// The jobs API filters, shows one job with its history, retries a job; on a listener with a
// token, everything but /healthz and /metrics needs it.
func TestJobsAPI(t *testing.T) {
	addr := freeAddr(t)
	const token = "0123456789abcdef-token"
	e := newEnv(t, "")
	e.cfg.Listen, e.cfg.ListenToken = addr, token
	e.srv.FailNext(3, http.StatusInternalServerError, 0) // max_attempts 3: the first file fails
	e.start()
	bad := filepath.Join(e.inbox, "bad.mp4")
	write(t, bad, []byte("fails three times"))
	if sc := e.sidecar(bad); sc.Status != "failed" {
		t.Fatalf("sidecar %+v", sc)
	}
	good := filepath.Join(e.inbox, "good.mp4")
	write(t, good, []byte("works"))
	e.checkDone(good, []byte("works"))

	base, auth := "http://"+addr, "Bearer "+token
	for _, path := range []string{"/v1/jobs", "/v1/jobs/1"} {
		if c, body := httpGet(base+path, ""); c != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d %s", path, c, body)
		}
		if c, _ := httpGet(base+path, "Bearer wrong-token-0123456789"); c != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d", path, c)
		}
	}
	if c, _ := httpGet(base+"/healthz", ""); c != http.StatusOK {
		t.Errorf("/healthz needs no token, got %d", c)
	}
	if c, _ := httpGet(base+"/metrics", ""); c != http.StatusOK {
		t.Errorf("/metrics needs no token, got %d", c)
	}
	list := func(query string) []service.JobStatus {
		t.Helper()
		c, body := httpGet(base+"/v1/jobs"+query, auth)
		if c != http.StatusOK {
			t.Fatalf("GET /v1/jobs%s: %d %s", query, c, body)
		}
		var jobs []service.JobStatus
		if err := json.Unmarshal([]byte(body), &jobs); err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	var failed []service.JobStatus
	waitFor(t, func() bool { failed = list("?state=failed"); return len(failed) == 1 }, "one failed job")
	if failed[0].File != bad {
		t.Errorf("failed: %+v", failed)
	}
	if all := list(""); len(all) != 2 {
		t.Errorf("all jobs: %+v", all)
	}
	if l := list("?limit=1"); len(l) != 1 || l[0].ID != 1 {
		t.Errorf("limit=1: %+v", l)
	}
	if l := list("?state=done,failed&provider=other"); len(l) != 0 {
		t.Errorf("provider=other: %+v", l)
	}
	if c, _ := httpGet(base+"/v1/jobs?state=sleeping", auth); c != http.StatusBadRequest {
		t.Errorf("an unknown state: %d, want 400", c)
	}
	c, body := httpGet(fmt.Sprintf("%s/v1/jobs/%d", base, failed[0].ID), auth)
	var one service.JobStatus
	if c != http.StatusOK || json.Unmarshal([]byte(body), &one) != nil {
		t.Fatalf("GET one job: %d %s", c, body)
	}
	errs := 0
	for _, ev := range one.History {
		if ev.What == "error" && strings.Contains(ev.Text, "500") && !ev.At.IsZero() {
			errs++
		}
	}
	if errs != 3 || one.Attempts != 3 {
		t.Errorf("history of the failed job: %d errors with their times, %d attempts, want 3 and 3: %+v", errs, one.Attempts, one.History)
	}
	if c, _ := httpGet(base+"/v1/jobs/999", auth); c != http.StatusNotFound {
		t.Errorf("an unknown job: %d, want 404", c)
	}

	post := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	retry := fmt.Sprintf("/v1/jobs/%d/retry", failed[0].ID)
	if c, _ := post(retry, ""); c != http.StatusUnauthorized {
		t.Errorf("POST retry without the token: %d", c)
	}
	if c, body := post(retry, auth); c != http.StatusOK {
		t.Fatalf("POST retry: %d %s", c, body)
	}
	e.checkDone(bad, []byte("fails three times"))
	waitFor(t, func() bool {
		_, body = httpGet(fmt.Sprintf("%s/v1/jobs/%d", base, failed[0].ID), auth)
		one = service.JobStatus{}
		return json.Unmarshal([]byte(body), &one) == nil && one.State == store.Done
	}, "the retried job done")
	if one.LastError != "" {
		t.Errorf("the retried job still shows its old error as current: %q", one.LastError)
	}
	kept := 0
	for _, ev := range one.History {
		if ev.What == "error" && strings.Contains(ev.Text, "500") {
			kept++
		}
	}
	if kept != 3 {
		t.Errorf("the retried job's history: %+v", one.History)
	}
	if c, body := post(fmt.Sprintf("/v1/jobs/%d/retry", one.ID), auth); c != http.StatusConflict {
		t.Errorf("retry of a done job: %d %s", c, body)
	}
	if strings.Contains(e.logs.String(), token) {
		t.Error("the listen token is in the logs")
	}
}

// A retry of a job waiting for its next attempt starts it at once, not when its backoff ends.
func TestRetryWaitingJobRunsNow(t *testing.T) {
	e := newEnv(t, "")
	e.tune = func(o *service.Options) { o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour }
	e.srv.FailNext(1, http.StatusInternalServerError, 0)
	e.start()
	p := filepath.Join(e.inbox, "wait.mp4")
	write(t, p, []byte("waits an hour unless retried"))
	var jobs []service.JobStatus
	waitFor(t, func() bool {
		var err error
		jobs, err = service.QueryJobsFiltered(context.Background(), e.state, store.Filter{States: []store.State{store.RetryWait}})
		return err == nil && len(jobs) == 1
	}, "the job to wait for its next attempt")
	if jobs[0].NextAttempt == nil || time.Until(*jobs[0].NextAttempt) < 10*time.Minute {
		t.Fatalf("next attempt %v, want about 30-60 minutes away", jobs[0].NextAttempt)
	}
	asked := time.Now()
	ids, err := service.RequestRetry(context.Background(), e.state, []uint64{jobs[0].ID}, false)
	if err != nil || len(ids) != 1 {
		t.Fatalf("retry: %v %v", ids, err)
	}
	e.checkDone(p, []byte("waits an hour unless retried"))
	if took := time.Since(asked); took > 10*time.Second {
		t.Errorf("done %v after the retry", took)
	}
	j, err := service.QueryJob(context.Background(), e.state, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.LastError != "" || len(j.History) < 2 || j.History[0].What != "error" || j.History[1].What != "retry" {
		t.Errorf("after the retry: last error %q, history %+v", j.LastError, j.History)
	}
}

// reupload uploads a done file again as a new job, through the running daemon; the old job
// keeps its result and the new one's history names it.
func TestReupload(t *testing.T) {
	e := newEnv(t, "")
	e.start()
	p := filepath.Join(e.inbox, "again.mp4")
	write(t, p, []byte("twice on purpose"))
	e.checkDone(p, []byte("twice on purpose"))
	first := e.sidecar(p)
	// The sidecar is written just before the job is marked done: wait for the state.
	waitFor(t, func() bool {
		j, err := service.QueryJob(context.Background(), e.state, first.Job)
		return err == nil && j.State == store.Done
	}, "job done")
	id, err := service.RequestReupload(context.Background(), e.state, p)
	if err != nil || id == first.Job {
		t.Fatalf("reupload: %d %v", id, err)
	}
	waitFor(t, func() bool {
		sc, err := service.ReadSidecar(p)
		return err == nil && sc.Job == id && sc.Status == "done"
	}, "the new job's sidecar")
	e.checkDone(p, []byte("twice on purpose"))
	if second := e.sidecar(p); second.ID == first.ID {
		t.Errorf("the file was not uploaded again: %s", second.ID)
	}
	if got := e.srv.Stats().Created; got != 2 {
		t.Errorf("tusd created %d uploads, want 2", got)
	}
	j, err := service.QueryJob(context.Background(), e.state, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.History) == 0 || j.History[0].What != "reupload" || j.History[0].URL != first.URL {
		t.Errorf("new job's history: %+v (old url %s)", j.History, first.URL)
	}
	old, err := service.QueryJob(context.Background(), e.state, first.Job)
	if err != nil || old.State != store.Done || old.URL != first.URL {
		t.Errorf("old job: %+v %v", old, err)
	}
	if _, err := service.RequestReupload(context.Background(), e.state, filepath.Join(e.inbox, "never.mp4")); err == nil {
		t.Error("reupload of a file chute never saw worked")
	}
	// A restart does not upload it a third time.
	e.stop()
	e.start()
	time.Sleep(time.Second)
	if got := e.srv.Stats().Created; got != 2 {
		t.Errorf("after a restart tusd created %d uploads, want 2", got)
	}
}
