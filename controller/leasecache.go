package controller

import (
	"context"
	"time"
)

// leaseCache remembers the leases this controller wrote and until when, so
// an update of a node whose lease has more than half its TTL left does not
// write it again: one commit (and fsync) per update instead of two. Nobody
// else can take a lease before the expiry this controller wrote (Lease
// requires an expired one), so skipping the renewal is safe. Guarded by
// Controller.leaseMu.
type leaseCache map[string]time.Time

// lease takes or renews the node's lease unless this controller holds it
// for more than half the TTL still. Called with the node's lock held.
func (c *Controller) lease(ctx context.Context, mac string) (held bool, holder string, err error) {
	now := c.now()
	c.leaseMu.Lock()
	exp, ok := c.leases[mac]
	c.leaseMu.Unlock()
	if ok && exp.Sub(now) > c.cfg.LeaseTTL/2 {
		return true, c.cfg.ID, nil
	}
	exp = now.Add(c.cfg.LeaseTTL)
	held, holder, err = c.store.Lease(ctx, mac, c.cfg.ID, now, exp)
	c.leaseMu.Lock()
	if err == nil && held {
		c.leases[mac] = exp
	} else {
		delete(c.leases, mac)
	}
	c.leaseMu.Unlock()
	return held, holder, err
}

// forgetLease drops the node's cached lease (it was released); mac empty:
// every one.
func (c *Controller) forgetLease(mac string) {
	c.leaseMu.Lock()
	defer c.leaseMu.Unlock()
	if mac == "" {
		clear(c.leases)
		return
	}
	delete(c.leases, mac)
}
