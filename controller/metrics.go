package controller

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imprint-dev/imprint/api"
)

// Metrics are the controller's Prometheus metrics (GET /metrics). They live
// on the registry given to NewMetrics, never on the process-wide default
// one, so two controllers in one process (tests) count apart.
//
// Their labels are bounded sets chosen by the controller (phases, step
// names, callback kinds, power actions and reasons), never a node's MAC,
// host name or anything a node reported verbatim: a node cannot grow the
// series set, and a scrape shows no node's identity or credentials.
type Metrics struct {
	reg *prometheus.Registry

	stepSeconds      *prometheus.HistogramVec
	provisionSeconds *prometheus.HistogramVec
	bytesServed      *prometheus.CounterVec
	callbackSeconds  *prometheus.HistogramVec
	powerActions     *prometheus.CounterVec
	powerFailures    *prometheus.CounterVec
	transfersActive  prometheus.Gauge
	transfersWaiting prometheus.Gauge
	transfersRefused prometheus.Counter
}

// Steps of an agent's job the step histogram knows (the agent's
// StepNames); any other name a node sends is counted as "other".
var agentSteps = []string{"prepare", "disks", "configdrive", "images", "bootloader", "report"}

// Power failure reasons the controller records (PowerAction's reason; any
// other string is counted as "other").
const (
	PowerReasonTimeout     = "timeout"         // the BMC did not answer in time
	PowerReasonAuth        = "auth"            // the BMC refused the credentials
	PowerReasonUnreachable = "unreachable"     // no route or connection refused
	PowerReasonBMCError    = "bmc_error"       // the BMC answered with an error
	PowerReasonNoDriver    = "no_driver"       // the node has no BMC configured
	PowerReasonUnsupported = "unsupported"     // the driver cannot do the action
	PowerReasonOther       = "other"           // anything else
	powerReasonNone        = ""                // success
	powerDriverUnknown     = "unknown"         // a driver name outside the known set
	callbackOther          = "other"           // a callback route outside the known set
	stepOther              = "other"           // a step name outside agentSteps
	servedOther            = "other"           // a file kind outside the known set
	outcomeSucceeded       = "succeeded"       // provision outcome
	outcomeFailed          = "failed"          // provision outcome
	phaseEnrolled          = Phase("enrolled") // a node that never booted the bootstrap
)

var powerReasons = []string{PowerReasonTimeout, PowerReasonAuth, PowerReasonUnreachable, PowerReasonBMCError, PowerReasonNoDriver, PowerReasonUnsupported, PowerReasonOther}

// Power drivers and actions the power metric knows.
var (
	powerDrivers = []string{"ipmi", "redfish", "agent", "qemu", "none"}
	powerActions = []string{"on", "off", "cycle", "reset", "status"}
)

// NewMetrics registers the controller's metrics on reg (a fresh registry
// when nil). The node-state gauge is added by the controller that owns the
// store (New).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	// Provisions take seconds (a simulation) to an hour (a large image on
	// a slow disk).
	long := []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	m := &Metrics{
		reg: reg,
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imprint_controller_step_duration_seconds",
			Help:    "Duration of each step of the agents' jobs, as their results report it, by step and state.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"step", "state"}),
		provisionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imprint_controller_provision_duration_seconds",
			Help:    "Time from posting a node's provision.json to its result, by outcome.",
			Buckets: long,
		}, []string{"outcome"}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imprint_controller_served_bytes_total",
			Help: "Bytes of files served to nodes, by kind (image, manifest, metadata, kernel, initrd).",
		}, []string{"kind"}),
		callbackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imprint_controller_callback_duration_seconds",
			Help:    "Time the controller took to answer a node's call (ipxe, discovery, progress, result, phone-home), by callback and status code class.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"callback", "code"}),
		powerActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imprint_controller_power_actions_total",
			Help: "Power actions the controller asked of a node's BMC or agent, by driver and action (failed ones included).",
		}, []string{"driver", "action"}),
		powerFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imprint_controller_power_failures_total",
			Help: "Power actions that failed, by driver, action and reason.",
		}, []string{"driver", "action", "reason"}),
		transfersActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imprint_controller_image_transfers_active",
			Help: "Image downloads the controller is serving now.",
		}),
		transfersWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imprint_controller_image_transfers_waiting",
			Help: "Image downloads waiting for a transfer slot (Config.MaxTransfers).",
		}),
		transfersRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imprint_controller_image_transfers_refused_total",
			Help: "Image downloads answered 503 because no transfer slot freed in time.",
		}),
	}
	reg.MustRegister(m.stepSeconds, m.provisionSeconds, m.bytesServed, m.callbackSeconds,
		m.powerActions, m.powerFailures, m.transfersActive, m.transfersWaiting, m.transfersRefused)
	// Every known series exists from the start, at zero: a rate() over a
	// fresh controller is 0, not absent.
	for _, d := range powerDrivers {
		for _, a := range powerActions {
			m.powerActions.WithLabelValues(d, a)
		}
	}
	for _, k := range servedKinds {
		m.bytesServed.WithLabelValues(k)
	}
	return m
}

