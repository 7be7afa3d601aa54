package controller

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/provision"
)

const macB = "52:54:00:12:34:57"

// twoNodes is a harness with node-1 (testMAC) and node-2 (macB), each with
// its own fake agent.
type twoNodes struct {
	*harness
	agentB *fakeAgent
}

func newTwoNodes(t *testing.T) *twoNodes {
	agB := newFakeAgent(t)
	h := newHarness(t, func(c *Config) {
		c.Nodes = append(c.Nodes, Node{MAC: macB, Hostname: "node-2", SSHKeys: []string{testKey}, AgentURL: agB.srv.URL})
	})
	return &twoNodes{harness: h, agentB: agB}
}

// node boots mac and returns its callback URL, token and a reporter.
func (h *twoNodes) node(mac string) (nodeURL, token string, rep *agent.CallbackClient) {
	h.t.Helper()
	code, script := h.get("/ipxe?mac=" + mac)
	if code != 200 {
		h.t.Fatalf("ipxe %s: %d", mac, code)
	}
	nodeURL, token = cmdlineValue(script, "imprint.controller="), h.initrdToken(script)
	ag := h.agent
	if mac == macB {
		ag = h.agentB
	}
	ag.mu.Lock()
	ag.token = token
	ag.mu.Unlock()
	rep = &agent.CallbackClient{URL: nodeURL, Token: token, Logger: testLogger(h.t),
		Sleep: func(context.Context, time.Duration) error { return context.Canceled }}
	return nodeURL, token, rep
}

func discoveryOf(mac, nodeID string) api.Discovery {
	d := discovery(nodeID)
	d.Inventory.NICs[0].MAC = mac
	return d
}

// TestBootScriptCarriesOnlyItsNode: a node's boot script holds its own
// token, not another node's, not the operator's; each script makes a new
// token and the old one stops working.
func TestBootScriptCarriesOnlyItsNode(t *testing.T) {
	h := newTwoNodes(t)
	_, tokA, _ := h.node(testMAC)
	_, scriptB := h.get("/ipxe?mac=" + macB)
	tokB := h.initrdToken(scriptB)
	_, scriptA := h.get("/ipxe?mac=" + testMAC) // a second fetch: rotated
	tokA2 := h.initrdToken(scriptA)
	if tokA == "" || tokB == "" || tokA2 == "" || tokA == tokB || tokA2 == tokA {
		t.Fatalf("tokens A %q, B %q, A again %q: want distinct", tokA, tokB, tokA2)
	}
	for name, s := range map[string]string{"A": scriptA, "B": scriptB} {
		if strings.Contains(s, testToken) {
			t.Errorf("script %s carries the operator token:\n%s", name, s)
		}
	}
	if strings.Contains(scriptA, tokB) || strings.Contains(scriptB, tokA2) || strings.Contains(scriptA, tokA) {
		t.Errorf("a script carries another node's or an old token:\nA: %s\nB: %s", scriptA, scriptB)
	}
	// The rotated-out token is refused.
	rep := &agent.CallbackClient{URL: h.srv.URL + "/agent/" + testMAC, Token: tokA, Logger: testLogger(t),
		Sleep: func(context.Context, time.Duration) error { return context.Canceled }}
	if err := rep.Discovery(context.Background(), discoveryOf(testMAC, "")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("discovery with the last script's token: %v, want 403", err)
	}
}

