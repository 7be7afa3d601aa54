package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/promscrape"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

func (h *harness) scrape(token string) promscrape.Families {
	h.t.Helper()
	f, err := promscrape.Scrape(context.Background(), nil, h.srv.URL+"/metrics", token)
	if err != nil {
		h.t.Fatal(err)
	}
	return f
}

func state(s string) map[string]string { return map[string]string{"state": s} }

// TestMetricsMoveDuringProvision scrapes /metrics over HTTP before, during
// and after a real agent's provision (its API, job runner and callbacks;
// the disk steps recorded, the image downloaded from the controller): the
// node-state gauge follows the node, the callback, step and provision
// histograms and the bytes served move, and a power driver's counter is
// there for the power drivers.
func TestMetricsMoveDuringProvision(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Nodes[0].AgentURL = ""
		c.Nodes[0].IP = "10.0.2.15"
		c.MetricsToken = "scrape-s3cret"
	})
	_, _, image := testFiles(t)
	st, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}

	// The token: none → 401, the operator's → 403, the metrics one → 200.
	for _, tc := range []struct {
		token string
		code  int
	}{{"", 401}, {testToken, 403}, {"scrape-s3cret", 200}} {
		req, _ := http.NewRequest("GET", h.srv.URL+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET /metrics with token %q: %d, want %d", tc.token, resp.StatusCode, tc.code)
		}
	}

	f := h.scrape("scrape-s3cret")
	if v := f.Value("imprint_controller_nodes", state("enrolled")); v != 1 {
		t.Errorf("before boot: nodes{state=enrolled} = %v, want 1", v)
	}
	if n := f.Histogram("imprint_controller_callback_duration_seconds", nil).Count; n != 0 {
		t.Errorf("before boot: %d callbacks timed", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger(t).With("component", "agent")
	inv := qemuInventory(6)
	invSrc := api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) { return inv, nil })
	h.boot(testMAC)
	f = h.scrape("scrape-s3cret")
	if v := f.Value("imprint_controller_nodes", state(string(PhaseBootstrap))); v != 1 {
		t.Errorf("after iPXE: nodes{state=pxe-bootstrap} = %v, want 1", v)
	}
	if n := f.Histogram("imprint_controller_callback_duration_seconds", map[string]string{"callback": "ipxe"}).Count; n != 1 {
		t.Errorf("after iPXE: %d ipxe calls timed, want 1", n)
	}

	// The images step blocks until the test has scraped the provisioning
	// state, then downloads.
	gate := make(chan struct{})
	steps := &gatedSteps{recordingSteps: &recordingSteps{images: map[string]int64{}}, gate: gate}
	rep := &agent.CallbackClient{URL: h.nodeURL, Token: h.nodeToken, Logger: log, Backoff: 10 * time.Millisecond}
	jobs, err := agent.NewJobs(ctx, agent.Steps{Inventory: invSrc, Disks: steps, Images: steps, Configdrive: configdriveStep{}},
		agent.JobsOptions{Logger: log, AllowDestructive: true, Reporter: rep, Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	power := &agent.Power{Enabled: true, Delay: time.Millisecond, Logger: log,
		Busy: func() bool { s := jobs.Status().State; return s == api.StateRunning || s == api.StatePending },
		Do:   func(string) error { return nil }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ag := agent.New(agent.Config{Listen: ln.Addr().String(), Token: h.nodeToken, Controller: h.nodeURL},
		agent.Deps{Logger: log, Inventory: invSrc, Jobs: jobs, Power: power, Reporter: rep, Version: "test"})
	go ag.Serve(ctx, ln)

	h.wait(PhaseProvisioning)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f = h.scrape("scrape-s3cret")
		if f.Value("imprint_controller_nodes", state(string(PhaseProvisioning))) == 1 &&
			f.Histogram("imprint_controller_callback_duration_seconds", map[string]string{"callback": "progress"}).Count > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while provisioning: nodes = %v, progress callbacks %d", f["imprint_controller_nodes"], f.Histogram("imprint_controller_callback_duration_seconds", map[string]string{"callback": "progress"}).Count)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.Histogram("imprint_controller_callback_duration_seconds", map[string]string{"callback": "discovery", "code": "2xx"}).Count; n != 1 {
		t.Errorf("while provisioning: %d discoveries timed, want 1", n)
	}
	if v := f.Value("imprint_controller_served_bytes_total", map[string]string{"kind": "image"}); v != 0 {
		t.Errorf("before the images step: %v image bytes served", v)
	}
	close(gate)

	h.wait(PhaseProvisioned)
	h.wait(PhaseRebooting)
	f = h.scrape("scrape-s3cret")
	if v := f.Value("imprint_controller_served_bytes_total", map[string]string{"kind": "image"}); v != float64(st.Size()) {
		t.Errorf("image bytes served = %v, want the image's %d", v, st.Size())
	}
	if n := f.Histogram("imprint_controller_callback_duration_seconds", map[string]string{"callback": "result"}).Count; n != 1 {
		t.Errorf("%d results timed, want 1", n)
	}
	if p := f.Histogram("imprint_controller_callback_duration_seconds", nil).Quantile(0.99); !(p > 0) {
		t.Errorf("callback p99 = %v, want > 0", p)
	}
	for _, step := range []string{"disks", "configdrive", "images"} {
		if n := f.Histogram("imprint_controller_step_duration_seconds", map[string]string{"step": step, "state": "succeeded"}).Count; n != 1 {
			t.Errorf("step %s: %d durations observed, want 1", step, n)
		}
	}
	if h := f.Histogram("imprint_controller_step_duration_seconds", map[string]string{"step": "images"}); h.Sum <= 0 {
		t.Errorf("images step duration sum = %v, want > 0 (it waited for the test)", h.Sum)
	}
	if n := f.Histogram("imprint_controller_provision_duration_seconds", map[string]string{"outcome": "succeeded"}).Count; n != 1 {
		t.Errorf("%d successful provisions observed, want 1", n)
	}
	for _, s := range []Phase{PhaseProvisioned, PhaseRebooting} {
		if v := f.Value("imprint_controller_nodes", state(string(s))); v == 1 {
			break
		} else if s == PhaseRebooting {
			t.Errorf("after the result: nodes = %v", f["imprint_controller_nodes"])
		}
	}

	// What a power driver counts, as another package would.
	h.ctrl.Metrics().PowerAction("ipmi", "cycle", "")
	h.ctrl.Metrics().PowerAction("ipmi", "on", PowerReasonTimeout)
	h.ctrl.Metrics().PowerAction("evil\ndriver", "on", "made-up reason")
	f = h.scrape("scrape-s3cret")
	if v := f.Value("imprint_controller_power_actions_total", map[string]string{"driver": "ipmi"}); v != 2 {
		t.Errorf("ipmi power actions = %v, want 2", v)
	}
	if v := f.Value("imprint_controller_power_failures_total", map[string]string{"driver": "ipmi", "action": "on", "reason": "timeout"}); v != 1 {
		t.Errorf("ipmi on timeouts = %v, want 1", v)
	}
	if v := f.Value("imprint_controller_power_failures_total", map[string]string{"driver": "unknown", "reason": "other"}); v != 1 {
		t.Errorf("an unknown driver and reason are not folded: %v", f["imprint_controller_power_failures_total"])
	}
	// No node identity in any label.
	resp, err := http.DefaultClient.Do(func() *http.Request {
		r, _ := http.NewRequest("GET", h.srv.URL+"/metrics", nil)
		r.Header.Set("Authorization", "Bearer scrape-s3cret")
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	for _, secret := range []string{testMAC, "node-1", h.nodeToken} {
		if strings.Contains(body.String(), secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}

// gatedSteps hold the images step until gate is closed.
type gatedSteps struct {
	*recordingSteps
	gate chan struct{}
}

func (g *gatedSteps) Write(ctx context.Context, job *prepare.Job, img prepare.Image, progress agent.ProgressFunc) (agent.ImageResult, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return agent.ImageResult{}, ctx.Err()
	}
	time.Sleep(30 * time.Millisecond) // a measurable step
	return g.recordingSteps.Write(ctx, job, img, progress)
}

// TestImageServers: with image servers configured, a node's document
// points at its rack group's servers (else the default ones), with the
// others and then the controller as mirrors, which the agent's parser
// accepts.
func TestImageServers(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ImageURLs = []string{"http://nginx-a:8080/img/", "http://nginx-b"}
		c.GroupImageURLs = map[string][]string{"rack7": {"http://rack7-cache"}}
		c.Nodes = append(c.Nodes, Node{MAC: "52:54:00:12:34:57", Hostname: "node-2", Group: "rack7", AgentURL: c.Nodes[0].AgentURL, SSHKeys: []string{testKey}})
	})
	base := h.srv.URL
	n1, n2 := h.ctrl.nodes[testMAC], h.ctrl.nodes["52:54:00:12:34:57"]
	im1, im2 := h.ctrl.nodeImages(n1, base), h.ctrl.nodeImages(n2, base)
	if im1[0].URI != "http://nginx-a:8080/img/debian-12-amd64.img.gz" ||
		strings.Join(im1[0].Mirrors, " ") != "http://nginx-b/debian-12-amd64.img.gz "+base+"/images/debian-12-amd64.img.gz" {
		t.Errorf("default group: %s %v", im1[0].URI, im1[0].Mirrors)
	}
	if im2[0].URI != "http://rack7-cache/debian-12-amd64.img.gz" || strings.Join(im2[0].Mirrors, " ") != base+"/images/debian-12-amd64.img.gz" {
		t.Errorf("rack7: %s %v", im2[0].URI, im2[0].Mirrors)
	}
	// The document carries them and validates.
	h.boot(testMAC)
	rep := h.reporter("n1")
	if err := rep.Discovery(context.Background(), discovery("n1")); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseProvisioning)
	doc, _ := h.ctrl.Document(testMAC)
	d, err := provision.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	img := d.KsMeta.ImageData["/"]
	if img.URI != im1[0].URI || len(img.Mirrors) != 2 {
		t.Errorf("document image_data[/] = %+v", img)
	}
	if len(img.Mirrors) == 2 && img.Mirrors[0] != "http://nginx-b/debian-12-amd64.img.gz" {
		t.Errorf("document mirrors = %v", img.Mirrors)
	}

	// Bad settings are named.
	for _, mutate := range []func(*Config){
		func(c *Config) { c.ImageURLs = []string{"ftp://x"} },
		func(c *Config) { c.GroupImageURLs = map[string][]string{"r 1": {"http://x"}} },
		func(c *Config) { c.GroupImageURLs = map[string][]string{"r1": nil} },
		func(c *Config) { c.MetricsToken = c.Token },
	} {
		cfg := h.cfg
		cfg.Store = testStore(t)
		cfg.Metrics = nil
		mutate(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "url") && !strings.Contains(err.Error(), "metrics-token") {
			t.Errorf("New accepted a bad image server setting: %v", err)
		}
	}
}

// TestTransferLimit: with one transfer slot, a second download waits for
// it and is refused with 503 and Retry-After once TransferWait passed; the
// gauges and the refusal counter say so over /metrics; when the first
// ends, the next gets the image.
func TestTransferLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxTransfers = 1
		c.TransferWait = 300 * time.Millisecond
		big := c.Images[0].Path + ".big.img"
		fh, err := os.Create(big)
		if err != nil {
			t.Fatal(err)
		}
		if err := fh.Truncate(256 << 20); err != nil { // more than any socket buffer
			t.Fatal(err)
		}
		fh.Close()
		c.Images = append(c.Images, Image{MountPoint: "/srv", Path: big})
	})
	url := h.srv.URL + "/images/" + "debian-12-amd64.img.gz.big.img"
	first, err := http.Get(url) // headers read, body left unread: the slot stays taken
	if err != nil {
		t.Fatal(err)
	}
	if first.StatusCode != 200 {
		t.Fatalf("first download: %s", first.Status)
	}
	f := h.scrape("")
	if v := f.Value("imprint_controller_image_transfers_active", nil); v != 1 {
		t.Errorf("active transfers = %v, want 1", v)
	}
	t0 := time.Now()
	second, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable || second.Header.Get("Retry-After") == "" {
		t.Errorf("second download while the slot is taken: %s, Retry-After %q", second.Status, second.Header.Get("Retry-After"))
	}
	if waited := time.Since(t0); waited < 250*time.Millisecond {
		t.Errorf("refused after %s, before TransferWait", waited)
	}
	// Manifests and metadata are not transfers: served at once.
	if code, _ := h.get("/images/debian-12-amd64.yaml"); code == http.StatusServiceUnavailable {
		t.Errorf("metadata refused by the transfer limit")
	}
	if v := h.scrape("").Value("imprint_controller_image_transfers_refused_total", nil); v != 1 {
		t.Errorf("refused transfers = %v, want 1", v)
	}
	first.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for h.scrape("").Value("imprint_controller_image_transfers_active", nil) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the closed download never gave its slot back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	third, err := http.Get(h.srv.URL + "/images/debian-12-amd64.img.gz")
	if err != nil {
		t.Fatal(err)
	}
	third.Body.Close()
	if third.StatusCode != 200 {
		t.Errorf("after the slot freed: %s", third.Status)
	}
}

