package controller

import (
	"context"
	"errors"
	"time"
)

// Defaults of the image transfer limit.
const (
	// DefaultMaxTransfers is how many image downloads the controller
	// serves at once by default. MAAS users saturate 25 GbE with 15
	// parallel deploys of an 8 GB image; Ironic's fixed concurrency limits
	// default to 50. Past the link's capacity more streams only slow every
	// node down; the rest wait for a slot.
	DefaultMaxTransfers = 32
	// DefaultTransferWait is how long a download waits for a slot before
	// it is answered 503 with Retry-After. It stays below the image
	// writer's response-header timeout (its IdleTimeout, 30s by default),
	// so the agent sees a clear 503 it retries rather than a stall.
	DefaultTransferWait = 20 * time.Second
)

// errNoSlot: no transfer slot freed in time.
var errNoSlot = errors.New("every image transfer slot is busy")

// transferLimiter bounds the image downloads served at once. A download
// that finds every slot busy waits up to wait (in arrival order as the Go
// scheduler wakes channel senders; no strict FIFO) and is then refused.
type transferLimiter struct {
	slots chan struct{}
	wait  time.Duration
	m     *Metrics
}

func newTransferLimiter(n int, wait time.Duration, m *Metrics) *transferLimiter {
	return &transferLimiter{slots: make(chan struct{}, n), wait: wait, m: m}
}

// acquire takes a slot, waiting up to the limiter's wait; release gives
// it back.
func (l *transferLimiter) acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.m.transfersWaiting.Inc()
		t := time.NewTimer(l.wait)
		select {
		case l.slots <- struct{}{}:
			t.Stop()
			l.m.transfersWaiting.Dec()
		case <-t.C:
			l.m.transfersWaiting.Dec()
			l.m.transfersRefused.Inc()
			return nil, errNoSlot
		case <-ctx.Done():
			t.Stop()
			l.m.transfersWaiting.Dec()
			return nil, ctx.Err()
		}
	}
	l.m.transfersActive.Inc()
	return func() {
		l.m.transfersActive.Dec()
		<-l.slots
	}, nil
}
