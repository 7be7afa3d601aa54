package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/imprint-dev/imprint/api"
)

// adoptRunningJob handles a POST /v1/provision the agent answered 409
// because it already runs a job: a discovery the agent retried (the
// controller died after storing it, before answering) makes a restarted
// controller post the document a second time while the first is being
// carried out. That job was started in this boot of the node, with this
// round's token, so it is the round's: the controller records it and waits
// for its result instead of failing a round the node is provisioning. It
// reports whether it did; a 409 for any other reason (a locked node, an
// idle agent) is left to the caller. Found by the fleet simulation's
// SIGKILL run.
func (c *Controller) adoptRunningJob(ctx context.Context, cl *api.Client, mac string, round int, postErr error) bool {
	var re *api.ResponseError
	if !errors.As(postErr, &re) || re.StatusCode != http.StatusConflict {
		return false
	}
	return c.adoptJob(ctx, cl, mac, round, "the agent already runs job %q (%s), started in this boot with this round's token: the round's job (the document was posted twice, across a controller restart)")
}

// adoptJob records the agent's job of this boot as the round's when it is
// pending, running or succeeded (detail: a format taking its id and
// state), and reports whether it did.
func (c *Controller) adoptJob(ctx context.Context, cl *api.Client, mac string, round int, detail string) bool {
	st, err := cl.Status(ctx)
	if err != nil {
		return false
	}
	switch st.State {
	case api.StatePending, api.StateRunning, api.StateSucceeded:
	default:
		return false
	}
	c.recordRound(mac, round, PhaseProvisioning, fmt.Sprintf(detail, st.ID, st.State))
	return true
}

// adoptExistingJob is asked before posting the document again for a
// second discovery in the round: when the agent already has a job of this
// boot (pending, running or succeeded), the discovery was the agent
// retrying one whose answer was lost with a killed controller, not an
// agent that restarted, and posting again with force would provision the
// node a second time. That job is the round's. An unreachable or idle agent
// (it restarted: its job died with it) gets the document. Found by the
// fleet simulation's SIGKILL run.
func (c *Controller) adoptExistingJob(ctx context.Context, cl *api.Client, mac string, round int) bool {
	return c.adoptJob(ctx, cl, mac, round, "the agent already has job %q (%s) from this boot: the round's job (its discovery was repeated, not the agent restarted); not posted again")
}

// rebootAfterRestart asks the agent to reboot for a restarted controller
// whose predecessor recorded the success but not the reboot. That
// predecessor may have asked already and died before recording it: then
// the agent is gone (the node is rebooting), and an unreachable agent is
// no failure. The node's next iPXE request (local boot) and phone-home
// carry its round on. An agent that answers goes through reboot as
// always. Found by the fleet simulation's SIGKILL run, where such nodes
// were recorded failed yet came up.
func (c *Controller) rebootAfterRestart(ctx context.Context, mac string, round int, agentURL, pin, token string) {
	err := c.agentClient(agentURL, pin, token).Reboot(ctx)
	if err == nil {
		c.recordRound(mac, round, PhaseRebooting, "POST "+agentURL+"/v1/reboot accepted (after a controller restart)")
		return
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		c.log.Warn("resume: the agent is unreachable: it may be rebooting on the last controller's request; waiting for its iPXE", "mac", mac, "round", round, "err", err)
		return
	}
	c.reboot(ctx, mac, round, agentURL, pin, token)
}
