package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/logtest"
)

// flakyController fails the first failures answers of each callback with
// 503 (or drops the connection), then acknowledges; it records the bodies
// it acknowledged.
type flakyController struct {
	mu       sync.Mutex
	failures int
	seen     map[string]int
	acked    map[string][]json.RawMessage
	auth     []string
}

func (c *flakyController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kind := strings.TrimPrefix(r.URL.Path, "/cb/")
	c.seen[kind]++
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", 400)
		return
	}
	if c.seen[kind] <= c.failures {
		if c.seen[kind] == 1 {
			// drop the connection without an answer
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		http.Error(w, "controller busy", http.StatusServiceUnavailable)
		return
	}
	c.acked[kind] = append(c.acked[kind], body)
	w.WriteHeader(http.StatusNoContent)
}

func newFlaky(failures int) *flakyController {
	return &flakyController{failures: failures, seen: map[string]int{}, acked: map[string][]json.RawMessage{}}
}

func TestControllerRetriesUntilAcknowledged(t *testing.T) {
	fc := newFlaky(3)
	srv := httptest.NewServer(fc)
	defer srv.Close()
	var waits []time.Duration
	c := &CallbackClient{URL: srv.URL + "/cb/", Token: "tok", NodeID: "node-1", MaxBackoff: 4 * time.Second,
		Sleep: func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	if err := c.Result(context.Background(), api.Status{ID: "j1", State: api.StateSucceeded}); err != nil {
		t.Fatalf("Result: %v", err)
	}
	if fc.seen["result"] != 4 || len(fc.acked["result"]) != 1 {
		t.Errorf("controller saw %d result posts, acknowledged %d; want 4 and 1", fc.seen["result"], len(fc.acked["result"]))
	}
	if got := waits; len(got) != 3 || got[0] != time.Second || got[1] != 2*time.Second || got[2] != 4*time.Second {
		t.Errorf("backoff waits %v, want [1s 2s 4s]", got)
	}
	var cb api.Callback
	json.Unmarshal(fc.acked["result"][0], &cb)
	if cb.NodeID != "node-1" || cb.Status.ID != "j1" || cb.Status.State != api.StateSucceeded {
		t.Errorf("acknowledged body %+v", cb)
	}
	for _, a := range fc.auth {
		if a != "Bearer tok" {
			t.Errorf("callback Authorization %q", a)
		}
	}
}

// Without a configured NodeID the callbacks carry the identity the
// discovery announced (the agent fills in its default), not "".
func TestControllerCallbacksCarryTheDiscoveredNodeID(t *testing.T) {
	fc := newFlaky(0)
	srv := httptest.NewServer(fc)
	defer srv.Close()
	c := &CallbackClient{URL: srv.URL + "/cb"}
	ctx := context.Background()
	if err := c.Discovery(ctx, api.Discovery{NodeID: "dmi-uuid-1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Progress(ctx, api.Status{ID: "j1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Result(ctx, api.Status{ID: "j1"}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"progress", "result"} {
		var cb api.Callback
		if len(fc.acked[kind]) != 1 || json.Unmarshal(fc.acked[kind][0], &cb) != nil || cb.NodeID != "dmi-uuid-1" {
			t.Errorf("%s callback %s, want node_id dmi-uuid-1", kind, fc.acked[kind])
		}
	}
	// A configured NodeID wins over what a discovery carries.
	c2 := &CallbackClient{URL: srv.URL + "/cb", NodeID: "configured"}
	c2.Discovery(ctx, api.Discovery{NodeID: "dmi-uuid-1"})
	c2.Result(ctx, api.Status{ID: "j2"})
	var cb api.Callback
	json.Unmarshal(fc.acked["result"][1], &cb)
	if cb.NodeID != "configured" {
		t.Errorf("result node_id %q, want the configured one", cb.NodeID)
	}
}

func TestControllerGivesUp(t *testing.T) {
	fc := newFlaky(1000)
	srv := httptest.NewServer(fc)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	c := &CallbackClient{URL: srv.URL + "/cb", Sleep: func(ctx context.Context, d time.Duration) error {
		n++
		if n == 5 {
			cancel()
		}
		return ctx.Err()
	}}
	err := c.Result(ctx, api.Status{})
	if err == nil || !strings.Contains(err.Error(), "gave up after 5 attempts") || !strings.Contains(err.Error(), srv.URL+"/cb/result") {
		t.Errorf("err = %v", err)
	}
	// a 4xx (other than 408/429) is final
	rej := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "unknown node", 404) }))
	defer rej.Close()
	calls := 0
	c = &CallbackClient{URL: rej.URL, Sleep: func(context.Context, time.Duration) error { calls++; return nil }}
	if err := c.Discovery(context.Background(), api.Discovery{}); err == nil || !strings.Contains(err.Error(), "unknown node") || calls != 0 {
		t.Errorf("404: err %v after %d retries", err, calls)
	}
}

// TestAgentCallbacks runs the whole agent (server, discovery with TLS, a
// job, heartbeats and the result) against a controller that fails its first
// answers.
func TestAgentCallbacks(t *testing.T) {
	fc := newFlaky(2)
	ctl := httptest.NewServer(fc)
	defer ctl.Close()
	f := newFakeSteps()
	buf := &logtest.Buffer{}
	log := testLogger(t, buf)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep := &CallbackClient{URL: ctl.URL + "/cb", Token: testToken, NodeID: "n1", Logger: log, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	jobs, err := NewJobs(ctx, f.steps(), JobsOptions{Logger: log, AllowDestructive: true, Reporter: rep, Heartbeat: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Listen: "127.0.0.1:0", Token: testToken, TLS: true, NodeID: "n1", Controller: ctl.URL + "/cb"}
	a := New(cfg, Deps{Logger: log, Inventory: fakeInventory, Jobs: jobs, Reporter: rep})
	ready := make(chan [2]string, 1)
	a.Ready = func(addr, fp string) { ready <- [2]string{addr, fp} }
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	r := <-ready
	if !strings.Contains(buf.String(), "imprint agent ready") || !strings.Contains(buf.String(), r[1]) || len(r[1]) != 95 {
		t.Errorf("ready line with fingerprint %q missing", r[1])
	}

	// the API over TLS, pinning the fingerprint the agent announced
	client := pinnedClient(r[1])
	req, _ := http.NewRequest("POST", "https://"+r[0]+"/v1/provision", strings.NewReader(string(fixture(t))))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("provision over TLS = %d", resp.StatusCode)
	}
	jobs.Wait()
	waitFor(t, func() bool {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return len(fc.acked["discovery"]) == 1 && len(fc.acked["result"]) == 1
	})
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var d api.Discovery
	json.Unmarshal(fc.acked["discovery"][0], &d)
	if d.NodeID != "n1" || d.TLSFingerprint != r[1] || d.Scheme != "https" || d.Inventory == nil || len(d.Inventory.Disks) != 1 {
		t.Errorf("discovery %+v", d)
	}
	var res api.Callback
	json.Unmarshal(fc.acked["result"][0], &res)
	if res.Status.State != api.StateSucceeded || fc.seen["result"] != 3 {
		t.Errorf("result %+v after %d posts", res.Status, fc.seen["result"])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
