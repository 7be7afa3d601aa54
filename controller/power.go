package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/power"
)

// BMCPower drives a machine's power through its BMC (power.Drivers).
type BMCPower interface {
	Set(ctx context.Context, b power.BMC, a power.Action) error
	State(ctx context.Context, b power.BMC) (power.State, error)
}

// Power events of a node's timeline.
const (
	PhasePower       Phase = "power"        // a power action through the node's BMC succeeded
	PhasePowerFailed Phase = "power-failed" // a power action failed; Detail names the BMC and why
	PhaseBMC         Phase = "bmc"          // the node's BMC was enrolled or changed
)

// ErrNoBMC: the node has no BMC enrolled.
var ErrNoBMC = errors.New("no BMC enrolled")

// defaultPowerTimeout bounds one power action, a cycle's off-wait-on
// included.
const defaultPowerTimeout = 2 * time.Minute

func (c *Controller) bmcPower() BMCPower {
	if c.cfg.BMCPower != nil {
		return c.cfg.BMCPower
	}
	return &power.Drivers{Timeout: c.powerTimeout(), Log: c.log}
}

func (c *Controller) powerTimeout() time.Duration {
	if c.cfg.PowerTimeout > 0 {
		return c.cfg.PowerTimeout
	}
	return defaultPowerTimeout
}

// knownNode resolves mac to a configured node.
func (c *Controller) knownNode(mac string) (string, error) {
	m, err := normMAC(mac)
	if err != nil {
		return "", err
	}
	if _, ok := c.nodes[m]; !ok {
		return "", fmt.Errorf("node %s: %w", m, ErrUnknownNode)
	}
	return m, nil
}

// EnrollBMC records (or replaces) how the controller reaches the node's
// BMC, after checking it, and notes it in the node's timeline (without the
// password).
func (c *Controller) EnrollBMC(ctx context.Context, mac string, b power.BMC) error {
	m, err := c.knownNode(mac)
	if err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("node %s: %w", m, err)
	}
	if err := c.store.SetBMC(ctx, m, &b); err != nil {
		return err
	}
	return c.atRest(ctx, m, func(r *NodeRecord, rec recorder) error {
		rec(PhaseBMC, fmt.Sprintf("%s enrolled (user %q)", b, b.Username))
		return nil
	})
}

// NodeBMC returns the node's BMC, nil when none is enrolled.
func (c *Controller) NodeBMC(ctx context.Context, mac string) (*power.BMC, error) {
	m, err := c.knownNode(mac)
	if err != nil {
		return nil, err
	}
	return c.store.BMC(ctx, m)
}

// atRest is update for an event that does not drive the node: a node at
// rest (provisioned, its OS up, or failed) keeps no lease for it.
func (c *Controller) atRest(ctx context.Context, mac string, fn func(r *NodeRecord, rec recorder) error) error {
	var rest bool
	err := c.update(ctx, mac, func(r *NodeRecord, rec recorder) error {
		rest = (r.Local && r.has(PhaseOSUp)) || r.has(PhaseFailed) || len(r.Phases) == 0
		return fn(r, rec)
	})
	if err == nil && rest {
		if rerr := c.store.ReleaseLease(ctx, mac, c.cfg.ID); rerr != nil {
			c.log.Error("release lease", "mac", mac, "err", rerr)
		}
	}
	return err
}

// PowerState asks the node's BMC for its power state.
func (c *Controller) PowerState(ctx context.Context, mac string) (power.State, *power.BMC, error) {
	m, err := c.knownNode(mac)
	if err != nil {
		return "", nil, err
	}
	b, err := c.store.BMC(ctx, m)
	if err != nil {
		return "", nil, err
	}
	if b == nil {
		return "", nil, fmt.Errorf("node %s: %w", m, ErrNoBMC)
	}
	st, err := c.bmcPower().State(ctx, *b)
	c.metrics.PowerAction(b.Driver, "status", PowerFailureReason(err))
	if err != nil {
		return "", b, fmt.Errorf("node %s: %w", m, err)
	}
	return st, b, nil
}

// SetPower performs an operator's power action through the node's BMC and
// records it, or its failure, in the node's timeline with the reason.
func (c *Controller) SetPower(ctx context.Context, mac string, a power.Action, reason string) error {
	m, err := c.knownNode(mac)
	if err != nil {
		return err
	}
	if _, err := power.ParseAction(string(a)); err != nil {
		return err
	}
	b, err := c.store.BMC(ctx, m)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("node %s: power %s: %w (imprint nodes enroll %s --bmc URL)", m, a, ErrNoBMC, m)
	}
	err = c.powerAction(ctx, m, *b, a)
	detail := fmt.Sprintf("power %s through %s", a, b)
	if reason != "" {
		detail += " (reason: " + reason + ")"
	}
	if err != nil {
		detail = err.Error()
		if reason != "" {
			detail += " (reason: " + reason + ")"
		}
	}
	if rerr := c.atRest(context.WithoutCancel(ctx), m, func(r *NodeRecord, rec recorder) error {
		if err != nil {
			rec(PhasePowerFailed, detail)
		} else {
			rec(PhasePower, detail)
		}
		return nil
	}); rerr != nil {
		c.log.Error("record power event", "mac", m, "err", rerr)
	}
	return err
}

// powerAction runs one action, bounded by PowerTimeout; its error names
// the node, the action and the BMC (never the password).
func (c *Controller) powerAction(ctx context.Context, mac string, b power.BMC, a power.Action) error {
	ctx, cancel := context.WithTimeout(ctx, c.powerTimeout())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.bmcPower().Set(ctx, b, a) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("power %s through %s: no answer within %s: %w", a, b, c.powerTimeout(), ctx.Err())
	}
	c.metrics.PowerAction(b.Driver, string(a), PowerFailureReason(err))
	if err != nil {
		// A driver's message may quote what it was given: never the
		// password.
		msg := err.Error()
		if b.Password != "" {
			msg = strings.ReplaceAll(msg, b.Password, "xxxxx")
		}
		if !strings.Contains(msg, b.String()) {
			msg = fmt.Sprintf("power %s through %s: %s", a, b, msg)
		}
		c.log.Warn("power action failed", "mac", mac, "bmc", b.String(), "action", string(a), "err", msg)
		return fmt.Errorf("node %s: %s", mac, msg)
	}
	c.log.Info("power action", "mac", mac, "bmc", b.String(), "action", string(a))
	return nil
}