// Registry is the registry the metrics live on (to add more, or gather).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// PowerAction counts one power action of driver (ipmi, redfish, agent,
// qemu, none) — on, off, cycle, reset or status — and, when reason is not
// empty, its failure for that reason (one of the PowerReason constants).
// Power drivers call it once per action they carry out. Unknown drivers,
// actions and reasons are folded into "unknown"/"other" so the series set
// stays bounded. A nil *Metrics counts nothing.
func (m *Metrics) PowerAction(driver, action, reason string) {
	if m == nil {
		return
	}
	if !oneOf(driver, powerDrivers) {
		driver = powerDriverUnknown
	}
	if !oneOf(action, powerActions) {
		action = PowerReasonOther
	}
	m.powerActions.WithLabelValues(driver, action).Inc()
	if reason == powerReasonNone {
		return
	}
	if !oneOf(reason, powerReasons) {
		reason = PowerReasonOther
	}
	m.powerFailures.WithLabelValues(driver, action, reason).Inc()
}

// observeResult records a job's result: its steps' durations and the whole
// provision's.
func (m *Metrics) observeResult(steps []stepDuration, succeeded bool, took time.Duration) {
	for _, s := range steps {
		name := s.name
		if !oneOf(name, agentSteps) {
			name = stepOther
		}
		state := s.state
		if !oneOf(state, []string{"succeeded", "failed", "skipped"}) {
			continue // pending/running steps of a failed job have no duration
		}
		m.stepSeconds.WithLabelValues(name, state).Observe(s.seconds)
	}
	if took <= 0 {
		return
	}
	outcome := outcomeFailed
	if succeeded {
		outcome = outcomeSucceeded
	}
	m.provisionSeconds.WithLabelValues(outcome).Observe(took.Seconds())
}

type stepDuration struct {
	name, state string
	seconds     float64
}

// nodeStates is the collector of imprint_controller_nodes: the enrolled
// nodes by the last phase of their current round, read from the store at
// scrape time (so several controllers sharing PostgreSQL agree).
type nodeStates struct {
	store Store
	desc  *prometheus.Desc
	log   func(msg string, args ...any)
}

// nodeStateNames are every state the gauge reports, zeroes included.
var nodeStateNames = []Phase{phaseEnrolled, PhaseReprovision, PhaseBootstrap, PhaseDiscovered, PhaseProvisioning,
	PhaseProvisioned, PhaseRebooting, PhaseLocal, PhaseOSUp, PhaseFailed}

func newNodeStates(store Store, log func(msg string, args ...any)) *nodeStates {
	return &nodeStates{store: store, log: log, desc: prometheus.NewDesc("imprint_controller_nodes",
		"Enrolled nodes by state: the last phase of their current round (progress counts as provisioning; enrolled: no boot yet).",
		[]string{"state"}, nil)}
}

// Describe implements prometheus.Collector.
func (n *nodeStates) Describe(ch chan<- *prometheus.Desc) { ch <- n.desc }

