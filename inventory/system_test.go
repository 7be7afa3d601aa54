package inventory

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/logtest"
)

func TestCollectSystem(t *testing.T) {
	root := buildTree(t, "system")
	inv, err := Collect(context.Background(), Options{SysRoot: root, DevRoot: t.TempDir(), ProcRoot: "testdata/proc", Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := &Inventory{
		Disks: []Disk{},
		NICs: []NIC{
			{Name: "eno1", MAC: "3c:fd:fe:a1:b2:c0", Link: true, SpeedMbps: 10000, Driver: "i40e"},
			{Name: "eno2", MAC: "3c:fd:fe:a1:b2:c1", Driver: "i40e"},
		},
		CPU:      CPU{Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", Count: 4, Sockets: 2, Arch: runtime.GOARCH},
		Memory:   Memory{TotalBytes: 196562288 * 1024},
		DMI:      DMI{Vendor: "Dell Inc.", Product: "PowerEdge R640", Serial: "7XK9Q03", UUID: "4c4c4544-0058-4b10-8039-b7c04f513033"},
		Firmware: Firmware{BootMode: "bios"},
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("Collect(system) mismatch (-want +got):\n%s", diff)
	}
}

// Without sysfs topology the sockets come from cpuinfo's physical id; without
// DMI, meminfo or cpuinfo the fields stay empty and Collect still succeeds.
func TestCollectSystemSparse(t *testing.T) {
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	inv, err := Collect(context.Background(), Options{SysRoot: sys, ProcRoot: "testdata/proc"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.CPU.Sockets != 2 || inv.CPU.Count != 4 {
		t.Errorf("CPU = %+v, want 4 CPUs on 2 sockets from cpuinfo", inv.CPU)
	}
	inv, err = Collect(context.Background(), Options{SysRoot: sys, ProcRoot: t.TempDir()})
	if err != nil {
		t.Fatalf("Collect without /proc files: %v", err)
	}
	want := &Inventory{Disks: []Disk{}, NICs: []NIC{}, CPU: CPU{Arch: runtime.GOARCH}, Firmware: Firmware{BootMode: "bios"}}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("Collect(empty) mismatch (-want +got):\n%s", diff)
	}
}