// TestNodeState: the gauge counts the furthest phase of the round, failed
// first, whatever order the phases were recorded in.
func TestNodeState(t *testing.T) {
	for _, tc := range []struct {
		phases []Phase
		want   Phase
	}{
		{nil, phaseEnrolled},
		{[]Phase{PhaseBootstrap, PhaseDiscovered, PhaseProvisioning, PhaseProgress}, PhaseProvisioning},
		{[]Phase{PhaseBootstrap, PhaseDiscovered, PhaseProgress}, PhaseProvisioning},
		{[]Phase{PhaseBootstrap, PhaseDiscovered, PhaseProvisioning, PhaseProvisioned, PhaseLocal, PhaseOSUp, PhaseRebooting}, PhaseOSUp},
		{[]Phase{PhaseBootstrap, PhaseDiscovered, PhaseProvisioning, PhaseFailed}, PhaseFailed},
		{[]Phase{PhaseReprovision}, PhaseReprovision},
	} {
		if got := nodeState(NodeRecord{Phases: tc.phases}); got != tc.want {
			t.Errorf("nodeState(%v) = %s, want %s", tc.phases, got, tc.want)
		}
	}
}

// TestPhoneHomeRepeated: cloud-init retrying a phone-home (its answer lost
// with a killed controller) records one os-up, not two.
func TestPhoneHomeRepeated(t *testing.T) {
	h := newHarness(t, nil)
	h.boot(testMAC)
	rec, _ := h.ctrl.node(testMAC)
	for i := 0; i < 2; i++ {
		resp, err := http.PostForm(h.srv.URL+"/phone-home/"+testMAC+"/"+rec.PhoneSecret, map[string][]string{"hostname": {"node-1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("phone-home %d: %s", i, resp.Status)
		}
	}
	n := 0
	for _, ev := range h.ctrl.Events() {
		if ev.Phase == PhaseOSUp {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d os-up events, want 1", n)
	}
}

// TestRediscoveryAdoptsJob: a discovery repeated in the round (the agent
// retrying one whose answer died with a killed controller) while the
// agent already has a job of this boot, even one that succeeded, is not
// posted again: the node is not provisioned twice (found by the fleet
// simulation's SIGKILL run).
func TestRediscoveryAdoptsJob(t *testing.T) {
	for _, state := range []string{api.StateRunning, api.StateSucceeded} {
		h := newHarness(t, nil)
		rep := h.reporter("uuid-1")
		if err := rep.Discovery(context.Background(), discovery("")); err != nil {
			t.Fatal(err)
		}
		h.wait(PhaseProvisioning)
		h.agent.mu.Lock()
		h.agent.state = state
		h.agent.mu.Unlock()
		if err := rep.Discovery(context.Background(), discovery("")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			evs := h.ctrl.Events()
			if last := evs[len(evs)-1]; last.Phase == PhaseProvisioning && strings.Contains(last.Detail, "not posted again") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %s: no adoption event: %+v", state, evs[len(evs)-1])
			}
			time.Sleep(10 * time.Millisecond)
		}
		if provs, _ := h.agent.calls(); len(provs) != 1 {
			t.Errorf("agent %s: %d provision calls, want 1", state, len(provs))
		}
	}
}

func TestPowerFailureReason(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, dialErr := net.DialTimeout("tcp", "127.0.0.1:1", time.Second) // nothing listens on port 1
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("ipmi chassis power on: %w", ctx.Err()), PowerReasonTimeout},
		{fmt.Errorf("redfish: %w", dialErr), PowerReasonUnreachable},
		{errors.New("something else"), PowerReasonOther},
	} {
		if got := PowerFailureReason(tc.err); got != tc.want {
			t.Errorf("PowerFailureReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestResumeRebootAgentGone: a restarted controller that finds a success
// whose reboot was not recorded, and an agent that no longer answers (the
// dead controller had asked; the node is rebooting), records no failure:
// the node's local-boot iPXE and phone-home carry the round on (found by
// the fleet simulation's SIGKILL run).
func TestResumeRebootAgentGone(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	rec, err := h.store.Node(ctx, testMAC)
	if err != nil {
		t.Fatal(err)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	rec.Phases = []Phase{PhaseBootstrap, PhaseDiscovered, PhaseProvisioning, PhaseProvisioned}
	rec.Token, rec.PhoneSecret, rec.AgentURL, rec.Local = "node-token-1", "phone-1", deadURL, true
	if err := h.store.Save(ctx, rec); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := h.ctrl.Start(sctx); err != nil {
		t.Fatal(err)
	}
	if code, script := h.get("/ipxe?mac=" + testMAC); code != 200 || !strings.Contains(script, "sanboot") {
		t.Fatalf("local boot: %d %s", code, script)
	}
	resp, err := http.PostForm(h.srv.URL+"/phone-home/"+testMAC+"/phone-1", map[string][]string{"hostname": {"node-1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h.wait(PhaseOSUp)
	time.Sleep(100 * time.Millisecond) // resume runs in the background: give it its chance to record a failure
	if r, _ := h.ctrl.node(testMAC); r.has(PhaseFailed) || nodeState(r) != PhaseOSUp {
		t.Errorf("phases %v: want os-up, no failure", r.Phases)
	}
}
