package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/inventory"
)

// Reporter tells the controller about the node and its job.
type Reporter interface {
	// Discovery announces the node; retried until acknowledged.
	Discovery(ctx context.Context, d api.Discovery) error
	// Progress is a heartbeat: one attempt, failures are only logged.
	Progress(ctx context.Context, st api.Status) error
	// Result is the job's outcome; retried until acknowledged or ctx ends.
	Result(ctx context.Context, st api.Status) error
}

// CallbackClient is the HTTP Reporter, the agent's client of the
// controller's callback endpoints: it POSTs JSON to <URL>/discovery,
// <URL>/progress and <URL>/result, with "Authorization: Bearer <Token>" (the
// node's own token) when a token is set. Any 2xx is an acknowledgement; 4xx other than 408/429 are
// not retried (the controller refuses the request as such).
type CallbackClient struct {
	URL    string
	Token  string
	NodeID string
	Client *http.Client // default: 10s timeout
	Logger *slog.Logger
	// Backoff is the first wait between attempts, doubling up to MaxBackoff
	// (defaults 1s and 30s).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Sleep waits between attempts (tests replace it); it returns ctx.Err()
	// when ctx ends first.
	Sleep func(ctx context.Context, d time.Duration) error
	// Metrics, when set, count the callbacks attempted again.
	Metrics *Metrics

	mu        sync.Mutex
	announced string // the NodeID the discovery carried, when NodeID is empty
}

var _ Reporter = (*CallbackClient)(nil)

// Discovery implements Reporter. Without a configured NodeID, the identity
// the discovery announces (the agent's default: DMI UUID, else hostname)
// is the one the later progress and result callbacks carry, so the
// controller can tell whose they are.
func (c *CallbackClient) Discovery(ctx context.Context, d api.Discovery) error {
	c.mu.Lock()
	if d.NodeID == "" {
		d.NodeID = c.NodeID
	} else if c.NodeID == "" {
		c.announced = d.NodeID
	}
	c.mu.Unlock()
	return c.postRetry(ctx, "discovery", d)
}

func (c *CallbackClient) nodeID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.NodeID != "" {
		return c.NodeID
	}
	return c.announced
}

// Progress implements Reporter.
func (c *CallbackClient) Progress(ctx context.Context, st api.Status) error {
	return c.post(ctx, "progress", api.Callback{NodeID: c.nodeID(), Status: st})
}

// Result implements Reporter.
func (c *CallbackClient) Result(ctx context.Context, st api.Status) error {
	return c.postRetry(ctx, "result", api.Callback{NodeID: c.nodeID(), Status: st})
}

type permanentError struct{ error }

func (c *CallbackClient) postRetry(ctx context.Context, kind string, body any) error {
	wait := c.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	maxWait := c.MaxBackoff
	if maxWait <= 0 {
		maxWait = 30 * time.Second
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for attempt := 1; ; attempt++ {
		err := c.post(ctx, kind, body)
		if err == nil {
			log.Info("controller acknowledged", "callback", kind, "attempts", attempt)
			return nil
		}
		if _, ok := err.(permanentError); ok {
			return err
		}
		log.Warn("controller callback failed; retrying", "callback", kind, "attempt", attempt, "retry_in", wait, "err", err)
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (gave up after %d attempts: %v)", err, attempt, serr)
		}
		c.Metrics.retry(RetryCallback)
		wait = min(2*wait, maxWait)
	}
}

func (c *CallbackClient) post(ctx context.Context, kind string, body any) error {
	url := strings.TrimRight(c.URL, "/") + "/" + kind
	b, err := json.Marshal(body)
	if err != nil {
		return permanentError{fmt.Errorf("controller %s: encode: %w", kind, err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return permanentError{fmt.Errorf("controller %s: %w", url, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "imprint-agent")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("controller POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("controller POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanentError{err}
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DefaultNodeID is the DMI system UUID when the inventory has one, else the
// host name.
func DefaultNodeID(inv *inventory.Inventory) string {
	if inv != nil && inv.DMI.UUID != "" {
		return inv.DMI.UUID
	}
	h, _ := os.Hostname()
	return h
}
