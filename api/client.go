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
	"strconv"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/inventory"
)

// Client calls an agent's API (imprint ctl, tests, controllers written in Go).
type Client struct {
	// URL is the agent's base URL: http://10.20.0.5:9999.
	URL   string
	Token string
	// HTTP is the client used (default http.DefaultClient); set a pinned
	// TLS configuration on it for an agent started with --tls.
	HTTP *http.Client
}

// ResponseError is a non-2xx answer.
type ResponseError struct {
	Method, URL string
	StatusCode  int
	Body        Error
}

func (e *ResponseError) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	s := fmt.Sprintf("%s %s: %d: %s", e.Method, e.URL, e.StatusCode, msg)
	for _, p := range e.Body.Problems {
		s += fmt.Sprintf("\n  %s: %s", p.Path, p.Msg)
	}
	return s
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	url := strings.TrimRight(c.URL, "/") + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		re := &ResponseError{Method: method, URL: url, StatusCode: resp.StatusCode}
		json.Unmarshal(b, &re.Body)
		return re
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, url, err)
		}
	}
	return nil
}

// Inventory is GET /v1/inventory.
func (c *Client) Inventory(ctx context.Context) (*inventory.Inventory, error) {
	var inv inventory.Inventory
	if err := c.do(ctx, "GET", "/v1/inventory", nil, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Plan is POST /v1/plan.
func (c *Client) Plan(ctx context.Context, doc []byte) (*PlanResult, error) {
	var p PlanResult
	if err := c.do(ctx, "POST", "/v1/plan", doc, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Provision is POST /v1/provision.
func (c *Client) Provision(ctx context.Context, doc []byte, force bool) (*StartResponse, error) {
	path := "/v1/provision"
	if force {
		path += "?force=true"
	}
	var r StartResponse
	if err := c.do(ctx, "POST", path, doc, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Status is GET /v1/provision.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, "GET", "/v1/provision", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Healthz is GET /healthz (no token needed).
func (c *Client) Healthz(ctx context.Context) error { return c.do(ctx, "GET", "/healthz", nil, nil) }

// Wait polls GET /v1/provision every poll until job id has succeeded or
// failed, and returns its last status. A failing GET ends the wait with
// its error; so does ctx, with the last status seen.
func (c *Client) Wait(ctx context.Context, id string, poll time.Duration) (*Status, error) {
	var last *Status
	for {
		st, err := c.Status(ctx)
		if err != nil {
			if ctx.Err() != nil && last != nil {
				break
			}
			return last, fmt.Errorf("wait for job %s: %w", id, err)
		}
		last = st
		if st.ID == id && (st.State == StateSucceeded || st.State == StateFailed) {
			return st, nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
			continue
		}
		break
	}
	return last, fmt.Errorf("wait for job %s: the agent reports job %s %s at step %q: %w", id, last.ID, last.State, last.Step, context.Cause(ctx))
}

// Reboot is POST /v1/reboot.
func (c *Client) Reboot(ctx context.Context) error { return c.do(ctx, "POST", "/v1/reboot", nil, nil) }

// PowerOff is POST /v1/poweroff.
func (c *Client) PowerOff(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/poweroff", nil, nil)
}

// Logs is GET /v1/logs.
func (c *Client) Logs(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.do(ctx, "GET", "/v1/logs", nil, &b)
	return b, err
}

// ErrStopEvents ends Events without error when returned by its callback.
var ErrStopEvents = errors.New("stop events")

// Events follows GET /v1/events from sequence after, calling fn for each
// event until fn returns an error (ErrStopEvents: Events returns nil), ctx
// ends or the stream breaks.
func (c *Client) Events(ctx context.Context, after int64, fn func(Event) error) error {
	url := strings.TrimRight(c.URL, "/") + "/v1/events"
	err := streamSSE(ctx, c.httpClient(), url, c.Token, after, func(m sseMessage) error {
		var ev Event
		if err := json.Unmarshal(m.data, &ev); err != nil {
			return fmt.Errorf("GET %s: bad event %q: %w", url, m.data, err)
		}
		if ev.Type == "" {
			return nil // "end" marker or comment-only block
		}
		return fn(ev)
	})
	if errors.Is(err, errStreamEnded) {
		return fmt.Errorf("GET %s: stream ended", url)
	}
	return err
}

// sseMessage is one server-sent event: its id, event name and data.
type sseMessage struct {
	id    int64
	event string
	data  []byte
}

// errStreamEnded is streamSSE's error when the server closed the stream.
var errStreamEnded = errors.New("stream ended")

// streamSSE GETs u as a server-sent event stream (from Last-Event-ID
// after, with the bearer token when there is one) and calls fn for each
// message with data or an event name, until fn returns an error
// (ErrStopEvents: streamSSE returns nil), ctx ends, or the stream ends
// (errStreamEnded). An answer other than 200 is a *ResponseError.
func streamSSE(ctx context.Context, hc *http.Client, u, token string, after int64, fn func(sseMessage) error) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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
	var m sseMessage
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(m.data) == 0 && m.event == "" {
				continue
			}
			if err := fn(m); err != nil {
				if errors.Is(err, ErrStopEvents) {
					return nil
				}
				return err
			}
			m.data, m.event = m.data[:0], ""
		case bytes.HasPrefix(line, []byte("id: ")):
			m.id, _ = strconv.ParseInt(string(line[4:]), 10, 64)
		case bytes.HasPrefix(line, []byte("event: ")):
			m.event = string(line[7:])
		case bytes.HasPrefix(line, []byte("data: ")):
			m.data = append(m.data, line[6:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return errStreamEnded
}
