package service

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/watcher"
)

// Reasons of chute_upload_failures_total.
const (
	reasonPermanent   = "permanent"
	reasonTransient   = "transient"
	reasonRateLimited = "rate_limited"
)

// metrics are the daemon's Prometheus families, on its own registry (never the global one:
// two daemons in one process, as in tests, must not share counters).
type metrics struct {
	reg *prometheus.Registry

	discovered  *prometheus.CounterVec
	uploaded    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	successes   *prometheus.CounterVec
	failures    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	finished    *prometheus.CounterVec
	pauses      *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	rescans     *prometheus.CounterVec
	overflows   *prometheus.CounterVec
}

func newMetrics(d *Daemon, version string) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "chute", Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg:        prometheus.NewRegistry(),
		discovered: counter("files_discovered_total", "Files that settled in a watched folder and became jobs.", "provider"),
		uploaded:   counter("uploaded_bytes_total", "Bytes sent to the provider (by uploads that ended, in success or not).", "provider"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "chute", Name: "upload_duration_seconds",
			Help: "How long successful upload attempts took, from the first byte read to the provider's answer.",
			// 0.25s to about 2h15m: a small image to a large video on a slow line.
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 16),
		}, []string{"provider"}),
		attempts:    counter("upload_attempts_total", "Upload attempts started (a resume after a stop or crash is one too).", "provider"),
		successes:   counter("upload_successes_total", "Upload attempts that the provider accepted.", "provider"),
		failures:    counter("upload_failures_total", "Upload attempts that failed, by reason: permanent (the job fails), transient (retried later or the provider is down) or rate_limited (the server said to wait: Retry-After, or a rate limit of the whole account).", "provider", "reason"),
		retries:     counter("upload_retries_total", "Failed attempts scheduled to be tried again after a backoff.", "provider"),
		finished:    counter("jobs_finished_total", "Jobs that ended, by state (done or failed).", "provider", "state"),
		pauses:      counter("provider_pauses_total", "Times a provider was paused, by reason (rate_limited or unreachable).", "provider", "reason"),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "chute", Name: "last_success_timestamp_seconds", Help: "When the provider last accepted an upload, in Unix seconds."}, []string{"provider"}),
		rescans:     counter("folder_rescans_total", "Full scans of a watched folder, by reason (start, periodic, overflow, requested, returned).", "folder", "reason"),
		overflows:   counter("folder_overflows_total", "Times the file system's event queue overflowed while the folder was watched (events lost; the folder was rescanned).", "folder"),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chute", Name: "build_info", Help: "Always 1; its labels say which chute this is.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.discovered, m.uploaded, m.duration, m.attempts, m.successes, m.failures, m.retries,
		m.finished, m.pauses, m.lastSuccess, m.rescans, m.overflows, build, &stateCollector{d: d},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// provider makes every series of a provider exist from the start, at 0, so that rate() and
// alerts see them before the first event.
func (m *metrics) provider(name string) {
	m.discovered.WithLabelValues(name)
	m.uploaded.WithLabelValues(name)
	m.duration.WithLabelValues(name)
	m.attempts.WithLabelValues(name)
	m.successes.WithLabelValues(name)
	m.retries.WithLabelValues(name)
	for _, r := range []string{reasonPermanent, reasonTransient, reasonRateLimited} {
		m.failures.WithLabelValues(name, r)
	}
	for _, s := range []store.State{store.Done, store.Failed} {
		m.finished.WithLabelValues(name, string(s))
	}
	m.pauses.WithLabelValues(name, reasonRateLimited)
	m.pauses.WithLabelValues(name, "unreachable")
}

// folder does the same for a folder.
func (m *metrics) folder(path string) {
	for _, r := range []string{"start", "periodic", "overflow", "requested", "returned"} {
		m.rescans.WithLabelValues(path, r)
	}
	m.overflows.WithLabelValues(path)
}

// uploadEnded counts an attempt's bytes and, when it worked, its success and duration.
func (m *metrics) uploadEnded(provider string, bytes int64, ok bool, took time.Duration) {
	if bytes > 0 {
		m.uploaded.WithLabelValues(provider).Add(float64(bytes))
	}
	if ok {
		m.successes.WithLabelValues(provider).Inc()
		m.duration.WithLabelValues(provider).Observe(took.Seconds())
		m.lastSuccess.WithLabelValues(provider).Set(float64(time.Now().UnixNano()) / 1e9)
	}
}

// failed counts a failed attempt by its class: a server telling chute to wait (a rate limit
// of the account, or Retry-After on a 429 or 503) is rate_limited.
func (m *metrics) failed(provider string, class uploader.Class) {
	reason := reasonTransient
	switch class {
	case uploader.Permanent:
		reason = reasonPermanent
	case uploader.RateLimited, uploader.RetryAfter:
		reason = reasonRateLimited
	}
	m.failures.WithLabelValues(provider, reason).Inc()
}

// ended counts a job that ended.
func (m *metrics) ended(provider string, state store.State) {
	m.finished.WithLabelValues(provider, string(state)).Inc()
}

// inflight is an upload running now: its provider and its progress, for the in-flight gauge
// and for status (rate and time left).
type inflight struct {
	provider string
	sent     *atomic.Int64
	start    time.Time
	from     int64 // sent at start

	mu      sync.Mutex
	samples []sample // recent (time, sent), oldest first, taken when status asks
}

