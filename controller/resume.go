package controller

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/imprint-dev/imprint/api"
)

// resume finishes what a controller that died left half done, from the
// stored state, for each node whose lease it can take: a discovery whose
// document was never posted (posted now, unless the agent already has a
// job), and a success whose reboot was never asked for (asked now). A
// result that arrives later is handled as always.
func (c *Controller) resume(ctx context.Context) {
	for mac := range c.nodes {
		rec, err := c.store.Node(ctx, mac)
		if err != nil {
			c.log.Error("resume: read node", "mac", mac, "err", err)
			continue
		}
		switch {
		case rec.has(PhaseDiscovered) && !rec.has(PhaseProvisioning) && !rec.has(PhaseProvisioned) && !rec.has(PhaseFailed):
			c.resumeDiscovered(ctx, rec)
		case rec.has(PhaseProvisioned) && !rec.has(PhaseRebooting) && !rec.has(PhaseLocal) && !rec.has(PhaseFailed):
			if !c.leased(ctx, mac) {
				continue
			}
			c.log.Info("resume: asking the agent to reboot, as the last controller did not", "mac", mac, "round", rec.Round)
			c.rebootAfterRestart(ctx, mac, rec.Round, rec.AgentURL, rec.Pin, rec.Token)
		}
	}
}

// leased takes the node's lease for this controller.
func (c *Controller) leased(ctx context.Context, mac string) bool {
	held, holder, err := c.store.Lease(ctx, mac, c.cfg.ID, c.now(), c.now().Add(c.cfg.LeaseTTL))
	if err != nil || !held {
		c.log.Info("resume: node not ours", "mac", mac, "holder", holder, "err", err)
		return false
	}
	return true
}

func (c *Controller) resumeDiscovered(ctx context.Context, rec NodeRecord) {
	mac := rec.MAC
	var d api.Discovery
	if len(rec.Discovery) == 0 || json.Unmarshal(rec.Discovery, &d) != nil || d.Inventory == nil {
		c.log.Warn("resume: the discovery was not stored; waiting for the agent", "mac", mac)
		return
	}
	if !c.leased(ctx, mac) {
		return
	}
	st, err := c.agentClient(rec.AgentURL, rec.Pin, rec.Token).Status(ctx)
	if err != nil {
		c.recordRound(mac, rec.Round, PhaseFailed, fmt.Sprintf("resume after a restart: agent status from %s: %v", rec.AgentURL, err))
		return
	}
	if st.State != api.StateIdle {
		c.recordRound(mac, rec.Round, PhaseProvisioning, fmt.Sprintf("resumed after a restart: the agent's job %q is %s", st.ID, st.State))
		return
	}
	c.mu.Lock()
	busy := c.posting[mac]
	c.posting[mac] = true
	c.mu.Unlock()
	if busy {
		return
	}
	defer func() {
		c.mu.Lock()
		delete(c.posting, mac)
		c.mu.Unlock()
	}()
	c.log.Info("resume: posting the document the last controller did not", "mac", mac, "round", rec.Round)
	c.provision(ctx, mac, rec.Round, rec.Round > 1, false, d, rec.AgentURL, rec.Token) // the agent's status was just read: idle
}
