package logtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// logRecorder stands in for a *testing.T and keeps what is logged.
type logRecorder struct {
	testing.TB
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Log(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprint(args...))
}

func TestNewWritesToTLog(t *testing.T) {
	r := &logRecorder{TB: t}
	New(r).Debug("step", "device", "/dev/loop7")
	if len(r.lines) != 1 || !strings.Contains(r.lines[0], `level=DEBUG msg=step device=/dev/loop7`) || strings.HasSuffix(r.lines[0], "\n") {
		t.Errorf("t.Log got %q", r.lines)
	}
}

func TestCaptureKeepsTheLog(t *testing.T) {
	r := &logRecorder{TB: t}
	log, buf := Capture(r)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("line", "n", i)
		}()
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "msg=line"); n != 8 || len(r.lines) != 8 {
		t.Errorf("captured %d lines, t.Log got %d; want 8 each:\n%s", n, len(r.lines), buf)
	}
}
