package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/redfishemu"
	"github.com/imprint-dev/imprint/power"
)

const bmcSecret = "bmc-pa55word-XYZ"

var testBMC = power.BMC{Driver: power.IPMI, Address: "10.0.0.9:623", Username: "admin", Password: bmcSecret}

// fakeBMC records power calls; hang makes Set block forever, ignoring its
// context (a driver that does not honour it).
type fakeBMC struct {
	mu      sync.Mutex
	actions []power.Action
	state   power.State
	err     error
	hang    bool
}

func (f *fakeBMC) Set(_ context.Context, b power.BMC, a power.Action) error {
	f.mu.Lock()
	f.actions = append(f.actions, a)
	hang, err := f.hang, f.err
	if err == nil && a != power.Off {
		f.state = power.StateOn
	} else if err == nil {
		f.state = power.StateOff
	}
	f.mu.Unlock()
	if hang {
		select {}
	}
	return err
}

func (f *fakeBMC) State(context.Context, power.BMC) (power.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == "" {
		return power.StateOff, f.err
	}
	return f.state, f.err
}

func (f *fakeBMC) calls() []power.Action {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]power.Action(nil), f.actions...)
}

func eventsOf(t *testing.T, h *harness) []Event {
	t.Helper()
	evs, err := h.store.Events(context.Background(), testMAC)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func lastEvent(evs []Event, p Phase) (Event, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Phase == p {
			return evs[i], true
		}
	}
	return Event{}, false
}

// TestReprovisionPowerDecisions: with a BMC enrolled, a reprovision
// power-cycles through it (not Config.Power, not the agent) and records
// the reason and the BMC; without a BMC or Config.Power, the running
// agent reboots the node; with neither, the timeline says to reboot by
// hand.
func TestReprovisionPowerDecisions(t *testing.T) {
	ctx := context.Background()
	t.Run("bmc", func(t *testing.T) {
		bmc := &fakeBMC{}
		h := newHarness(t, func(c *Config) { c.BMCPower = bmc })
		if err := h.ctrl.EnrollBMC(ctx, testMAC, testBMC); err != nil {
			t.Fatal(err)
		}
		if err := h.ctrl.ReprovisionFor(ctx, testMAC, "disk replaced"); err != nil {
			t.Fatal(err)
		}
		if got := bmc.calls(); len(got) != 1 || got[0] != power.Cycle {
			t.Errorf("BMC calls %v, want one cycle", got)
		}
		if len(h.power.resets) != 0 {
			t.Errorf("Config.Power reset %v: the BMC comes first", h.power.resets)
		}
		evs := eventsOf(t, h)
		rp, _ := lastEvent(evs, PhaseReprovision)
		if !strings.Contains(rp.Detail, "disk replaced") || !strings.Contains(rp.Detail, "power cycle through ipmi BMC 10.0.0.9:623") {
			t.Errorf("reprovision event %q: want the reason and the BMC", rp.Detail)
		}
		if ev, ok := lastEvent(evs, PhasePower); !ok || ev.Round != rp.Round {
			t.Errorf("no power event in round %d: %+v", rp.Round, evs)
		}
		for _, ev := range evs {
			if strings.Contains(ev.Detail, bmcSecret) {
				t.Errorf("event %q holds the BMC password", ev.Detail)
			}
		}
	})
	t.Run("agent", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Power = nil })
		if err := h.reporter("uuid-1").Discovery(ctx, discovery("uuid-1")); err != nil {
			t.Fatal(err)
		}
		h.wait(PhaseProvisioning)
		if err := h.ctrl.ReprovisionFor(ctx, testMAC, "stuck"); err != nil {
			t.Fatal(err)
		}
		if _, reboots := h.agent.calls(); reboots != 1 {
			t.Errorf("agent reboots %d, want 1", reboots)
		}
		rp, _ := lastEvent(eventsOf(t, h), PhaseReprovision)
		if !strings.Contains(rp.Detail, "reboot through its agent") {
			t.Errorf("reprovision event %q", rp.Detail)
		}
	})
	t.Run("by hand", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Power = nil })
		if err := h.ctrl.ReprovisionFor(ctx, testMAC, "new image"); err != nil {
			t.Fatal(err)
		}
		rp, _ := lastEvent(eventsOf(t, h), PhaseReprovision)
		if !strings.Contains(rp.Detail, "reboot the node by hand") {
			t.Errorf("reprovision event %q", rp.Detail)
		}
	})
}

