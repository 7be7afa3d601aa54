package eventlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

type ev struct {
	Seq int64
	Msg string
}

func add(l *Log[ev], msg string) ev {
	return l.Append(func(seq int64) ev { return ev{Seq: seq, Msg: msg} })
}

func TestAppendNumbersAndBounds(t *testing.T) {
	l := New[ev](3)
	for i := 1; i <= 5; i++ {
		if got := add(l, fmt.Sprint(i)); got.Seq != int64(i) {
			t.Fatalf("Append %d numbered %d", i, got.Seq)
		}
	}
	all, _ := l.Since(0)
	if len(all) != 3 || all[0].Seq != 3 || all[2].Event.Msg != "5" {
		t.Errorf("Since(0) = %+v, want the newest three, 3 to 5", all)
	}
	if after, _ := l.Since(4); len(after) != 1 || after[0].Seq != 5 {
		t.Errorf("Since(4) = %+v, want event 5", after)
	}
	if none, _ := l.Since(5); len(none) != 0 {
		t.Errorf("Since(5) = %+v, want none", none)
	}
	if New[ev](0).max != 1 {
		t.Errorf("New(0) keeps %d, want 1", New[ev](0).max)
	}
}

func TestChangedClosesOnAppend(t *testing.T) {
	l := New[ev](8)
	_, ch := l.Since(0)
	ch2 := l.Changed()
	select {
	case <-ch:
		t.Fatal("changed before any Append")
	default:
	}
	add(l, "x")
	for _, c := range []<-chan struct{}{ch, ch2} {
		select {
		case <-c:
		case <-time.After(time.Second):
			t.Fatal("Append did not close the channel")
		}
	}
	select {
	case <-l.Changed():
		t.Fatal("the new channel is closed already")
	default:
	}
}

func TestFollowReplaysThenStreams(t *testing.T) {
	l := New[ev](100)
	add(l, "a")
	add(l, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch := l.Follow(ctx, 1) // after "a": b, then live
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			add(l, fmt.Sprint("live", i))
		}
	})
	want := []string{"b"}
	for i := range 50 {
		want = append(want, fmt.Sprint("live", i))
	}
	for i, w := range want {
		select {
		case e := <-ch:
			if e.Msg != w || e.Seq != int64(i+2) {
				t.Fatalf("event %d = %+v, want %q numbered %d", i, e, w, i+2)
			}
		case <-ctx.Done():
			t.Fatalf("event %d (%q) never came", i, w)
		}
	}
	wg.Wait()
	cancel()
	for range ch { // closed once ctx ends
	}
}

func TestFollowSlowReaderDoesNotBlockAppend(t *testing.T) {
	l := New[ev](4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := l.Follow(ctx, 0)
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			add(l, fmt.Sprint(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Append blocked behind a reader that reads nothing")
	}
	// The reader catches up from what is kept: increasing numbers, ending at 1000.
	var last int64
	for last < 1000 {
		select {
		case e := <-ch:
			if e.Seq <= last {
				t.Fatalf("event %d after %d", e.Seq, last)
			}
			last = e.Seq
		case <-time.After(5 * time.Second):
			t.Fatalf("stuck at %d", last)
		}
	}
}
