// Package logtest gives tests a *slog.Logger that writes to t.Log, so a
// test's log appears with its failure (or with -v) and nowhere else, and
// optionally keeps the lines for assertions.
package logtest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a text logger, debug level and up, writing each record to
// t.Log.
func New(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Capture is New that also keeps the log in the returned Buffer.
func Capture(t testing.TB) (*slog.Logger, *Buffer) {
	buf := &Buffer{}
	return slog.New(slog.NewTextHandler(tWriter{t: t, also: buf}, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// Buffer is the captured log, safe for concurrent writers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything logged so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type tWriter struct {
	t    testing.TB
	also *Buffer
}

func (w tWriter) Write(p []byte) (int, error) {
	if w.also != nil {
		w.also.Write(p)
	}
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
