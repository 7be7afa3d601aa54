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
	st, err := cl.Status(ctx)
	if err != nil {
		return false
	}
	switch st.State {
	case api.StatePending, api.StateRunning, api.StateSucceeded:
	default:
		return false
	}
	c.recordRound(mac, round, PhaseProvisioning, fmt.Sprintf("the agent already runs job %q (%s), started in this boot with this round's token: the round's job (the document was posted twice, across a controller restart)", st.ID, st.State))
	return true
}
