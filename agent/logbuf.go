package agent

import (
	"io"
	"sync"
)

// LogBuffer keeps the last Max bytes of log output (whole lines) for
// GET /v1/logs. It is an io.Writer; tee the log handler's output into it.
type LogBuffer struct {
	Max int // default 1 MiB

	mu  sync.Mutex
	buf []byte
}

// Write appends p, dropping the oldest whole lines beyond Max.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	max := b.Max
	if max <= 0 {
		max = 1 << 20
	}
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - max; over > 0 {
		cut := over
		for cut < len(b.buf) && b.buf[cut-1] != '\n' {
			cut++
		}
		b.buf = append(b.buf[:0], b.buf[cut:]...)
	}
	return len(p), nil
}

// WriteLogs writes the buffered lines, oldest first (api.Logs).
func (b *LogBuffer) WriteLogs(w io.Writer) error {
	b.mu.Lock()
	out := append([]byte(nil), b.buf...)
	b.mu.Unlock()
	_, err := w.Write(out)
	return err
}