// TestPowerFailuresOnTheNode: a BMC error fails the reprovision's round
// with the node and the BMC named; an operator's power action that fails
// is recorded with its reason; a BMC that never answers (even ignoring
// its context) is given up after PowerTimeout; no BMC is ErrNoBMC.
func TestPowerFailuresOnTheNode(t *testing.T) {
	ctx := context.Background()
	bmc := &fakeBMC{err: errors.New("chassis control power down: completion code 0xd4")}
	h := newHarness(t, func(c *Config) { c.BMCPower = bmc; c.PowerTimeout = 300 * time.Millisecond })
	if err := h.ctrl.SetPower(ctx, testMAC, power.On, ""); !errors.Is(err, ErrNoBMC) {
		t.Errorf("power on without a BMC: %v, want ErrNoBMC", err)
	}
	if err := h.ctrl.EnrollBMC(ctx, testMAC, testBMC); err != nil {
		t.Fatal(err)
	}
	err := h.ctrl.ReprovisionFor(ctx, testMAC, "disk replaced")
	if err == nil || !strings.Contains(err.Error(), testMAC) || !strings.Contains(err.Error(), "0xd4") {
		t.Fatalf("reprovision with a failing BMC: %v", err)
	}
	if ev, ok := lastEvent(eventsOf(t, h), PhaseFailed); !ok || !strings.Contains(ev.Detail, "ipmi BMC 10.0.0.9:623") {
		t.Errorf("failure event %+v: want the BMC named", ev)
	}
	err = h.ctrl.SetPower(ctx, testMAC, power.Off, "maintenance")
	if ev, ok := lastEvent(eventsOf(t, h), PhasePowerFailed); err == nil || !ok || !strings.Contains(ev.Detail, "maintenance") || !strings.Contains(ev.Detail, "0xd4") {
		t.Errorf("power off failing: %v, event %+v: want the error and the reason", err, ev)
	}

	bmc.mu.Lock()
	bmc.err, bmc.hang = nil, true
	bmc.mu.Unlock()
	start := time.Now()
	err = h.ctrl.SetPower(ctx, testMAC, power.Cycle, "hung BMC")
	if took := time.Since(start); err == nil || took > 2*time.Second || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("a hanging BMC: %v after %v; want 'no answer within 300ms' at once", err, took)
	}
	if ev, ok := lastEvent(eventsOf(t, h), PhasePowerFailed); !ok || !strings.Contains(ev.Detail, "no answer") || !strings.Contains(ev.Detail, "hung BMC") {
		t.Errorf("event %+v", ev)
	}
}

// TestOperatorPowerAPI drives the operator API against the Redfish
// emulator (its machine off): enroll checks the BMC, show has it without
// the password, a BMC answering 500 gives 502 naming the node and is in
// the node's events stream; the password is in no answer and no log line.
func TestOperatorPowerAPI(t *testing.T) {
	e, err := redfishemu.Start(redfishemu.Config{Dir: t.TempDir(), Password: bmcSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	h := newHarness(t, func(c *Config) {
		c.PowerTimeout = 2 * time.Second
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	cl := &api.ControllerClient{URL: h.srv.URL, Token: testToken}
	ctx := context.Background()
	url := "redfish+http://" + strings.TrimPrefix(e.URL, "http://")
	var answers []string
	note := func(v any) { b, _ := json.Marshal(v); answers = append(answers, string(b)) }

	if _, err := cl.EnrollBMC(ctx, "node-1", api.EnrollBMCRequest{URL: url, Username: "admin", Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("enroll with a wrong password: %v, want the BMC's 401", err)
	}
	st, err := cl.EnrollBMC(ctx, "node-1", api.EnrollBMCRequest{URL: url, Username: "admin", Password: bmcSecret})
	if err != nil || st.State != "off" || st.BMC.Driver != "redfish" {
		t.Fatalf("enroll: %+v %v", st, err)
	}
	note(st)
	d, err := cl.Node(ctx, "node-1")
	if err != nil || d.BMC == nil || d.BMC.Address != strings.Replace(url, "redfish+http", "http", 1) {
		t.Fatalf("show: %+v %v", d, err)
	}
	note(d)
	ps, err := cl.PowerState(ctx, testMAC)
	if err != nil || ps.State != "off" {
		t.Errorf("power status: %+v %v", ps, err)
	}
	e.SetFault(redfishemu.Fault500)
	_, err = cl.Power(ctx, "node-1", "on", "rack move")
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadGateway || !strings.Contains(err.Error(), testMAC) || !strings.Contains(err.Error(), "500") {
		t.Errorf("power on against a 500: %v; want 502 naming the node and the 500", err)
	}
	if _, err := cl.Power(ctx, "node-1", "sideways", ""); err == nil || !strings.Contains(err.Error(), "want on, off or cycle") {
		t.Errorf("a bad action: %v", err)
	}
	var streamed []api.NodeEvent
	if err := cl.NodeEvents(ctx, "node-1", 0, false, func(_ int64, ev api.NodeEvent) error { streamed = append(streamed, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	note(streamed)
	var failed bool
	for _, ev := range streamed {
		failed = failed || (ev.Phase == string(PhasePowerFailed) && strings.Contains(ev.Detail, "rack move") && strings.Contains(ev.Detail, "500"))
	}
	if !failed {
		t.Errorf("events %+v: no power-failed event with the reason and the 500", streamed)
	}
	// Follow: a new event arrives on the open stream.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan api.NodeEvent, 1)
	go cl.NodeEvents(fctx, "node-1", int64(len(streamed)), true, func(_ int64, ev api.NodeEvent) error { got <- ev; return api.ErrStopEvents })
	time.Sleep(200 * time.Millisecond)
	e.SetFault(redfishemu.NoFault)
	h.ctrl.SetPower(ctx, testMAC, power.Off, "followed")
	select {
	case ev := <-got:
		if ev.Phase != string(PhasePower) || !strings.Contains(ev.Detail, "followed") {
			t.Errorf("followed event %+v", ev)
		}
	case <-fctx.Done():
		t.Error("the followed stream got no new event")
	}
	// The power metrics, scraped over HTTP: a status read, the refused on
	// (the BMC's 500) and the off.
	m := h.scrape("")
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"imprint_controller_power_actions_total", map[string]string{"driver": "redfish", "action": "status"}, 1},
		{"imprint_controller_power_actions_total", map[string]string{"driver": "redfish", "action": "on"}, 1},
		{"imprint_controller_power_actions_total", map[string]string{"driver": "redfish", "action": "off"}, 1},
		{"imprint_controller_power_failures_total", map[string]string{"driver": "redfish", "action": "on", "reason": PowerReasonOther}, 1},
	} {
		if got := m.Value(c.name, c.labels); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, s := range append(answers, logs.String()) {
		if strings.Contains(s, bmcSecret) {
			t.Errorf("the BMC password leaked: %s", s)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
