//go:build vm

package vmtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/logtest"
)

// TestVMTargetImage builds (or finds) the cached target image and checks
// that asking again reuses it.
func TestVMTargetImage(t *testing.T) {
	log := logtest.New(t)
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
