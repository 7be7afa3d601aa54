package controller

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/pgtest"
)

// restart is a crash and a restart: the controller stops without releasing
// anything, its store is closed as a dead process's would be, and a new
// controller opens the same database and listens on the same address
// (where the nodes' boot scripts point).
func (h *harness) restart(dsn string) {
	h.t.Helper()
	addr := h.srv.Listener.Addr().String()
	h.ctrl.stop()
	h.srv.Close()
	h.store.Close()
	store, err := OpenStore(context.Background(), dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { store.Close() })
	cfg := h.cfg
	cfg.Store, cfg.ID = store, ""
	ctrl, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		h.t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: ctrl.Handler()}}
	srv.Start()
	h.t.Cleanup(func() { srv.Close(); ctrl.Close() })
	h.ctrl, h.srv, h.store = ctrl, srv, store
}

// TestRestartResumes: a controller killed while its node provisions and
// restarted on the same SQLite database accepts the running job's result
// (with the node's token of the round), flips the node and reboots it
// through its agent; the provisioned node network-booting again gets local
// boot, across another restart too, until an operator asks for a
// reprovision.
func TestRestartResumes(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "controller.db")
	store, err := OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Store = store })
	ctx := context.Background()
	h.boot(testMAC)
	rep := h.reporter("uuid-1")
	if err := rep.Discovery(ctx, discovery("")); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseProvisioning)
	if err := rep.Progress(ctx, api.Status{State: api.StateRunning, Step: "images"}); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseProgress)

	h.restart(dsn)
	if st, ok := h.ctrl.Status(testMAC); !ok || st.Step != "images" {
		t.Errorf("status after the restart: %+v %v", st, ok)
	}
	if err := rep.Result(ctx, api.Status{ID: "job-1", State: api.StateSucceeded}); err != nil {
		t.Fatalf("result to the restarted controller: %v", err)
	}
	h.wait(PhaseProvisioned)
	h.wait(PhaseRebooting) // the fake agent checked the node's token
	if _, n := h.agent.calls(); n != 1 {
		t.Errorf("%d reboot calls", n)
	}
	if _, s := h.get("/ipxe?mac=" + testMAC); !strings.Contains(s, "sanboot") {
		t.Errorf("provisioned node got, after a restart:\n%s", s)
	}

	h.restart(dsn)
	for i := 0; i < 2; i++ {
		if _, s := h.get("/ipxe?mac=" + testMAC); !strings.Contains(s, "sanboot") || strings.Contains(s, "kernel ") {
			t.Errorf("boot %d after the second restart:\n%s", i+1, s)
		}
	}
	if provs, _ := h.agent.calls(); len(provs) != 1 {
		t.Errorf("%d provision calls: a provisioned node was provisioned again", len(provs))
	}
	var phases []string
	for _, ev := range h.ctrl.Events() {
		phases = append(phases, string(ev.Phase))
	}
	if got := strings.Join(phases, " "); got != "pxe-bootstrap discovered provisioning progress provisioned rebooting pxe-local pxe-local pxe-local" {
		t.Errorf("timeline across restarts: %s", got)
	}

	// The operator asks: the bootstrap again, in round 2.
	cl := &api.ControllerClient{URL: h.srv.URL, Token: testToken}
	if err := cl.Reprovision(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	if _, s := h.get("/ipxe?mac=" + testMAC); !strings.Contains(s, "kernel ") {
		t.Errorf("after the operator's reprovision:\n%s", s)
	}
	if n, err := cl.Node(ctx, testMAC); err != nil || n.Round != 2 || n.Phase != string(PhaseBootstrap) {
		t.Errorf("node after reprovision: %+v %v", n, err)
	}
}

