package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// NodeBMC is a node's BMC as the operator API shows it: never its
// password.
type NodeBMC struct {
	Driver   string `json:"driver"`
	Address  string `json:"address"`
	Username string `json:"username"`
	System   string `json:"system,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

// EnrollBMCRequest is PUT /v1/nodes/{mac}/bmc.
type EnrollBMCRequest struct {
	// URL is ipmi://HOST[:PORT][?cipher=N] or
	// redfish://HOST[:PORT][/SYSTEM-ID] (redfish+http:// for an emulator).
	URL      string `json:"url"`
	Username string `json:"username"`
	Password string `json:"password"`
	Insecure bool   `json:"insecure,omitempty"`
}

// PowerRequest is POST /v1/nodes/{mac}/power.
type PowerRequest struct {
	Action string `json:"action"` // on, off or cycle
	Reason string `json:"reason,omitempty"`
}

// PowerStatus answers GET and POST /v1/nodes/{mac}/power.
type PowerStatus struct {
	MAC   string  `json:"mac"`
	State string  `json:"state"` // on or off, as the BMC reports it
	BMC   NodeBMC `json:"bmc"`
}

// ReprovisionRequest is POST /v1/nodes/{mac}/reprovision.
type ReprovisionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// EnrollBMC is PUT /v1/nodes/{mac}/bmc; it answers the BMC's power state.
func (c *ControllerClient) EnrollBMC(ctx context.Context, mac string, req EnrollBMCRequest) (*PowerStatus, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out PowerStatus
	return &out, c.client().do(ctx, "PUT", "/v1/nodes/"+url.PathEscape(mac)+"/bmc", b, &out)
}

// Power is POST /v1/nodes/{mac}/power.
func (c *ControllerClient) Power(ctx context.Context, mac, action, reason string) (*PowerStatus, error) {
	b, err := json.Marshal(PowerRequest{Action: action, Reason: reason})
	if err != nil {
		return nil, err
	}
	var out PowerStatus
	return &out, c.client().do(ctx, "POST", "/v1/nodes/"+url.PathEscape(mac)+"/power", b, &out)
}

// PowerState is GET /v1/nodes/{mac}/power.
func (c *ControllerClient) PowerState(ctx context.Context, mac string) (*PowerStatus, error) {
	var out PowerStatus
	return &out, c.client().do(ctx, "GET", "/v1/nodes/"+url.PathEscape(mac)+"/power", nil, &out)
}

// ReprovisionFor is POST /v1/nodes/{mac}/reprovision with a reason.
func (c *ControllerClient) ReprovisionFor(ctx context.Context, mac, reason string) error {
	b, err := json.Marshal(ReprovisionRequest{Reason: reason})
	if err != nil {
		return err
	}
	return c.client().do(ctx, "POST", "/v1/nodes/"+url.PathEscape(mac)+"/reprovision", b, nil)
}

// NodeEvents follows GET /v1/nodes/{mac}/events (text/event-stream), the
// node's timeline from entry after (0: from the start), calling fn for
// each entry. Without follow it returns at the end of the timeline; with
// follow it waits for new entries until ctx ends or fn returns an error
// (ErrStopEvents: NodeEvents returns nil).
func (c *ControllerClient) NodeEvents(ctx context.Context, mac string, after int64, follow bool, fn func(seq int64, ev NodeEvent) error) error {
	u := strings.TrimRight(c.URL, "/") + "/v1/nodes/" + url.PathEscape(mac) + "/events"
	if follow {
		u += "?follow=1"
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{} // a stream: no overall timeout
	}
	err := streamSSE(ctx, hc, u, c.Token, after, func(m sseMessage) error {
		if m.event == "end" {
			return ErrStopEvents
		}
		var ev NodeEvent
		if err := json.Unmarshal(m.data, &ev); err != nil {
			return fmt.Errorf("GET %s: bad event %q: %w", u, m.data, err)
		}
		return fn(m.id, ev)
	})
	if errors.Is(err, errStreamEnded) {
		if follow {
			return fmt.Errorf("GET %s: stream ended", u)
		}
		return nil
	}
	return err
}