// Collect implements prometheus.Collector.
func (n *nodeStates) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := n.store.Nodes(ctx)
	if err != nil {
		n.log("metrics: read nodes", "err", err)
		ch <- prometheus.NewInvalidMetric(n.desc, err)
		return
	}
	counts := map[Phase]int{}
	for _, r := range recs {
		counts[nodeState(r)]++
	}
	for _, s := range nodeStateNames {
		ch <- prometheus.MustNewConstMetric(n.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// nodeState is the state the gauge counts a node under: failed, else the
// furthest phase its round reached (not the last recorded: a fast node's
// pxe-local and os-up can be recorded before the rebooting that caused
// them).
func nodeState(r NodeRecord) Phase {
	if r.has(PhaseFailed) {
		return PhaseFailed
	}
	best, rank := phaseEnrolled, -1
	for _, p := range r.Phases {
		if p == PhaseProgress {
			p = PhaseProvisioning
		}
		for i, s := range nodeStateNames {
			if s == p && i > rank {
				best, rank = p, i
			}
		}
	}
	return best
}

// callbackKinds are the callback label's values.
var callbackKinds = []string{"ipxe", "discovery", "progress", "result", "phone-home"}

// timeCallback is middleware observing how long the controller took to
// answer one kind of node call.
func (m *Metrics) timeCallback(kind string, next http.Handler) http.Handler {
	if !oneOf(kind, callbackKinds) {
		kind = callbackOther
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.callbackSeconds.WithLabelValues(kind, codeClass(sw.code)).Observe(time.Since(start).Seconds())
	})
}

// timeAgentCallbacks times the agent's callbacks (…/discovery, /progress,
// /result) by the last element of their path.
func (m *Metrics) timeAgentCallbacks(next http.Handler) http.Handler {
	timed := map[string]http.Handler{}
	for _, k := range []string{"discovery", "progress", "result", callbackOther} {
		timed[k] = m.timeCallback(k, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		h, ok := timed[kind]
		if !ok {
			h = timed[callbackOther]
		}
		h.ServeHTTP(w, r)
	})
}

func codeClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	}
	return "2xx"
}

// statusWriter remembers the status code.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// countingWriter counts the body bytes of a served file into a counter;
// ReadFrom keeps the kernel's sendfile path (ServeContent copies an
// *os.File).
type countingWriter struct {
	http.ResponseWriter
	c prometheus.Counter
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.c.Add(float64(n))
	return n, err
}

func (w countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.c.Add(float64(n))
	return n, err
}

func (w countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// servedKinds are the file kinds whose bytes served are counted.
var servedKinds = []string{"image", "manifest", "metadata", "kernel", "initrd", "ipxe"}

// served returns the bytes-served counter of a file kind.
func (m *Metrics) served(kind string) prometheus.Counter {
	if !oneOf(kind, servedKinds) {
		kind = servedOther
	}
	return m.bytesServed.WithLabelValues(kind)
}

// metricsHandler serves the registry in Prometheus' text format. With a
// token, a scrape must bring it as its bearer (Prometheus'
// authorization.credentials); without one /metrics is open, which shows
// counts and durations only (see Metrics: no node identity, no secret).
// The operator token is never accepted here: it can reprovision nodes and
// has no business in a scraper's configuration.
func (m *Metrics) metricsHandler(token string) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="imprint-metrics"`)
			httpError(w, http.StatusUnauthorized, "/metrics needs the metrics token as bearer (--metrics-token)")
			return
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			httpError(w, http.StatusForbidden, "not the metrics token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// observeResult records a node's job result in the metrics.
func (c *Controller) observeResult(st api.Status, provStart time.Time) {
	steps := make([]stepDuration, 0, len(st.Steps))
	for _, s := range st.Steps {
		steps = append(steps, stepDuration{name: s.Name, state: string(s.State), seconds: s.DurationSeconds})
	}
	var took time.Duration
	if !provStart.IsZero() {
		took = c.now().Sub(provStart)
	}
	c.metrics.observeResult(steps, st.State == api.StateSucceeded, took)
}

// Metrics are the controller's metrics, for the power drivers
// (Metrics.PowerAction) and for registering more collectors.
func (c *Controller) Metrics() *Metrics { return c.metrics }

// PowerFailureReason classifies a power driver's error for PowerAction
// when the driver knows no better: nil is success (""), a deadline or a
// network timeout is PowerReasonTimeout, a refused or unroutable
// connection PowerReasonUnreachable, anything else PowerReasonOther.
// Drivers report PowerReasonAuth, PowerReasonBMCError and
// PowerReasonUnsupported themselves, from what the BMC answered.
func PowerFailureReason(err error) string {
	if err == nil {
		return powerReasonNone
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return PowerReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNRESET):
		return PowerReasonUnreachable
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return PowerReasonUnreachable
	}
	return PowerReasonOther
}
