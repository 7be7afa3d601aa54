package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/power"
)

// powerRoutes are the operator API's BMC, power and timeline calls.
func (c *Controller) powerRoutes(r chi.Router) {
	r.Put("/nodes/{mac}/bmc", c.enrollBMC)
	r.Get("/nodes/{mac}/power", c.powerStatus)
	r.Post("/nodes/{mac}/power", c.powerNode)
	r.Get("/nodes/{mac}/events", c.nodeEvents)
}

func bmcView(b *power.BMC) *api.NodeBMC {
	if b == nil {
		return nil
	}
	return &api.NodeBMC{Driver: b.Driver, Address: b.Address, Username: b.Username, System: b.System, Insecure: b.Insecure}
}

// decodeOperator reads a small JSON body; an empty one leaves v as is.
func decodeOperator(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err.Error() != "EOF" {
		httpError(w, http.StatusBadRequest, "decode "+r.URL.Path+" body: "+err.Error())
		return false
	}
	return true
}

// powerError answers a failed power call: 404 unknown node, 409 no BMC,
// 503 another controller's lease, 502 the BMC failed (its message names
// the node and the BMC).
func (c *Controller) powerError(w http.ResponseWriter, err error) {
	var le errLeased
	switch {
	case errors.Is(err, ErrUnknownNode):
		httpError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrNoBMC):
		httpError(w, http.StatusConflict, err.Error())
	case errors.As(err, &le):
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, err.Error())
	default:
		httpError(w, http.StatusBadGateway, err.Error())
	}
}

func (c *Controller) enrollBMC(w http.ResponseWriter, r *http.Request) {
	mac, ok := c.operatorNode(w, r)
	if !ok {
		return
	}
	var req api.EnrollBMCRequest
	if !decodeOperator(w, r, &req) {
		return
	}
	b, err := power.ParseURL(req.URL)
	if err == nil {
		b.Username, b.Password, b.Insecure = req.Username, req.Password, req.Insecure
		err = b.Validate()
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("node %s: %v", mac, err))
		return
	}
	// A BMC that does not answer with these credentials is refused.
	ctx, cancel := context.WithTimeout(r.Context(), c.powerTimeout())
	defer cancel()
	st, err := c.bmcPower().State(ctx, b)
	if err != nil {
		httpError(w, http.StatusBadGateway, fmt.Sprintf("node %s: not enrolled: %v", mac, err))
		return
	}
	if err := c.EnrollBMC(r.Context(), mac, b); err != nil {
		c.powerError(w, err)
		return
	}
	writeJSON(w, api.PowerStatus{MAC: mac, State: string(st), BMC: *bmcView(&b)})
}

func (c *Controller) powerStatus(w http.ResponseWriter, r *http.Request) {
	mac, ok := c.operatorNode(w, r)
	if !ok {
		return
	}
	c.writePowerState(w, r, mac)
}

// writePowerState answers with the node's power state as its BMC reads it.
func (c *Controller) writePowerState(w http.ResponseWriter, r *http.Request, mac string) {
	st, b, err := c.PowerState(r.Context(), mac)
	if err != nil {
		c.powerError(w, err)
		return
	}
	writeJSON(w, api.PowerStatus{MAC: mac, State: string(st), BMC: *bmcView(b)})
}

func (c *Controller) powerNode(w http.ResponseWriter, r *http.Request) {
	mac, ok := c.operatorNode(w, r)
	if !ok {
		return
	}
	var req api.PowerRequest
	if !decodeOperator(w, r, &req) {
		return
	}
	a, err := power.ParseAction(req.Action)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The action outlives the request: a BMC half-way through a cycle is
	// not abandoned because the operator's client gave up.
	if err := c.SetPower(context.WithoutCancel(r.Context()), mac, a, req.Reason); err != nil {
		c.powerError(w, err)
		return
	}
	c.writePowerState(w, r, mac)
}

// nodeEvents streams the node's timeline as server-sent events: each
// entry's id is its position (1-based), so Last-Event-ID resumes; with
// ?follow=1 it waits for new entries, else it ends with "event: end".
func (c *Controller) nodeEvents(w http.ResponseWriter, r *http.Request) {
	mac, ok := c.operatorNode(w, r)
	if !ok {
		return
	}
	after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
	if v := r.URL.Query().Get("after"); v != "" {
		after, _ = strconv.Atoi(v)
	}
	follow := r.URL.Query().Get("follow") == "1" || r.URL.Query().Get("follow") == "true"
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	next := after
	for {
		ch := c.events.Changed()
		evs, err := c.store.Events(r.Context(), mac)
		if err != nil {
			fmt.Fprintf(w, "event: error\ndata: %q\n\n", err.Error())
			return
		}
		for ; next < len(evs); next++ {
			ev := evs[next]
			b, _ := json.Marshal(api.NodeEvent{Time: ev.Time, Round: ev.Round, Phase: string(ev.Phase), Detail: ev.Detail})
			fmt.Fprintf(w, "id: %d\ndata: %s\n\n", next+1, b)
		}
		if !follow {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			return
		}
		if fl != nil {
			fl.Flush()
		}
		// Another controller's events on a shared database show within
		// a second.
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-r.Context().Done():
			return
		}
	}
}

// bmcOf is the node's BMC for the operator's view (no password).
func (c *Controller) bmcOf(ctx context.Context, mac string) (*api.NodeBMC, error) {
	b, err := c.store.BMC(ctx, mac)
	return bmcView(b), err
}
