package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
)

// recordingSteps are the agent's disk-touching steps replaced: the disks
// step records the plan, the images step really downloads each image from
// its URI (the controller's /images/), the configdrive step renders the
// content.
type recordingSteps struct {
	mu     sync.Mutex
	plans  []*partition.Plan
	images map[string]int64 // URI → bytes fetched
}

func (s *recordingSteps) Apply(_ context.Context, job *prepare.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans = append(s.plans, job.Plan)
	return nil
}

func (s *recordingSteps) Write(ctx context.Context, _ *prepare.Job, img prepare.Image, progress agent.ProgressFunc) (agent.ImageResult, error) {
	n, err := s.fetch(ctx, img.URI)
	if err != nil {
		return agent.ImageResult{}, err
	}
	progress(n, n)
	s.mu.Lock()
	s.images[img.URI] += n
	s.mu.Unlock()
	return agent.ImageResult{}, nil
}

func (s *recordingSteps) fetch(ctx context.Context, uri string) (int64, error) {
	img := struct{ URI string }{uri}
	req, _ := http.NewRequestWithContext(ctx, "GET", img.URI, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET %s: %s", img.URI, resp.Status)
	}
	return n, nil
}

type configdriveStep struct{}

// Write checks the prepared content is there (prepare rendered it).
func (configdriveStep) Write(_ context.Context, job *prepare.Job) error {
	if job.Configdrive == nil || job.Configdrive.Content == nil || len(job.Configdrive.Content.UserData) == 0 {
		return fmt.Errorf("no configdrive content prepared")
	}
	return nil
}

// TestRealAgent runs the agent's own API, job runner and callbacks (with
// the disk steps recorded) against the controller: discovery from the
// agent's Serve, the posted document through the agent's parser and
// planner, the image fetched over HTTP from the controller, the result,
// then the controller's reboot call reaching the agent's power action.
func TestRealAgent(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Nodes[0].AgentURL = "" // built from the discovery: 127.0.0.1 and the listen port
		c.Nodes[0].IP = "10.0.2.15"
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger(t).With("component", "agent")
	inv := qemuInventory(6)
	invSrc := api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) { return inv, nil })
	inv.DMI.UUID = "4c4c4544-0042-3510-8056-b4c04f4e3532"
	// As `imprint agent` wires it without --node-id: the discovery carries
	// the DMI UUID, the progress and result callbacks an empty node_id.
	h.boot(testMAC)
	rep := &agent.CallbackClient{URL: h.nodeURL, Token: h.nodeToken, Logger: log, Backoff: 10 * time.Millisecond}
	steps := &recordingSteps{images: map[string]int64{}}
	jobs, err := agent.NewJobs(ctx, agent.Steps{
		Inventory:   invSrc,
		Disks:       steps,
		Images:      steps,
		Configdrive: configdriveStep{},
	}, agent.JobsOptions{Logger: log, AllowDestructive: true, Reporter: rep, Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	powered := make(chan string, 1)
	power := &agent.Power{Enabled: true, Delay: time.Millisecond, Logger: log,
		Busy: func() bool { s := jobs.Status().State; return s == api.StateRunning || s == api.StatePending },
		Do:   func(action string) error { powered <- action; return nil }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ag := agent.New(agent.Config{Listen: ln.Addr().String(), Token: h.nodeToken, Controller: h.nodeURL},
		agent.Deps{Logger: log, Inventory: invSrc, Jobs: jobs, Power: power, Reporter: rep, Version: "test"})
	served := make(chan error, 1)
	go func() { served <- ag.Serve(ctx, ln) }()

	h.wait(PhaseDiscovered)
	h.wait(PhaseProvisioning)
	ev := h.wait(PhaseProvisioned)
	t.Logf("provisioned: %s", ev.Detail)
	h.wait(PhaseRebooting)
	select {
	case a := <-powered:
		if a != agent.ActionReboot {
			t.Errorf("power action %q", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent never acted on the reboot")
	}
	if _, s := h.get("/ipxe?mac=" + testMAC); !strings.Contains(s, "sanboot") {
		t.Errorf("not flipped:\n%s", s)
	}
	steps.mu.Lock()
	if len(steps.plans) != 1 || steps.plans[0].Disks[0].Device != "/dev/vda" {
		t.Errorf("disk plans = %+v", steps.plans)
	}
	if n := steps.images[h.srv.URL+"/images/debian-12-amd64.img.gz"]; n == 0 {
		t.Errorf("image not fetched from the controller: %v", steps.images)
	}
	steps.mu.Unlock()
	if st, ok := h.ctrl.Status(testMAC); !ok || st.State != api.StateSucceeded {
		t.Errorf("last status %+v", st)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("agent Serve: %v", err)
	}
}
