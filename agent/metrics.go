package agent

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imprint-dev/imprint/imagewriter"
)

// Metrics are the agent's Prometheus metrics, served at GET /v1/metrics
// behind the node's token like the rest of /v1 (the agent lives for one
// boot; the controller, or an operator with the node's token, scrapes it).
// They live on the registry given to NewMetrics, never the process-wide
// default one. A nil *Metrics counts nothing.
type Metrics struct {
	reg          *prometheus.Registry
	stepSeconds  *prometheus.HistogramVec
	bytesRead    prometheus.Counter
	bytesWritten prometheus.Counter
	retries      *prometheus.CounterVec
	jobs         *prometheus.CounterVec
}

// Retry kinds of imprint_agent_retries_total.
const (
	RetryDownload     = "download"      // an image connection re-opened (Range resume)
	RetryMirrorSwitch = "mirror_switch" // an image download moved to the next mirror
	RetryCallback     = "callback"      // a controller callback attempted again
)

// NewMetrics registers the agent's metrics on reg (a fresh registry when
// nil).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		reg: reg,
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imprint_agent_step_duration_seconds",
			Help:    "Duration of each step of the agent's jobs, by step and outcome.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"step", "state"}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imprint_agent_image_read_bytes_total",
			Help: "Image bytes downloaded, as stored (compressed).",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imprint_agent_image_written_bytes_total",
			Help: "Decompressed image bytes handed to the target devices.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imprint_agent_retries_total",
			Help: "Retries by kind: download (an image connection re-opened), mirror_switch, callback (a controller callback attempted again).",
		}, []string{"kind"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imprint_agent_jobs_total",
			Help: "Jobs finished, by state.",
		}, []string{"state"}),
	}
	reg.MustRegister(m.stepSeconds, m.bytesRead, m.bytesWritten, m.retries, m.jobs)
	for _, k := range []string{RetryDownload, RetryMirrorSwitch, RetryCallback} {
		m.retries.WithLabelValues(k)
	}
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// handler is Handler, nil for a nil *Metrics.
func (m *Metrics) handler() http.Handler {
	if m == nil {
		return nil
	}
	return m.Handler()
}

// Registry is the registry the metrics live on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) step(name, state string, d time.Duration) {
	if m == nil {
		return
	}
	m.stepSeconds.WithLabelValues(name, state).Observe(d.Seconds())
}

func (m *Metrics) job(state string) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(state).Inc()
}

func (m *Metrics) retry(kind string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(kind).Inc()
}

// ImageCounter turns one image write's progress reports (cumulative) into
// the metrics' counters (deltas): Progress for each report, Done with the
// result of a successful write. Make one per image write.
type ImageCounter struct {
	m                     *Metrics
	mu                    sync.Mutex
	read, written, reopen int64
	switches              int
}

// ImageCounter starts counting one image write.
func (m *Metrics) ImageCounter() *ImageCounter { return &ImageCounter{m: m} }

// Progress adds what p reports beyond the last report.
func (c *ImageCounter) Progress(p imagewriter.Progress) {
	c.add(p.BytesRead, p.BytesWritten, int64(p.Retries), -1)
}

// Done adds the rest of a successful write's totals.
func (c *ImageCounter) Done(r imagewriter.Result) {
	c.add(r.BytesRead, r.BytesWritten, int64(r.Retries), r.MirrorSwitches)
}

func (c *ImageCounter) add(read, written, retries int64, switches int) {
	if c == nil || c.m == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if read > c.read {
		c.m.bytesRead.Add(float64(read - c.read))
		c.read = read
	}
	if written > c.written {
		c.m.bytesWritten.Add(float64(written - c.written))
		c.written = written
	}
	if retries > c.reopen {
		c.m.retries.WithLabelValues(RetryDownload).Add(float64(retries - c.reopen))
		c.reopen = retries
	}
	if switches > c.switches {
		c.m.retries.WithLabelValues(RetryMirrorSwitch).Add(float64(switches - c.switches))
		c.switches = switches
	}
}
