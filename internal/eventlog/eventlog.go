// Package eventlog is the in-memory event log the agent and the controller
// share: events numbered in order, the newest kept up to a bound, and
// followers woken by each new one. The agent streams its job events from it
// (GET /v1/events, replay from Last-Event-ID); the controller wakes its
// Wait on the node events it records (its durable timeline is its store).
package eventlog

import (
	"context"
	"sync"
)

// Entry is one event and its sequence number (1, 2, ...).
type Entry[E any] struct {
	Seq   int64
	Event E
}

// Log is a bounded, numbered, followable event log. The zero value is not
// usable: call New.
type Log[E any] struct {
	mu      sync.Mutex
	max     int
	seq     int64
	entries []Entry[E]
	changed chan struct{} // closed and replaced on every Append
}

// New returns a log keeping the newest keep events (at least 1).
func New[E any](keep int) *Log[E] {
	return &Log[E]{max: max(1, keep), changed: make(chan struct{})}
}

// Append numbers the next event, makes it with mk (which may put the
// number into it), keeps it, drops the oldest beyond the bound and wakes
// the followers. It returns the event as kept.
func (l *Log[E]) Append(mk func(seq int64) E) E {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	ev := mk(l.seq)
	l.entries = append(l.entries, Entry[E]{Seq: l.seq, Event: ev})
	if over := len(l.entries) - l.max; over > 0 {
		l.entries = append(l.entries[:0], l.entries[over:]...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return ev
}

// Since returns the kept events numbered above after, oldest first, and a
// channel closed at the next Append (take it before reading anything the
// events describe, and no change is missed).
func (l *Log[E]) Since(after int64) ([]Entry[E], <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Entry[E]
	for _, e := range l.entries {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out, l.changed
}

// Changed is a channel closed at the next Append.
func (l *Log[E]) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Follow streams the kept events numbered above after, then live ones,
// until ctx ends (the channel is then closed). A slow reader never blocks
// Append: it catches up from the kept events, and misses those dropped
// meanwhile.
func (l *Log[E]) Follow(ctx context.Context, after int64) <-chan E {
	out := make(chan E, 16)
	go func() {
		defer close(out)
		cursor := after
		for {
			batch, wait := l.Since(cursor)
			for _, e := range batch {
				select {
				case out <- e.Event:
					cursor = e.Seq
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
