//go:build vm

package vmtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestVMUEFIBootstrap boots the bootstrap ramdisk under OVMF (the kernel's
// EFI stub) and checks that the agent knows it: the inventory reports the
// boot mode, Secure Boot off, and the NVRAM's entries, read from the
// efivarfs the ramdisk mounted.
func TestVMUEFIBootstrap(t *testing.T) {
	vm := Start(t, Options{Firmware: FirmwareUEFI, Disks: []Disk{{Size: 1 << 30, Serial: "IMPRINT-VDA"}}, BootTimeout: 300 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inv, err := vm.Client.Inventory(ctx)
	if err != nil {
		t.Fatalf("GET /v1/inventory: %v", err)
	}
	fw := inv.Firmware
	t.Logf("firmware: %+v", fw)
	for _, e := range fw.BootEntries {
		t.Logf("  Boot%s %q %s", e.Num, e.Description, e.DevicePath)
	}
	if fw.BootMode != "uefi" || fw.Error != "" {
		t.Errorf("boot mode %q (error %q), want uefi", fw.BootMode, fw.Error)
	}
	if fw.SecureBoot == nil || *fw.SecureBoot {
		t.Errorf("SecureBoot %v, want known and off (OVMF_CODE_4M.fd)", fw.SecureBoot)
	}
	if len(fw.BootEntries) == 0 || len(fw.BootOrder) == 0 {
		t.Errorf("no NVRAM boot entries or BootOrder read")
	}
	if c := vm.Console(); !strings.Contains(c, "step=efivars") || !strings.Contains(c, "fstype=efivarfs") {
		t.Errorf("the console does not show efivarfs mounted by the efivars step")
	}
}
