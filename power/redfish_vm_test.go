//go:build vm

package power_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/redfishemu"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/power"
)

// TestVMRedfishQEMU drives a QEMU machine through the Redfish emulator
// (QMP underneath): on starts QEMU, whose firmware prints; cycle resets it
// (the firmware prints again, same process); off stops QEMU; cycle of a
// machine that is off starts it. The guest is the firmware alone (no
// disk): seconds, not minutes.
func TestVMRedfishQEMU(t *testing.T) {
	testenv.RequireTool(t, "qemu-system-x86_64")
	dir := t.TempDir()
	debug := filepath.Join(dir, "firmware.log")
	e, err := redfishemu.Start(redfishemu.Config{Dir: dir, QEMU: []string{"qemu-system-x86_64", "-accel", "tcg", "-m", "64",
		"-nodefaults", "-display", "none", "-chardev", "file,id=dbg,path=" + debug, "-device", "isa-debugcon,iobase=0x402,chardev=dbg"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	d := &power.Drivers{Timeout: 30 * time.Second}
	bmc := emulatorBMC(t, e)
	boots := func() int {
		b, _ := os.ReadFile(debug)
		return strings.Count(string(b), "SeaBIOS (version")
	}
	waitBoots := func(step string, n int) {
		t.Helper()
		// TCG on a loaded host: allow minutes, not seconds.
		for i := 0; boots() < n; i++ {
			if i > 1200 {
				b, _ := os.ReadFile(debug)
				t.Fatalf("%s: %d firmware starts, want %d; resets %v; firmware log tail:\n%s", step, boots(), n, e.Resets(), tail(string(b), 1000))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	expect := func(step string, want power.State) {
		t.Helper()
		st, err := d.State(ctx, bmc)
		if err != nil || st != want {
			t.Fatalf("%s: state %q %v, want %s", step, st, err, want)
		}
		if on := e.Pid() != 0; on != (want == power.StateOn) {
			t.Fatalf("%s: QEMU running %v, want power %s", step, on, want)
		}
	}
	expect("initially", power.StateOff)
	if err := d.Set(ctx, bmc, power.On); err != nil {
		t.Fatal(err)
	}
	expect("on", power.StateOn)
	waitBoots("on", 1)
	pid := e.Pid()
	if err := d.Set(ctx, bmc, power.Cycle); err != nil {
		t.Fatal(err)
	}
	expect("cycle", power.StateOn)
	waitBoots("cycle", 2)
	if e.Pid() != pid {
		t.Errorf("the cycle of a running machine is a reset: pid %d became %d", pid, e.Pid())
	}
	if err := d.Set(ctx, bmc, power.Off); err != nil {
		t.Fatal(err)
	}
	expect("off", power.StateOff)
	if err := d.Set(ctx, bmc, power.Cycle); err != nil {
		t.Fatal(err)
	}
	expect("cycle from off", power.StateOn)
	if e.Pid() == pid {
		t.Errorf("power on after off reused pid %d", pid)
	}
	t.Logf("resets: %v; firmware starts: %d", e.Resets(), boots())
	if r := e.Resets(); r["On"] != 2 || r["ForceOff"] != 1 || r["ForceRestart"] != 1 {
		t.Errorf("resets %v, want On 2, ForceOff 1, ForceRestart 1", r)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
