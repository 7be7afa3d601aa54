package vmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
)

// Client talks to the guest's agent.
type Client struct {
	BaseURL string
	Token   string // sent as Authorization: Bearer when set
	HTTP    *http.Client
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method, URL string
	Code        int
	Body        string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Code, e.Body)
}

// Raw sends a request with body (JSON-encoded unless []byte or nil) and
// returns the response body; a non-2xx status is a *StatusError.
func (c *Client) Raw(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	url := c.BaseURL + path
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return out, &StatusError{Method: method, URL: url, Code: resp.StatusCode, Body: string(bytes.TrimSpace(out))}
	}
	return out, nil
}

// JSON sends a request and decodes the JSON answer into out (unless nil).
func (c *Client) JSON(ctx context.Context, method, path string, body, out any) error {
	b, err := c.Raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode %T: %w (body %.200q)", method, c.BaseURL+path, out, err, b)
	}
	return nil
}

// Inventory is GET /v1/inventory.
func (c *Client) Inventory(ctx context.Context) (*inventory.Inventory, error) {
	var inv inventory.Inventory
	if err := c.JSON(ctx, "GET", "/v1/inventory", nil, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Provision posts a provision document (provision.json) to /v1/provision.
func (c *Client) Provision(ctx context.Context, doc []byte, force bool) (api.StartResponse, error) {
	var sr api.StartResponse
	path := "/v1/provision"
	if force {
		path += "?force=true"
	}
	err := c.JSON(ctx, "POST", path, doc, &sr)
	return sr, err
}

// WaitJob polls GET /v1/provision until the job succeeded or failed, at
// most timeout; it returns the last status either way.
func (c *Client) WaitJob(ctx context.Context, timeout time.Duration) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st api.Status
	for {
		err := c.JSON(ctx, "GET", "/v1/provision", nil, &st)
		if err == nil && (st.State == api.StateSucceeded || st.State == api.StateFailed) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("vmtest: job %s still %q after %v (last error: %v)", st.ID, st.State, timeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
