package agent

import (
	"context"

	"github.com/imprint-dev/imprint/api"
)

// emit appends an event (numbered, stamped with the time unless it has
// one) and wakes the subscribers.
func (j *Jobs) emit(ev api.Event) {
	j.events.Append(func(seq int64) api.Event {
		ev.Seq = seq
		if ev.Time.IsZero() {
			ev.Time = j.opts.Now()
		}
		return ev
	})
}

// Subscribe streams the kept events with Seq > after, then live ones, until
// ctx ends (api.Jobs). A slow reader never blocks the job: it catches up
// from the kept events (and misses those trimmed meanwhile).
func (j *Jobs) Subscribe(ctx context.Context, after int64) <-chan api.Event {
	return j.events.Follow(ctx, after)
}
