package agent

import (
	"context"

	"github.com/imprint-dev/imprint/api"
)

// emit appends an event and wakes the subscribers.
func (j *Jobs) emit(ev api.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	ev.Seq = j.seq
	if ev.Time.IsZero() {
		ev.Time = j.opts.Now()
	}
	j.events = append(j.events, ev)
	if over := len(j.events) - j.opts.MaxEvents; over > 0 {
		j.events = append(j.events[:0], j.events[over:]...)
	}
	close(j.changed)
	j.changed = make(chan struct{})
}

// Subscribe streams the kept events with Seq > after, then live ones, until
// ctx ends (api.Jobs). A slow reader never blocks the job: it catches up
// from the kept events (and misses those trimmed meanwhile).
func (j *Jobs) Subscribe(ctx context.Context, after int64) <-chan api.Event {
	out := make(chan api.Event, 16)
	go func() {
		defer close(out)
		cursor := after
		for {
			j.mu.Lock()
			var batch []api.Event
			for _, ev := range j.events {
				if ev.Seq > cursor {
					batch = append(batch, ev)
				}
			}
			wait := j.changed
			j.mu.Unlock()
			for _, ev := range batch {
				select {
				case out <- ev:
					cursor = ev.Seq
				case <-ctx.Done():
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
