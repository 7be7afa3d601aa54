package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/prepare"
)

// agentFakeNode stands in for the disks: it records the steps and fails images
// whose URI contains failURI.
type agentFakeNode struct {
	mu      sync.Mutex
	calls   []string
	failURI string
	failErr error // what the failing image write returns (default: a 404 text)
}

func (n *agentFakeNode) rec(s string) {
	n.mu.Lock()
	n.calls = append(n.calls, s)
	n.mu.Unlock()
}

func (n *agentFakeNode) Apply(_ context.Context, _ *prepare.Job) error {
	n.rec("disks")
	return nil
}

func (n *agentFakeNode) Write(_ context.Context, _ *prepare.Job, img prepare.Image, progress agent.ProgressFunc) (agent.ImageResult, error) {
	n.rec("image " + img.URI)
	progress(0, 2<<20)
	if n.failURI != "" && strings.Contains(img.URI, n.failURI) {
		if n.failErr != nil {
			return agent.ImageResult{}, n.failErr
		}
		return agent.ImageResult{}, errors.New("GET " + img.URI + ": 404 Not Found")
	}
	progress(2<<20, 2<<20)
	return agent.ImageResult{}, nil
}

func (n *agentFakeNode) Install(_ context.Context, _ *prepare.Job) error {
	n.rec("bootloader")
	return nil
}

var agentFakeInventory = api.InventoryFunc(func(context.Context) (*inventory.Inventory, error) {
	return &inventory.Inventory{Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 100 << 30}}}, nil
})

func (n *agentFakeNode) steps(agent.Config, *slog.Logger, *slog.Logger) agent.Steps {
	return agent.Steps{
		Inventory:  agentFakeInventory,
		Disks:      n,
		Images:     n,
		Bootloader: n,
	}
}
