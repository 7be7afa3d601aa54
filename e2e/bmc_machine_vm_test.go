//go:build vm

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/power"
)

// TestVMBMCMachine: a machine owned by its ipmi_sim BMC starts, cycles
// (a new QEMU process) and stops through IPMI over LAN, ipmitool agreeing;
// no OS, only the firmware: seconds.
func TestVMBMCMachine(t *testing.T) {
	testenv.RequireTool(t, vmtest.QEMU, "ipmi_sim", "ipmitool")
	dir := t.TempDir()
	tftp := filepath.Join(dir, "tftp")
	os.MkdirAll(tftp, 0o755)
	m, err := StartMachine(MachineConfig{Dir: dir, MAC: "52:54:00:12:34:5b", TFTPDir: tftp, BootFile: "none.ipxe", MemoryMiB: 256, CPUs: 1,
		Disks: []Disk{{Path: filepath.Join(dir, "d.img"), Size: 1 << 20}}, BMC: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := &power.Drivers{Timeout: time.Minute}
	bmc := m.BMC.BMC()
	expect := func(step string, want power.State) int {
		t.Helper()
		for i := 0; ; i++ {
			st, err := d.State(ctx, bmc)
			tool, terr := m.BMC.PowerStatus(ctx)
			// QEMU writes its pid file a moment after the BMC started it.
			if err == nil && terr == nil && st == want && tool == string(want) && (m.QEMUPid() != 0) == (want == power.StateOn) {
				return m.QEMUPid()
			}
			if i == 60 {
				t.Fatalf("%s: driver %s %v, ipmitool %s %v; want %s", step, st, err, tool, terr, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if pid := expect("initially", power.StateOff); pid != 0 {
		t.Fatalf("QEMU pid %d before power on", pid)
	}
	if err := d.Set(ctx, bmc, power.On); err != nil {
		t.Fatal(err)
	}
	pid1 := expect("on", power.StateOn)
	if err := d.Set(ctx, bmc, power.Cycle); err != nil {
		t.Fatal(err)
	}
	pid2 := expect("cycled", power.StateOn)
	if pid1 == 0 || pid2 == 0 || pid1 == pid2 {
		b, _ := os.ReadFile(m.BMC.Log)
		t.Errorf("QEMU pids %d then %d: the cycle did not restart QEMU; ipmi_sim log:\n%s", pid1, pid2, b)
	}
	if err := d.Set(ctx, bmc, power.Off); err != nil {
		t.Fatal(err)
	}
	if pid := expect("off", power.StateOff); pid != 0 {
		t.Errorf("QEMU pid %d after power off", pid)
	}
	t.Logf("QEMU pids: %d, after the cycle %d", pid1, pid2)
}
