package power_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/redfishemu"
	"github.com/imprint-dev/imprint/power"
)

func emulatorBMC(t *testing.T, e *redfishemu.Emulator) power.BMC {
	t.Helper()
	u, p := e.Credentials()
	b, err := power.ParseURL("redfish+http://" + strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	b.Username, b.Password = u, p
	return b
}

// TestRedfishFaults: against the Redfish emulator (its machine off, no
// QEMU needed), the status reads; a wrong password, a BMC answering 500
// and one that never answers each give an error naming the BMC (never the
// password), the last within the timeout.
func TestRedfishFaults(t *testing.T) {
	e, err := redfishemu.Start(redfishemu.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	d := &power.Drivers{Timeout: 2 * time.Second}
	bmc := emulatorBMC(t, e)
	if st, err := d.State(ctx, bmc); err != nil || st != power.StateOff {
		t.Fatalf("state %q %v, want off", st, err)
	}
	bad := bmc
	bad.Password = "wrong-password"
	for _, tc := range []struct {
		name  string
		fault redfishemu.Fault
		bmc   power.BMC
		want  string
	}{
		{"wrong password", redfishemu.NoFault, bad, "401"},
		{"500", redfishemu.Fault500, bmc, "500"},
		{"no answer", redfishemu.FaultHang, bmc, "no answer within 2s"},
	} {
		e.SetFault(tc.fault)
		for _, a := range []power.Action{power.On, power.Cycle} {
			start := time.Now()
			err := d.Set(ctx, tc.bmc, a)
			took := time.Since(start)
			if err == nil {
				t.Errorf("%s: power %s succeeded", tc.name, a)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, bmc.Address) || strings.Contains(msg, bmc.Password) || strings.Contains(msg, bad.Password) {
				t.Errorf("%s: power %s: %q; want %q and the BMC's address, no password", tc.name, a, msg, tc.want)
			}
			if took > 4*time.Second {
				t.Errorf("%s: power %s took %v with a 2s timeout", tc.name, a, took)
			}
			t.Logf("%s: power %s: %v (%v)", tc.name, a, err, took.Round(time.Millisecond))
		}
	}
	e.SetFault(redfishemu.NoFault)
	if n := e.Resets(); len(n) != 0 {
		t.Errorf("resets %v done by failed calls", n)
	}
}
