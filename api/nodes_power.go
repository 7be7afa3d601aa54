package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{} // a stream: no overall timeout
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		re := &ResponseError{Method: "GET", URL: u, StatusCode: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		json.Unmarshal(b, &re.Body)
		return re
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data []byte
	var seq int64
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) == 0 {
				continue
			}
			var ev NodeEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				return fmt.Errorf("GET %s: bad event %q: %w", u, data, err)
			}
			data = data[:0]
			if err := fn(seq, ev); err != nil {
				if errors.Is(err, ErrStopEvents) {
					return nil
				}
				return err
			}
		case bytes.HasPrefix(line, []byte("id: ")):
			seq, _ = strconv.ParseInt(string(line[4:]), 10, 64)
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[6:]...)
		case bytes.Equal(line, []byte("event: end")):
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if follow {
		return fmt.Errorf("GET %s: stream ended", u)
	}
	return nil
}