type sample struct {
	at   time.Time
	sent int64
}

func newInflight(provider string, sent *atomic.Int64) *inflight {
	return &inflight{provider: provider, sent: sent, start: time.Now(), from: sent.Load()}
}

// rateWindow is how far back the rate status shows looks: long enough to smooth a bursty
// provider, short enough to follow a change of speed.
const rateWindow = 10 * time.Second

// rate returns the bytes a second of about the last rateWindow, as seen by the calls to
// rate (status asking), or since the attempt started when there are no such samples, and
// the bytes sent now. 0 while nothing is known.
func (f *inflight) rate(now time.Time) (float64, int64) {
	n := f.sent.Load()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.samples) == 0 || now.Sub(f.samples[len(f.samples)-1].at) >= 250*time.Millisecond {
		f.samples = append(f.samples, sample{now, n})
	}
	// Keep one sample at or before the window's start, so the window is whole.
	for len(f.samples) > 2 && now.Sub(f.samples[1].at) >= rateWindow {
		f.samples = f.samples[1:]
	}
	// The samples once they span a few seconds (status is watched), else since the start.
	first := sample{f.start, f.from}
	if now.Sub(f.samples[0].at) >= 2*time.Second {
		first = f.samples[0]
	}
	span := now.Sub(first.at).Seconds()
	if span < 0.5 || n < first.sent {
		return 0, n
	}
	return float64(n-first.sent) / span, n
}

// stateCollector reads, at each scrape, what lives elsewhere: jobs by state from the
// database, bytes in flight, provider pauses, and each folder's watch state.
type stateCollector struct{ d *Daemon }

var (
	descJobs     = prometheus.NewDesc("chute_jobs", "Jobs in the state database, by provider and state.", []string{"provider", "state"}, nil)
	descInFlight = prometheus.NewDesc("chute_upload_in_flight_bytes", "Bytes sent so far by the uploads running now.", []string{"provider"}, nil)
	descRunning  = prometheus.NewDesc("chute_uploads_running", "Uploads running now.", []string{"provider"}, nil)
	descPaused   = prometheus.NewDesc("chute_provider_paused", "1 while the provider is paused (rate-limited or unreachable), else 0.", []string{"provider"}, nil)
	descDirs     = prometheus.NewDesc("chute_folder_watched_dirs", "Directories of the folder being watched (0 while it is missing).", []string{"folder"}, nil)
	descPending  = prometheus.NewDesc("chute_folder_pending_files", "Files of the folder waiting to settle.", []string{"folder"}, nil)
	descUp       = prometheus.NewDesc("chute_folder_up", "1 while the folder is watched whole, else 0 (missing, or some directories cannot be watched).", []string{"folder"}, nil)
	descDB       = prometheus.NewDesc("chute_state_database_up", "1 while the state database can be written, else 0.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descInFlight, descRunning, descPaused, descDirs, descPending, descUp, descDB} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	d.cfgMu.RLock()
	names := make([]string, 0, len(d.providers))
	gates := make(map[string]*gate, len(d.providers))
	for name, pr := range d.providers {
		names = append(names, name)
		gates[name] = pr.gate
	}
	d.cfgMu.RUnlock()

	if st := d.st; st != nil {
		if counts, err := st.CountsByProvider(); err == nil {
			for _, name := range names {
				if counts[name] == nil {
					counts[name] = map[store.State]int{}
				}
			}
			for p, m := range counts {
				for _, s := range store.States() {
					ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(m[s]), p, string(s))
				}
			}
		} else {
			ch <- prometheus.NewInvalidMetric(descJobs, err)
		}
	}
	bytes, running := map[string]int64{}, map[string]int{}
	for _, name := range names {
		bytes[name], running[name] = 0, 0
	}
	d.progress.Range(func(_, v any) bool {
		f := v.(*inflight)
		bytes[f.provider] += f.sent.Load()
		running[f.provider]++
		return true
	})
	for p, n := range bytes {
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(n), p)
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(running[p]), p)
	}
	for name, g := range gates {
		v := 0.0
		if kind, _, _ := g.paused(); kind != "" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, v, name)
	}
	if ws := d.watchState.Load(); ws != nil {
		for _, f := range ws.folders {
			up := 1.0
			if f.Err != nil {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(descDirs, prometheus.GaugeValue, float64(f.Dirs), f.Path)
			ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(f.Pending), f.Path)
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, f.Path)
		}
	}
	dbUp := 1.0
	if d.dbErr.Load() != nil {
		dbUp = 0
	}
	ch <- prometheus.MustNewConstMetric(descDB, prometheus.GaugeValue, dbUp)
}

// watchSnapshot is the watcher's last word on its folders.
type watchSnapshot struct {
	at      time.Time
	folders []watcher.FolderState
}

// watchObserver is the daemon's watcher.Observer: it feeds metrics and health.
type watchObserver struct{ d *Daemon }

func (o watchObserver) Rescanned(folder, why string) {
	o.d.m.rescans.WithLabelValues(folder, why).Inc()
}

func (o watchObserver) Overflowed() {
	if ws := o.d.watchState.Load(); ws != nil {
		for _, f := range ws.folders {
			o.d.m.overflows.WithLabelValues(f.Path).Inc()
		}
	}
}

func (o watchObserver) Observe(at time.Time, folders []watcher.FolderState) {
	o.d.watchState.Store(&watchSnapshot{at: at, folders: folders})
}