// TestLeaseTakeover: two controllers on one PostgreSQL database. A drives
// the node and holds its lease; B refuses to touch it (503, the agent
// retries) while A lives; A is killed; once the lease expired B takes the
// node over from the stored state: it accepts the result, flips the node
// and reboots it with the node's token.
func TestLeaseTakeover(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	ctx := context.Background()
	storeA := openTestStore(t, dsn)
	h := newHarness(t, func(c *Config) { c.Store, c.ID, c.LeaseTTL = storeA, "ctl-a", 2*time.Second })
	h.ctrl.startRenewal() // Start's renewal, without Start's listener (the harness serves)

	// B: same configuration, its own address, the same database.
	storeB := openTestStore(t, dsn)
	cfgB := h.cfg
	cfgB.Store, cfgB.ID = storeB, "ctl-b"
	lnB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfgB.GuestURL = "http://" + lnB.Addr().String()
	ctrlB, err := New(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	srvB := &httptest.Server{Listener: lnB, Config: &http.Server{Handler: ctrlB.Handler()}}
	srvB.Start()
	defer func() { srvB.Close(); ctrlB.Close() }()
	ctrlB.startRenewal()

	h.boot(testMAC)
	rep := h.reporter("uuid-1")
	if err := rep.Discovery(ctx, discovery("")); err != nil {
		t.Fatal(err)
	}
	h.wait(PhaseProvisioning)
	if n, _ := storeA.Node(ctx, testMAC); n.LeaseOwner != "ctl-a" {
		t.Fatalf("lease owner %q, want ctl-a", n.LeaseOwner)
	}

	// The node's callbacks reach B (a moved address): refused while A
	// lives, even after the TTL (A renews).
	time.Sleep(3 * time.Second)
	repB := h.reporter("uuid-1")
	repB.URL = srvB.URL + "/agent/" + testMAC
	if err := repB.Progress(ctx, api.Status{State: api.StateRunning, Step: "images"}); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "ctl-a") {
		t.Fatalf("B took a progress of A's node: %v", err)
	}

	killed := time.Now()
	h.ctrl.stop() // SIGKILL: no release

	// The agent retries its result until B, after the lease expired,
	// accepts it.
	repB.Sleep = nil
	repB.Backoff, repB.MaxBackoff = 200*time.Millisecond, 500*time.Millisecond
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := repB.Result(rctx, api.Status{ID: "job-1", State: api.StateSucceeded}); err != nil {
		t.Fatalf("result through B: %v", err)
	}
	took := time.Since(killed)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := ctrlB.Wait(wctx, testMAC, PhaseRebooting); err != nil {
		t.Fatal(err)
	}
	t.Logf("B took the node over %v after A died (lease TTL 2s)", took.Round(10*time.Millisecond))
	if took < time.Second {
		t.Errorf("B took the node over %v after A died, before A's lease could expire", took)
	}
	if _, n := h.agent.calls(); n != 1 {
		t.Errorf("%d reboot calls", n)
	}
	if _, s := httpGet(t, srvB.URL+"/ipxe?mac="+testMAC); !strings.Contains(s, "sanboot") {
		t.Errorf("B's iPXE answer for the flipped node:\n%s", s)
	}
	evs, _ := storeB.Events(ctx, testMAC)
	var phases []string
	for _, ev := range evs {
		phases = append(phases, string(ev.Phase))
	}
	if got := strings.Join(phases, " "); got != "pxe-bootstrap discovered provisioning provisioned rebooting pxe-local" {
		t.Errorf("shared timeline: %s", got)
	}
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestResumeHalfDone: a controller that died after recording a discovery
// but before posting the document, or after recording a success but before
// asking for the reboot, left that in the database; the next one, once
// started, finishes it.
func TestResumeHalfDone(t *testing.T) {
	for _, tt := range []struct {
		name   string
		phases []Phase
		want   Phase
	}{
		{"discovered, document not posted", []Phase{PhaseBootstrap, PhaseDiscovered}, PhaseProvisioning},
		{"succeeded, reboot not asked", []Phase{PhaseBootstrap, PhaseDiscovered, PhaseProvisioning, PhaseProvisioned}, PhaseRebooting},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			rec, err := h.store.Node(ctx, testMAC)
			if err != nil {
				t.Fatal(err)
			}
			d := discovery("uuid-1")
			rec.Phases, rec.Token, rec.PhoneSecret, rec.AgentURL = tt.phases, "node-token-1", "phone-1", h.agent.srv.URL
			rec.Discovery, _ = json.Marshal(d)
			rec.Local = tt.want == PhaseRebooting
			if err := h.store.Save(ctx, rec); err != nil {
				t.Fatal(err)
			}
			h.agent.mu.Lock()
			h.agent.token = "node-token-1"
			h.agent.mu.Unlock()
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if _, err := h.ctrl.Start(sctx); err != nil {
				t.Fatal(err)
			}
			ev := h.wait(tt.want)
			t.Logf("%s: %s", ev.Phase, ev.Detail)
			provs, reboots := h.agent.calls()
			switch tt.want {
			case PhaseProvisioning:
				if len(provs) != 1 || provs[0].force {
					t.Errorf("provision calls %d (force %v), want 1 unforced", len(provs), len(provs) > 0 && provs[0].force)
				}
			case PhaseRebooting:
				if reboots != 1 || len(provs) != 0 {
					t.Errorf("%d reboots, %d provisions; want 1, 0", reboots, len(provs))
				}
			}
		})
	}
}
