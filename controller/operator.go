package controller

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/imprint-dev/imprint/api"
)

//go:embed openapi.yaml
var openapiYAML []byte

// operatorRoutes is the controller's own API under /v1, for operators
// (`imprint nodes`): bearer Config.Token, which no node ever sees.
func (c *Controller) operatorRoutes(r chi.Router) {
	r.Use(c.authenticateOperator)
	r.Get("/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openapiYAML)
	})
	r.Get("/nodes", c.listNodes)
	r.Get("/nodes/{mac}", c.showNode)
	r.Post("/nodes/{mac}/reprovision", c.reprovisionNode)
	c.powerRoutes(r)
}

func (c *Controller) authenticateOperator(next http.Handler) http.Handler {
	want := []byte(c.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="imprint-controller"`)
			httpError(w, http.StatusUnauthorized, "missing bearer token (the operator token, imprint controller --token)")
			return
		}
		if len(want) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			c.log.Warn("operator API refused: wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
			httpError(w, http.StatusForbidden, "not the operator token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// summary is the operator's view of a node: no credentials.
func (c *Controller) summary(rec NodeRecord, evs []Event) api.NodeSummary {
	s := api.NodeSummary{MAC: rec.MAC, Hostname: c.nodes[rec.MAC].Hostname, Round: rec.Round, LocalBoot: rec.Local,
		ReportedID: rec.NodeID, AgentURL: rec.AgentURL, TLSFingerprint: rec.Pin, LastStatus: rec.Status,
		LeaseOwner: rec.LeaseOwner, LeaseExpires: rec.LeaseExpires}
	for _, ev := range evs {
		if ev.MAC == rec.MAC && ev.Round == rec.Round {
			s.Phase, s.PhaseTime = string(ev.Phase), ev.Time
		}
	}
	return s
}

func (c *Controller) listNodes(w http.ResponseWriter, r *http.Request) {
	recs, err := c.store.Nodes(r.Context())
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	evs, err := c.store.Events(r.Context(), "")
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []api.NodeSummary{}
	for _, rec := range recs {
		if _, ok := c.nodes[rec.MAC]; ok {
			s := c.summary(rec, evs)
			if s.BMC, err = c.bmcOf(r.Context(), rec.MAC); err != nil {
				httpError(w, http.StatusInternalServerError, err.Error())
				return
			}
			out = append(out, s)
		}
	}
	writeJSON(w, out)
}

// operatorNode resolves {mac}: a MAC or a configured host name.
func (c *Controller) operatorNode(w http.ResponseWriter, r *http.Request) (string, bool) {
	arg := chi.URLParam(r, "mac")
	if m, err := normMAC(arg); err == nil {
		if _, ok := c.nodes[m]; ok {
			return m, true
		}
	}
	for m, n := range c.nodes {
		if n.Hostname == arg {
			return m, true
		}
	}
	httpError(w, http.StatusNotFound, "no node "+arg+" (give its MAC or host name)")
	return "", false
}

func (c *Controller) showNode(w http.ResponseWriter, r *http.Request) {
	mac, ok := c.operatorNode(w, r)
	if !ok {
		return
	}
	rec, err := c.store.Node(r.Context(), mac)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	evs, err := c.store.Events(r.Context(), mac)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	d := api.NodeDetail{NodeSummary: c.summary(rec, evs), Events: []api.NodeEvent{}}
	if d.BMC, err = c.bmcOf(r.Context(), mac); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, ev := range evs {
		d.Events = append(d.Events, api.NodeEvent{Time: ev.Time, Round: ev.Round, Phase: string(ev.Phase), Detail: ev.Detail})
	}
	if p := rec.Phone; p != nil {
		d.PhoneHome = &api.NodePhone{Time: p.Time, InstanceID: p.InstanceID, Hostname: p.Hostname, FQDN: p.FQDN, PubKeys: p.PubKeys}
	}
	writeJSON(w, d)
}

func (c *Controller) reprovisionNode(w http.ResponseWriter, r *http.Request) {
	mac, ok := c.operatorNode(w, r)
	if !ok {
		return
	}
	var req api.ReprovisionRequest
	if !decodeOperator(w, r, &req) {
		return
	}
	// The reset outlives the request.
	if err := c.ReprovisionFor(context.WithoutCancel(r.Context()), mac, req.Reason); err != nil {
		var le errLeased
		if errors.As(err, &le) {
			c.updateError(w, mac, err)
			return
		}
		httpError(w, http.StatusBadGateway, err.Error())
		return
	}
	w.WriteHeader(http.StatusAccepted)
	writeJSON(w, map[string]string{"mac": mac, "action": "reprovision"})
}