// TestCrossNodeCredentials: node A's token posting for node B is refused
// (403) on every callback, and B's state does not move.
func TestCrossNodeCredentials(t *testing.T) {
	h := newTwoNodes(t)
	_, tokA, _ := h.node(testMAC)
	urlB, _, repB := h.node(macB)
	ctx := context.Background()
	forged := &agent.CallbackClient{URL: urlB, Token: tokA, Logger: testLogger(t),
		Sleep: func(context.Context, time.Duration) error { return context.Canceled }}
	if err := forged.Discovery(ctx, discoveryOf(macB, "")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("discovery for B with A's token: %v", err)
	}
	if err := forged.Progress(ctx, api.Status{State: api.StateRunning, Step: "images"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("progress for B with A's token: %v", err)
	}
	if err := forged.Result(ctx, api.Status{State: api.StateSucceeded}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("result for B with A's token: %v", err)
	}
	// The operator token is no node's credential either.
	forged.Token = testToken
	if err := forged.Result(ctx, api.Status{State: api.StateSucceeded}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("result for B with the operator token: %v", err)
	}
	if rec, _ := h.ctrl.node(macB); rec.Local || rec.has(PhaseDiscovered) || rec.has(PhaseProvisioned) {
		t.Errorf("B moved on forged callbacks: %+v", rec.Phases)
	}
	if code, s := h.get("/ipxe?mac=" + macB); code != 200 || !strings.Contains(s, "kernel ") {
		t.Errorf("B flipped by a forged result:\n%s", s)
	}
	_ = repB
}

// TestSharedDMIUUID: two boards reporting the same (placeholder) DMI UUID
// each get their own result: A's success flips A only, B's failure is B's.
func TestSharedDMIUUID(t *testing.T) {
	h := newTwoNodes(t)
	ctx := context.Background()
	const uuid = "03000200-0400-0500-0006-000700080009" // a classic placeholder
	_, _, repA := h.node(testMAC)
	_, _, repB := h.node(macB)
	if err := repA.Discovery(ctx, discoveryOf(testMAC, uuid)); err != nil {
		t.Fatal(err)
	}
	if err := repB.Discovery(ctx, discoveryOf(macB, uuid)); err != nil {
		t.Fatal(err)
	}
	wait := func(mac string, p Phase) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := h.ctrl.Wait(ctx, mac, p)
		return err
	}
	if err := wait(testMAC, PhaseProvisioning); err != nil {
		t.Fatal(err)
	}
	if err := wait(macB, PhaseProvisioning); err != nil {
		t.Fatal(err)
	}
	if err := repA.Result(ctx, api.Status{ID: "job-a", State: api.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if err := repB.Result(ctx, api.Status{ID: "job-b", State: api.StateFailed, Error: &api.JobError{Step: "disks", Message: "no disk"}}); err != nil {
		t.Fatal(err)
	}
	if err := wait(testMAC, PhaseRebooting); err != nil {
		t.Errorf("A: %v", err)
	}
	if err := wait(macB, PhaseProvisioned); err == nil || !strings.Contains(err.Error(), "no disk") {
		t.Errorf("B: %v, want B's own failure", err)
	}
	stA, _ := h.ctrl.Status(testMAC)
	stB, _ := h.ctrl.Status(macB)
	if stA.ID != "job-a" || stB.ID != "job-b" {
		t.Errorf("statuses A %q B %q", stA.ID, stB.ID)
	}
	h.ctrl.Close()
	if _, n := h.agent.calls(); n != 1 {
		t.Errorf("A's agent got %d reboots, want 1", n)
	}
	if _, n := h.agentB.calls(); n != 0 {
		t.Errorf("B's agent got %d reboots, want 0 (its round failed)", n)
	}
	if _, s := h.get("/ipxe?mac=" + macB); !strings.Contains(s, "kernel ") {
		t.Errorf("B flipped by A's success:\n%s", s)
	}
}

// TestPhoneHomeNeedsSecret: a phone-home without the node's secret of the
// round, or with another node's, is refused and records nothing.
func TestPhoneHomeNeedsSecret(t *testing.T) {
	h := newTwoNodes(t)
	ctx := context.Background()
	for _, mac := range []string{testMAC, macB} {
		_, _, rep := h.node(mac)
		if err := rep.Discovery(ctx, discoveryOf(mac, "")); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := h.ctrl.Wait(wctx, mac, PhaseProvisioning); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	docB, _ := h.ctrl.Document(macB)
	d, err := provision.Parse(docB)
	if err != nil {
		t.Fatal(err)
	}
	secretB := d.KsMeta.PhoneHomeURL[strings.LastIndexByte(d.KsMeta.PhoneHomeURL, '/')+1:]
	form := url.Values{"hostname": {"evil"}, "instance_id": {"x"}}
	for path, want := range map[string]int{
		"/phone-home/" + testMAC:                 403,
		"/phone-home/" + testMAC + "/guess":      403,
		"/phone-home/" + testMAC + "/" + secretB: 403,
	} {
		resp, err := http.PostForm(h.srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if _, ok := h.ctrl.PhoneHome(testMAC); ok {
		t.Error("a forged phone-home was recorded")
	}
	resp, err := http.PostForm(d.KsMeta.PhoneHomeURL, url.Values{"hostname": {"node-2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ph, ok := h.ctrl.PhoneHome(macB); resp.StatusCode != 200 || !ok || ph.Hostname != "node-2" {
		t.Errorf("B's own phone-home: %d %+v", resp.StatusCode, ph)
	}
}

// TestHostHeaderIgnored: a request's Host header changes no URL handed to
// a node: boot files, callbacks and images all come from the
// configuration.
func TestHostHeaderIgnored(t *testing.T) {
	h := newHarness(t, nil)
	base := h.srv.URL
	req, _ := http.NewRequest("GET", base+"/ipxe?mac="+testMAC, nil)
	req.Host = "evil.example:666"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b := string(raw)
	if strings.Contains(b, "evil") || !strings.Contains(b, "imprint.controller="+base+"/agent/") {
		t.Errorf("script for a request with Host evil.example:\n%s", b)
	}
	h.nodeURL, h.nodeToken = cmdlineValue(b, "imprint.controller="), h.initrdToken(b)
	h.agent.mu.Lock()
	h.agent.token = h.nodeToken
	h.agent.mu.Unlock()
	// The discovery comes through a client that sets Host too.
	rep := h.reporter("")
	rep.Client = &http.Client{Transport: hostRewriter{"evil.example:666"}}
	if err := rep.Discovery(context.Background(), discovery("")); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseProvisioning)
	doc, _ := h.ctrl.Document(testMAC)
	if strings.Contains(string(doc), "evil") {
		t.Errorf("the Host header reached provision.json:\n%s", doc)
	}
	if !strings.Contains(string(doc), base+"/images/debian-12-amd64.img.gz") {
		t.Errorf("image URL not from the configuration:\n%s", doc)
	}
}

type hostRewriter struct{ host string }

func (h hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = h.host
	return http.DefaultTransport.RoundTrip(r)
}

// TestNodeInitrdWindow: the per-node initramfs (it carries the node's
// token) is served only between the node's bootstrap script and its
// discovery, only for its MAC, and holds the token of the current round;
// the shared initramfs carries no token at all.
func TestNodeInitrdWindow(t *testing.T) {
	h := newTwoNodes(t)
	path := "/boot/initramfs/52-54-00-12-34-56"
	if code, body := h.get(path); code != http.StatusConflict || !strings.Contains(body, "no bootstrap boot under way") {
		t.Errorf("before any boot script: GET %s = %d %q, want 409", path, code, body)
	}
	if code, body := h.get("/boot/initramfs/52-54-00-ff-ff-ff"); code != http.StatusNotFound || !strings.Contains(body, "no node with MAC 52:54:00:ff:ff:ff") {
		t.Errorf("unknown MAC: %d %q, want 404", code, body)
	}
	_, tokA, repA := h.node(testMAC)
	_, tokB, _ := h.node(macB)
	if len(tokA) != 64 || tokA == tokB {
		t.Fatalf("tokens A %q, B %q: want distinct 32-byte secrets", tokA, tokB)
	}
	_, a1 := h.get(path)
	_, a2 := h.get(path)
	_, b := h.get("/boot/initramfs/52:54:00:12:34:57")
	if a1 != a2 || a1 == b {
		t.Errorf("node A's initramfs twice equal: %v; equal to B's: %v", a1 == a2, a1 == b)
	}
	if _, shared := h.get("/boot/initramfs.cpio.gz"); strings.Contains(shared, tokA) || strings.Contains(shared, tokB) {
		t.Error("the shared initramfs carries a node token")
	}
	if err := repA.Discovery(context.Background(), discoveryOf(testMAC, "")); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseDiscovered)
	if code, body := h.get(path); code != http.StatusConflict {
		t.Errorf("after the discovery: GET %s = %d %q, want 409", path, code, body)
	}
	if code, _ := h.get("/boot/initramfs/52:54:00:12:34:57"); code != 200 {
		t.Errorf("node B (not discovered yet): %d, want 200", code)
	}
}
