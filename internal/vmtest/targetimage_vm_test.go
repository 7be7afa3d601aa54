//go:build vm

package vmtest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// TestVMTargetImage builds (or finds) the cached target image and checks
// that asking again reuses it.
func TestVMTargetImage(t *testing.T) {
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ti := RequireTargetImage(t, log)
	for _, p := range []string{ti.Root, ti.Boot, ti.Metadata} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	again, err := BuildTargetImage(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if again.Built || again.Dir != ti.Dir {
		t.Errorf("second BuildTargetImage rebuilt (%+v), want the cache %s reused", again, ti.Dir)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
