package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The controller's operator API (/v1/nodes on `imprint controller`,
// bearer: the operator token), which `imprint nodes` reads. A node's
// credentials never appear in it.

// NodeSummary is one node as the controller knows it.
type NodeSummary struct {
	MAC      string `json:"mac"`
	Hostname string `json:"hostname"`
	Round    int    `json:"round"`
	// Phase is the last event of the current round ("" before any).
	Phase     string    `json:"phase"`
	PhaseTime time.Time `json:"phase_time,omitzero"`
	// LocalBoot: iPXE answers local boot (provisioned; only a reprovision
	// request brings the bootstrap back).
	LocalBoot bool `json:"local_boot"`
	// ReportedID is what the node's agent called itself (DMI UUID):
	// recorded, never used as identity.
	ReportedID     string `json:"reported_id,omitempty"`
	AgentURL       string `json:"agent_url,omitempty"`
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	// LastStatus is the agent's last job status (the result's error, with
	// its step, device and reason, when it failed).
	LastStatus   *Status   `json:"last_status,omitempty"`
	LeaseOwner   string    `json:"lease_owner,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	// BMC is how the controller reaches the node's BMC (no password).
	BMC *NodeBMC `json:"bmc,omitempty"`
}

// NodeEvent is one entry of a node's timeline.
type NodeEvent struct {
	Time   time.Time `json:"time"`
	Round  int       `json:"round"`
	Phase  string    `json:"phase"`
	Detail string    `json:"detail"`
}

// NodeDetail is GET /v1/nodes/{mac}: the summary, the timeline and what
// the provisioned OS phoned home.
type NodeDetail struct {
	NodeSummary
	Events    []NodeEvent `json:"events"`
	PhoneHome *NodePhone  `json:"phone_home,omitempty"`
}

// NodePhone is the last phone-home of the node's OS.
type NodePhone struct {
	Time       time.Time         `json:"time"`
	InstanceID string            `json:"instance_id"`
	Hostname   string            `json:"hostname"`
	FQDN       string            `json:"fqdn"`
	PubKeys    map[string]string `json:"pub_keys,omitempty"`
}

// ControllerClient is a client of the controller's operator API.
type ControllerClient struct {
	URL   string // the controller's base URL
	Token string // the operator token (imprint controller --token)
	HTTP  *http.Client
}

func (c *ControllerClient) client() *Client { return &Client{URL: c.URL, Token: c.Token, HTTP: c.HTTP} }

// Nodes is GET /v1/nodes.
func (c *ControllerClient) Nodes(ctx context.Context) ([]NodeSummary, error) {
	var out []NodeSummary
	return out, c.client().do(ctx, "GET", "/v1/nodes", nil, &out)
}

// Node is GET /v1/nodes/{mac}.
func (c *ControllerClient) Node(ctx context.Context, mac string) (*NodeDetail, error) {
	var out NodeDetail
	if err := c.client().do(ctx, "GET", "/v1/nodes/"+url.PathEscape(mac), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Reprovision is POST /v1/nodes/{mac}/reprovision.
func (c *ControllerClient) Reprovision(ctx context.Context, mac string) error {
	return c.client().do(ctx, "POST", "/v1/nodes/"+url.PathEscape(mac)+"/reprovision", []byte("{}"), nil)
}
