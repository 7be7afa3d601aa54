package controller

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/bootstrap/nodearchive"
	"github.com/imprint-dev/imprint/pxe"
)

// testToken is the operator token: no node ever sees it.
const testToken = "operator-s3cret"

// fakeAgent implements the agent routes the controller calls.
type fakeAgent struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// token is the node's token the agent was booted with (its boot
	// script's imprint.token=): the only one it accepts.
	token      string
	provisions []provisionCall
	reboots    int
	// provisionStatus, when not 0, is the answer to POST /v1/provision.
	provisionStatus int
	// state, when set, is the job state GET /v1/provision reports.
	state string
}

type provisionCall struct {
	doc   []byte
	force bool
}

func newFakeAgent(t *testing.T) *fakeAgent { return newFakeAgentTLS(t, false) }

func newFakeAgentTLS(t *testing.T, useTLS bool) *fakeAgent {
	a := &fakeAgent{t: t}
	mux := http.NewServeMux()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		a.mu.Lock()
		want := a.token
		a.mu.Unlock()
		if want == "" || r.Header.Get("Authorization") != "Bearer "+want {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.Error{Error: "invalid bearer token"})
			return false
		}
		return true
	}
	mux.HandleFunc("POST /v1/provision", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.provisions = append(a.provisions, provisionCall{doc: b, force: r.URL.Query().Get("force") == "true"})
		n, code := len(a.provisions), a.provisionStatus
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if code != 0 {
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(api.Error{Error: "a provisioning job is already running"})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(api.StartResponse{ID: fmt.Sprintf("job-%d", n), State: api.StatePending})
	})
	mux.HandleFunc("GET /v1/provision", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		a.mu.Lock()
		st := api.Status{State: api.StateIdle}
		if n := len(a.provisions); n > 0 {
			st = api.Status{ID: fmt.Sprintf("job-%d", n), State: api.StateRunning}
		}
		if a.state != "" {
			st.State = a.state
		}
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /v1/reboot", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		a.mu.Lock()
		a.reboots++
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"action":"reboot"}`)
	})
	if useTLS {
		a.srv = httptest.NewTLSServer(mux)
	} else {
		a.srv = httptest.NewServer(mux)
	}
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) calls() ([]provisionCall, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]provisionCall(nil), a.provisions...), a.reboots
}

type fakePower struct {
	mu     sync.Mutex
	resets []string
	err    error
}

func (p *fakePower) Reset(_ context.Context, mac string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resets = append(p.resets, mac)
	return p.err
}

// testFiles writes a kernel, an initramfs and a gzip image with its Fuel
// metadata into a temp dir.
func testFiles(t *testing.T) (kernel, initrd, image string) {
	dir := t.TempDir()
	kernel, initrd, image = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.cpio.gz"), filepath.Join(dir, "debian-12-amd64.img.gz")
	os.WriteFile(kernel, []byte("kernel bytes"), 0o644)
	os.WriteFile(initrd, []byte("initrd bytes"), 0o644)
	f, _ := os.Create(image)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(strings.Repeat("ext4 image ", 1000)))
	zw.Close()
	f.Close()
	meta := "images:\n- container: gzip\n  container_name: debian-12-amd64.img.gz\n  format: ext4\n  raw_size: 1887436800\n"
	os.WriteFile(filepath.Join(dir, "debian-12-amd64.yaml"), []byte(meta), 0o644)
	os.WriteFile(image+frameManifestSuffix, []byte(`{"frames":[]}`), 0o644)
	return kernel, initrd, image
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type harness struct {
	t     *testing.T
	ctrl  *Controller
	srv   *httptest.Server
	agent *fakeAgent
	power *fakePower
	store Store
	cfg   Config
	// From the last bootstrap script: the node's callback URL and token.
	nodeURL, nodeToken string
}

// testStore is a fresh SQLite store in the test's temp dir.
func testStore(t *testing.T) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "controller.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	kernel, initrd, image := testFiles(t)
	ag := newFakeAgent(t)
	pw := &fakePower{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Token:    testToken,
		Store:    testStore(t),
		GuestURL: "http://" + ln.Addr().String(),
		Kernel:   kernel, Initrd: initrd,
		Images:    []Image{{MountPoint: "/", Path: image, Format: "ext4"}},
		Nodes:     []Node{{MAC: "52:54:00:12:34:56", Hostname: "node-1", SSHKeys: []string{testKey}, AgentURL: ag.srv.URL, Cmdline: []string{"console=ttyS0", "imprint.log_format=text"}}},
		LocalBoot: pxe.LocalSanboot,
		Power:     pw,
		Logger:    testLogger(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctrl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: ctrl.Handler()}}
	srv.Start()
	t.Cleanup(func() { srv.Close(); ctrl.Close() })
	return &harness{t: t, ctrl: ctrl, srv: srv, agent: ag, power: pw, store: cfg.Store, cfg: cfg}
}

// boot fetches the node's iPXE script and then its initramfs as its
// firmware would, takes the node's callback URL from the script and its
// token from the initramfs' per-node archive (and gives the token to the
// fake agent, as the archive's /etc/imprint/token gives it to the real one).
func (h *harness) boot(mac string) string {
	h.t.Helper()
	code, script := h.get("/ipxe?mac=" + mac)
	if code != 200 {
		h.t.Fatalf("GET /ipxe?mac=%s: %d %s", mac, code, script)
	}
	h.nodeURL, h.nodeToken = cmdlineValue(script, "imprint.controller="), h.initrdToken(script)
	h.agent.mu.Lock()
	h.agent.token = h.nodeToken
	h.agent.mu.Unlock()
	return script
}

// initrdToken fetches the initramfs the script names (as iPXE's initrd
// line does) and returns the token of its per-node archive, the part after
// the shared base.
func (h *harness) initrdToken(script string) string {
	h.t.Helper()
	var u string
	for _, line := range strings.Split(script, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "initrd" && f[1] == "--name" {
			u = f[3]
		}
	}
	pu, err := url.Parse(u)
	if err != nil || !strings.HasPrefix(u, strings.TrimRight(h.cfg.GuestURL, "/")) {
		h.t.Fatalf("script's initrd %q is not under %s (%v):\n%s", u, h.cfg.GuestURL, err, script)
	}
	path := pu.RequestURI()
	code, body := h.get(path)
	if code != 200 {
		h.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	base, err := os.ReadFile(h.cfg.Initrd)
	if err != nil {
		h.t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(body, string(base))
	if !ok {
		h.t.Fatalf("GET %s: does not start with the shared initramfs %s", path, h.cfg.Initrd)
	}
	files, err := nodearchive.Read([]byte(rest))
	if err != nil {
		h.t.Fatalf("GET %s: per-node archive: %v", path, err)
	}
	return strings.TrimSpace(string(files[nodearchive.TokenFile].Content))
}

func cmdlineValue(script, key string) string {
	for _, f := range strings.Fields(script) {
		if v, ok := strings.CutPrefix(f, key); ok {
			return v
		}
	}
	return ""
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// reporter is the agent's callback client as the node's boot script
// configures it (booting the node first if it was not).
func (h *harness) reporter(nodeID string) *agent.CallbackClient {
	if h.nodeToken == "" {
		h.boot(testMAC)
	}
	return &agent.CallbackClient{URL: h.nodeURL, Token: h.nodeToken, NodeID: nodeID, Logger: testLogger(h.t),
		Sleep: func(ctx context.Context, d time.Duration) error { return errors.New("no retries in tests") }}
}

func (h *harness) wait(p Phase) Event {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := h.ctrl.Wait(ctx, testMAC, p)
	if err != nil {
		h.t.Fatalf("Wait(%s): %v", p, err)
	}
	return ev
}

func discovery(nodeID string) api.Discovery {
	return api.Discovery{NodeID: nodeID, Listen: ":9999", Scheme: "http", Addresses: []string{"10.0.2.15"}, Version: "test", Inventory: qemuInventory(6)}
}

// TestLoop drives two full rounds: iPXE → discovery → provision.json →
// result → flip → reboot → local boot → phone-home, then Reprovision and
// the same again with force.
func TestLoop(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	base := h.srv.URL

	for round := 1; round <= 2; round++ {
		if round == 2 {
			if err := h.ctrl.Reprovision(ctx, "52-54-00-12-34-56"); err != nil {
				t.Fatal(err)
			}
			if len(h.power.resets) != 1 || h.power.resets[0] != testMAC {
				t.Fatalf("power resets = %v", h.power.resets)
			}
		}
		script := h.boot("52:54:00:12:34:56")
		if len(h.nodeToken) != 64 {
			t.Errorf("round %d: node token %q, want 32 random bytes in hex", round, h.nodeToken)
		}
		if strings.Contains(script, testToken) || strings.Contains(script, h.nodeToken) || strings.Contains(script, "imprint.token") {
			t.Errorf("round %d: the boot script carries a token (the node's belongs in its initramfs):\n%s", round, script)
		}
		for _, want := range []string{"#!ipxe", "kernel --name vmlinuz " + base + "/boot/vmlinuz ", "imprint.controller=" + base + "/agent/52:54:00:12:34:56 ",
			"console=ttyS0 ", "imprint.log_format=text", "initrd --name initrd.img " + base + "/boot/initramfs/52-54-00-12-34-56\n"} {
			if !strings.Contains(script, want) {
				t.Errorf("round %d: bootstrap script lacks %q:\n%s", round, want, script)
			}
		}
		if ev := h.wait(PhaseBootstrap); ev.Round != round {
			t.Errorf("pxe-bootstrap event in round %d, want %d", ev.Round, round)
		}

		rep := h.reporter("uuid-1")
		if err := rep.Discovery(ctx, discovery("")); err != nil {
			t.Fatalf("round %d: discovery: %v", round, err)
		}
		h.wait(PhaseDiscovered)
		h.wait(PhaseProvisioning)
		provs, _ := h.agent.calls()
		if len(provs) != round {
			t.Fatalf("round %d: %d provision calls", round, len(provs))
		}
		call := provs[round-1]
		if call.force != (round > 1) {
			t.Errorf("round %d: force = %v", round, call.force)
		}
		// The agent takes it: validation, plan against the discovered
		// inventory, configdrive.
		d, plan := accepted(t, call.doc, qemuInventory(6))
		if d.KsMeta.ImageData["/"].URI != base+"/images/debian-12-amd64.img.gz" || d.KsMeta.ImageData["/"].Container != "gzip" {
			t.Errorf("image_data = %+v", d.KsMeta.ImageData)
		}
		phoneURL := d.KsMeta.PhoneHomeURL
		if secret, ok := strings.CutPrefix(phoneURL, base+"/phone-home/52:54:00:12:34:56/"); !ok || len(secret) != 64 || secret == h.nodeToken {
			t.Errorf("phone_home_url %q: want %s/phone-home/<mac>/<its own secret>", phoneURL, base)
		}
		if d.Hostname != "node-1" || plan.Disks[0].Device != "/dev/vda" {
			t.Errorf("hostname %q, disk %s", d.Hostname, plan.Disks[0].Device)
		}
		if doc, ok := h.ctrl.Document(testMAC); !ok || string(doc) != string(call.doc) {
			t.Error("Document() is not the posted document")
		}

		if err := rep.Progress(ctx, api.Status{ID: "job", State: api.StateRunning, Step: "images", BytesDone: 100 << 20, BytesTotal: 400 << 20}); err != nil {
			t.Fatal(err)
		}
		if ev := h.wait(PhaseProgress); ev.Detail != `step "images" (100/400 MiB)` {
			t.Errorf("progress detail %q", ev.Detail)
		}
		if st, ok := h.ctrl.Status(testMAC); !ok || st.Step != "images" {
			t.Errorf("Status() = %+v %v", st, ok)
		}
		if err := rep.Result(ctx, api.Status{ID: "job", State: api.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
		h.wait(PhaseProvisioned)
		h.wait(PhaseRebooting)
		if _, reboots := h.agent.calls(); reboots != round {
			t.Errorf("round %d: %d reboot calls", round, reboots)
		}
		_, local := h.get("/ipxe?mac=52:54:00:12:34:56")
		if !strings.Contains(local, "sanboot --no-describe --drive 0x80") {
			t.Errorf("after the flip iPXE got:\n%s", local)
		}
		h.wait(PhaseLocal)

		form := url.Values{"instance_id": {"iid-" + fmt.Sprint(round)}, "hostname": {"node-1"}, "fqdn": {"node-1"},
			"pub_key_ed25519": {"ssh-ed25519 AAAAhost root@node-1"}, "pub_key_rsa": {"N/A"}}
		resp, err := http.PostForm(phoneURL, form)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("phone-home: %v %v", resp, err)
		}
		resp.Body.Close()
		if ev := h.wait(PhaseOSUp); !strings.Contains(ev.Detail, `hostname "node-1"`) {
			t.Errorf("os-up detail %q", ev.Detail)
		}
		ph, ok := h.ctrl.PhoneHome(testMAC)
		if !ok || ph.InstanceID != fmt.Sprintf("iid-%d", round) || ph.PubKeys["ed25519"] != "ssh-ed25519 AAAAhost root@node-1" || ph.PubKeys["rsa"] != "" {
			t.Errorf("PhoneHome() = %+v, %v", ph, ok)
		}
	}

	var phases []string
	for _, ev := range h.ctrl.Events() {
		phases = append(phases, fmt.Sprintf("%d:%s", ev.Round, ev.Phase))
	}
	want := "1:pxe-bootstrap 1:discovered 1:provisioning 1:progress 1:provisioned 1:rebooting 1:pxe-local 1:os-up " +
		"2:reprovision 2:pxe-bootstrap 2:discovered 2:provisioning 2:progress 2:provisioned 2:rebooting 2:pxe-local 2:os-up"
	if got := strings.Join(phases, " "); got != want {
		t.Errorf("timeline:\n got %s\nwant %s", got, want)
	}
}

func TestFilesServed(t *testing.T) {
	h := newHarness(t, nil)
	for path, want := range map[string]string{"/boot/vmlinuz": "kernel bytes", "/boot/initramfs.cpio.gz": "initrd bytes"} {
		if code, body := h.get(path); code != 200 || body != want {
			t.Errorf("GET %s = %d %q", path, code, body)
		}
	}
	if code, body := h.get("/images/debian-12-amd64.yaml"); code != 200 || !strings.Contains(body, "raw_size: 1887436800") {
		t.Errorf("GET metadata = %d %q", code, body)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/images/debian-12-amd64.img.gz", nil)
	req.Header.Set("Range", "bytes=0-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(b) != "\x1f\x8b" {
		t.Errorf("ranged image GET = %d %q", resp.StatusCode, b)
	}
	if code, body := h.get("/images/debian-12-amd64.img.gz.manifest.json"); code != 200 || body != `{"frames":[]}` {
		t.Errorf("GET frame manifest = %d %q", code, body)
	}
	if code, _ := h.get("/images/other.img.gz"); code != 404 {
		t.Errorf("unknown image: %d", code)
	}
}

func TestBadToken(t *testing.T) {
	h := newHarness(t, nil)
	h.boot(testMAC)
	for _, path := range []string{"/agent/" + testMAC + "/discovery", "/agent/" + testMAC + "/progress", "/agent/" + testMAC + "/result"} {
		for auth, want := range map[string]int{"": 401, "Basic " + h.nodeToken: 401, "Bearer wrong": 403, "Bearer " + testToken: 403} {
			req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(`{}`))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("POST %s with %q: %d, want %d", path, auth, resp.StatusCode, want)
			}
		}
	}
	// The old callback paths without a node are gone.
	resp, err := http.Post(h.srv.URL+"/discovery", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 && resp.StatusCode != 405 {
		t.Errorf("POST /discovery: %d", resp.StatusCode)
	}
	rep := h.reporter("uuid-1")
	rep.Token = "wrong"
	if err := rep.Discovery(context.Background(), discovery("")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("agent discovery with a wrong token: %v", err)
	}
	for _, ev := range h.ctrl.Events() {
		if ev.Phase != PhaseBootstrap {
			t.Errorf("event recorded from a refused call: %+v", ev)
		}
	}
}

func TestUnknownNode(t *testing.T) {
	h := newHarness(t, nil)
	code, body := h.get("/ipxe?mac=52:54:00:ff:ff:ff")
	if code != 404 || !strings.Contains(body, "unknown node 52:54:00:ff:ff:ff") {
		t.Errorf("GET /ipxe unknown: %d %q", code, body)
	}
	if code, body := h.get("/ipxe?mac=nonsense"); code != 400 || !strings.Contains(body, "not a 6-byte MAC") {
		t.Errorf("GET /ipxe bad mac: %d %q", code, body)
	}
	// A discovery with the node's token whose inventory is another
	// machine's: refused, nothing composed.
	d := discovery("uuid-9")
	d.Inventory.NICs[0].MAC = "52:54:00:ff:ff:ff"
	err := h.reporter("uuid-9").Discovery(context.Background(), d)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "52:54:00:ff:ff:ff") {
		t.Errorf("discovery listing none of the node's MACs: %v", err)
	}
	if provs, _ := h.agent.calls(); len(provs) != 0 {
		t.Errorf("%d provision calls after a refused discovery", len(provs))
	}
	rep := h.reporter("uuid-9")
	rep.URL = h.srv.URL + "/agent/52:54:00:ff:ff:ff"
	if err := rep.Result(context.Background(), api.Status{State: api.StateSucceeded}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("result of an unknown node: %v", err)
	}
	resp, _ := http.PostForm(h.srv.URL+"/phone-home/52:54:00:ff:ff:ff/x", url.Values{"hostname": {"x"}})
	if resp.StatusCode != 404 {
		t.Errorf("phone-home of an unknown node: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if _, err := h.ctrl.Wait(context.Background(), "52:54:00:ff:ff:ff", PhaseOSUp); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Wait(unknown) = %v", err)
	}
}

func TestAgentFailureNoFlip(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.boot(testMAC)
	rep := h.reporter("uuid-1")
	if err := rep.Discovery(ctx, discovery("")); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseProvisioning)
	st := api.Status{ID: "job-1", State: api.StateFailed, Step: "images", Error: &api.JobError{Step: "images", Device: "/dev/mapper/os-root", Reason: api.ReasonImageUnreachable, Message: "image http://x/img.gz: unexpected EOF"}}
	if err := rep.Result(ctx, st); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := h.ctrl.Wait(wctx, testMAC, PhaseProvisioned)
	if err == nil || !strings.Contains(err.Error(), "step images device /dev/mapper/os-root (image_unreachable): image http://x/img.gz: unexpected EOF") {
		t.Fatalf("Wait(provisioned) = %v, want the agent's error", err)
	}
	if _, s := h.get("/ipxe?mac=52:54:00:12:34:56"); !strings.Contains(s, "kernel ") {
		t.Errorf("a failed node was flipped:\n%s", s)
	}
	h.ctrl.Close() // waits for any call to the agent in flight
	if _, reboots := h.agent.calls(); reboots != 0 {
		t.Errorf("%d reboot calls after a failure", reboots)
	}
	// The second bootstrap boot is a new round, provisioned again.
	if ev := h.wait(PhaseBootstrap); ev.Round != 2 {
		t.Errorf("second bootstrap boot in round %d", ev.Round)
	}
}

func TestAgentUnreachable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	h := newHarness(t, func(c *Config) { c.Nodes[0].AgentURL = deadURL })
	if err := h.reporter("uuid-1").Discovery(context.Background(), discovery("")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.ctrl.Wait(ctx, testMAC, PhaseProvisioning)
	if err == nil || !strings.Contains(err.Error(), "POST "+deadURL+"/v1/provision") {
		t.Fatalf("Wait(provisioning) = %v, want the agent URL named", err)
	}
}

func TestAgentRefusesProvision(t *testing.T) {
	h := newHarness(t, nil)
	h.agent.provisionStatus = http.StatusConflict
	h.agent.state = api.StateIdle // locked, say: no job of this round runs
	if err := h.reporter("uuid-1").Discovery(context.Background(), discovery("")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.ctrl.Wait(ctx, testMAC, PhaseProvisioning); err == nil || !strings.Contains(err.Error(), "409: a provisioning job is already running") {
		t.Fatalf("Wait(provisioning) = %v", err)
	}
}

// TestAgentBusyAdopted: a 409 from an agent that already runs a job (the
// document posted twice across a controller restart) is the round's job,
// not a failure.
func TestAgentBusyAdopted(t *testing.T) {
	h := newHarness(t, nil)
	h.agent.provisionStatus = http.StatusConflict
	if err := h.reporter("uuid-1").Discovery(context.Background(), discovery("")); err != nil {
		t.Fatal(err)
	}
	if ev := h.wait(PhaseProvisioning); !strings.Contains(ev.Detail, "already runs job") {
		t.Errorf("provisioning event: %s", ev.Detail)
	}
	if rec, _ := h.ctrl.node(testMAC); rec.has(PhaseFailed) {
		t.Errorf("the round failed: %v", rec.Phases)
	}
}

func TestAgentURLFromDiscovery(t *testing.T) {
	d := discovery("x")
	d.Addresses = []string{"fec0::1", "192.168.7.9", "10.0.2.15"}
	got, err := agentURLOf(Node{}, d, qemuNetwork().Prefix)
	if err != nil || got != "http://10.0.2.15:9999" {
		t.Errorf("agentURLOf = %q, %v", got, err)
	}
	d.Listen, d.Scheme = "10.1.1.1:8443", "https"
	if got, _ := agentURLOf(Node{}, d, qemuNetwork().Prefix); got != "https://10.1.1.1:8443" {
		t.Errorf("agentURLOf with a listen host = %q", got)
	}
	d.Listen, d.Addresses = ":9999", nil
	if _, err := agentURLOf(Node{}, d, qemuNetwork().Prefix); err == nil {
		t.Error("agentURLOf without addresses succeeded")
	}
}

func TestGuestURL(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.GuestURL = "http://10.0.2.2" })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u, err := h.ctrl.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port := u[strings.LastIndexByte(u, ':')+1:]
	resp, err := http.Get(u + "/ipxe?mac=52:54:00:12:34:56")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "imprint.controller=http://10.0.2.2:"+port+"/agent/52:54:00:12:34:56 ") {
		t.Errorf("bootstrap script with GuestURL:\n%s", b)
	}
}

// TestGuestURLIPv6: a controller reached at an IPv6 address hands out
// bracketed URLs (iPXE's and the agent's form) for the kernel, the node's
// initramfs and the callbacks; the per-node initramfs at that URL carries
// the node's token.
func TestGuestURLIPv6(t *testing.T) {
	for _, guest := range []string{"http://[fd00:6::1]:8080", "http://[fd00:6::1]:8080/"} {
		h := newHarness(t, func(c *Config) { c.GuestURL = guest })
		script := h.boot(testMAC)
		base := "http://[fd00:6::1]:8080"
		for _, w := range []string{"kernel --name vmlinuz " + base + "/boot/vmlinuz ", "imprint.controller=" + base + "/agent/52:54:00:12:34:56 ",
			"initrd --name initrd.img " + base + "/boot/initramfs/52-54-00-12-34-56\n"} {
			if !strings.Contains(script, w) {
				t.Errorf("guest URL %s: script lacks %q:\n%s", guest, w, script)
			}
		}
		if len(h.nodeToken) != 64 {
			t.Errorf("guest URL %s: token from the per-node initramfs %q", guest, h.nodeToken)
		}
		if _, err := pxeScriptLines(script); err != nil {
			t.Errorf("guest URL %s: %v", guest, err)
		}
	}
}

// pxeScriptLines checks an iPXE script's URLs parse as URLs.
func pxeScriptLines(script string) ([]string, error) {
	var urls []string
	for _, f := range strings.Fields(script) {
		if strings.HasPrefix(f, "http://") {
			u, err := url.Parse(f)
			if err != nil || u.Port() == "" {
				return nil, fmt.Errorf("URL %q: %v (port %q)", f, err, u.Port())
			}
			urls = append(urls, f)
		}
	}
	return urls, nil
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{
		Listen: "nonsense", GuestURL: "ftp://x", Kernel: "/nonexistent/vmlinuz",
		Images:    []Image{{MountPoint: "boot", Path: "/nonexistent.img", Format: "btrfs"}},
		Nodes:     []Node{{MAC: "zz", Hostname: "n"}, {MAC: "52:54:00:12:34:56", Hostname: "bad_host", AgentURL: "nope", ConfigdriveFormat: "nocloud-ext4"}},
		LocalBoot: "pxe",
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"listen:", "guest-url:", "token: required", "db: required", "kernel:", "initrd: required", "local-boot:",
		"images[0].mount:", "images[0].format:", "images[0].path:", "images: an image for / is required",
		"nodes[0].mac:", "nodes[1].hostname:", "nodes[1].agent_url:", "nodes[1].configdrive_format:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() error lacks %q:\n%v", want, err)
		}
	}
}

// TestAgentTLSPinned: an agent started with --tls is reached over https with
// its certificate pinned to the fingerprint it sent in discovery.
func TestAgentTLSPinned(t *testing.T) {
	for _, tt := range []struct {
		name string
		pin  func(real string) string
		want Phase
	}{
		{"pinned", func(real string) string { return real }, PhaseProvisioning},
		{"wrong fingerprint", func(string) string { return "00:11" }, PhaseFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ag := newFakeAgentTLS(t, true)
			h := newHarness(t, func(c *Config) { c.Nodes[0].AgentURL = ag.srv.URL })
			h.agent = ag
			d := discovery("")
			d.Scheme, d.TLSFingerprint = "https", tt.pin(api.Fingerprint(ag.srv.Certificate().Raw))
			if err := h.reporter("uuid-1").Discovery(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ev, err := h.ctrl.Wait(ctx, testMAC, PhaseProvisioning)
			switch tt.want {
			case PhaseProvisioning:
				if err != nil {
					t.Fatalf("Wait: %v", err)
				}
				if provs, _ := ag.calls(); len(provs) != 1 {
					t.Errorf("%d provision calls over TLS", len(provs))
				}
			case PhaseFailed:
				if err == nil || !strings.Contains(err.Error(), "does not match the discovery's \"00:11\"") {
					t.Fatalf("Wait = %v, %v; want a fingerprint mismatch", ev, err)
				}
			}
		})
	}
}
