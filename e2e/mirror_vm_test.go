//go:build vm

package e2e

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

// degraded matches the kernel's and mdadm's lines for a RAID-1 running on
// one of its two disks.
var degraded = regexp.MustCompile(`md/raid1:md\d+: active with 1 out of 2 mirrors|has been started with 1 drive \(out of 2\)`)

// TestVMUEFIMirroredBoot provisions a two-disk UEFI node with mirrored
// /boot and root and an ESP on each disk, then boots it twice from the
// host with one disk detached each time, sharing those boots with the
// other UEFI checks:
//
//   - boot 1, vdb alone, OVMF with the NVRAM the agent wrote: the firmware
//     starts the "debian (vdb)" entry and the node reaches the login prompt
//     with its arrays degraded (console; the configdrive is on vda, so no
//     network and no login on this boot);
//   - boot 2, vda alone, OVMF's Secure Boot build with Microsoft's keys
//     and a fresh NVRAM (no entry: the removable path EFI/BOOT/BOOTX64.EFI,
//     Debian's signed shim, signed grub, signed kernel): login prompt,
//     arrays degraded, and mokutil --sb-state says enabled.
func TestVMUEFIMirroredBoot(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 for the mirrored UEFI / Secure Boot scenario (a provision and two OS boots, about 5 min)")
	}
	log := testLogger(t)
	t0 := time.Now()
	ti := vmtest.RequireTargetImage(t, log)
	srv := vmtest.NewHostServer(t)
	srv.File("/images/root.img.gz", ti.Root)
	srv.File("/images/boot.img.gz", ti.Boot)
	key, pub, err := vmtest.NewSSHKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	doc := mirrorDoc(t, srv.GuestURL("/images/root.img.gz"), srv.GuestURL("/images/boot.img.gz"), pub)

	// Provision through the agent, the ramdisk booted by OVMF.
	vm := vmtest.Start(t, vmtest.Options{Firmware: vmtest.FirmwareUEFI, BootTimeout: 420 * time.Second,
		Disks: []vmtest.Disk{{Size: 3 << 30, Serial: "IMPRINT-VDA"}, {Size: 3 << 30, Serial: "IMPRINT-VDB"}}})
	t.Logf("phase bootstrap (UEFI): %s", time.Since(t0).Round(time.Second))
	c := vm.Client
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	plan, err := c.Plan(ctx, doc)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.BootMode != "uefi" || len(plan.ESPs()) != 2 || len(plan.MDs) != 2 {
		t.Fatalf("plan: boot mode %q, ESPs %v, mds %v; want uefi, 2, 2", plan.BootMode, plan.ESPs(), plan.MDs)
	}
	vm.ProvisionAndReboot(ctx, t, doc, 20*time.Minute)
	for _, l := range strings.Split(vm.Console(), "\n") {
		if strings.Contains(l, "NVRAM") || strings.Contains(l, "grub installed") {
			t.Logf("agent: %s", strings.TrimSpace(l))
		}
	}
	vda, vdb := vm.Disks[0], vm.Disks[1]
	for _, img := range []string{vda, vdb} {
		parts, err := vmtest.Partitions(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) < 4 || !strings.EqualFold(parts[1].Type, partition.GUIDEFISystem) || !strings.EqualFold(parts[2].Type, partition.GUIDLinuxRAID) {
			t.Errorf("%s: partitions %+v, want an ESP at 2 and RAID members at 3, 4", img, parts)
		}
		if p, err := vmtest.Probe(img, parts[1].StartBytes); err != nil || p["TYPE"] != "vfat" || p["VERSION"] != "FAT32" {
			t.Errorf("%s: ESP holds %v (%v), want FAT32", img, p, err)
		}
	}

	// Boot 1: vdb alone, the NVRAM the agent wrote.
	t2 := time.Now()
	n1 := vmtest.Start(t, vmtest.Options{DiskBoot: true, Firmware: vmtest.FirmwareUEFI, Vars: vm.Vars,
		Disks: []vmtest.Disk{{Path: vdb}}, Ready: " login:", BootTimeout: 20 * time.Minute})
	t.Logf("phase boot vdb alone to login: %s", time.Since(t2).Round(time.Second))
	con1 := n1.Console()
	if !degraded.MatchString(con1) {
		t.Errorf("boot from vdb alone: no degraded-array line on the console")
	}
	// The firmware booted the agent's NVRAM entry for vdb's ESP (vda's
	// points at a disk that is not there). No login: the configdrive is on
	// vda, so cloud-init configures no network on this boot.
	if !strings.Contains(con1, `BdsDxe: starting Boot`) || !strings.Contains(con1, `"debian (vdb)" from HD(2,GPT,`) {
		t.Errorf("boot from vdb alone: OVMF did not start the \"debian (vdb)\" NVRAM entry")
	}
	n1.Stop()

	// Boot 2: vda alone, Secure Boot, a fresh NVRAM.
	t3 := time.Now()
	n2 := vmtest.Start(t, vmtest.Options{DiskBoot: true, Firmware: vmtest.FirmwareSecureBoot,
		Disks: []vmtest.Disk{{Path: vda}}, Ready: " login:", BootTimeout: 20 * time.Minute})
	t.Logf("phase Secure Boot, vda alone, to login: %s", time.Since(t3).Round(time.Second))
	con := n2.Console()
	if !strings.Contains(con, "Secure boot enabled") {
		t.Errorf("Secure Boot: the kernel did not report \"Secure boot enabled\"")
	}
	if !degraded.MatchString(con) {
		t.Errorf("boot from vda alone: no degraded-array line on the console")
	}
	out := sshRetry(t, ctx, n2, key, "mokutil --sb-state; cat /proc/mdstat")
	t.Logf("vda alone, Secure Boot:\n%s", out)
	if !strings.Contains(out, "SecureBoot enabled") {
		t.Errorf("mokutil --sb-state: want SecureBoot enabled")
	}
	if strings.Count(out, "[_U]")+strings.Count(out, "[U_]") != 2 {
		t.Errorf("/proc/mdstat: want both arrays running degraded")
	}
	t.Logf("total: %s", time.Since(t0).Round(time.Second))
}

// sshRetry runs command over ssh, retrying while sshd and cloud-init's
// network come up (at most 12 min under TCG).
func sshRetry(t *testing.T, ctx context.Context, vm *vmtest.VM, key, command string) string {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(12 * time.Minute); ; {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		out, err = vm.SSH(sctx, key, command)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, vm.Tail(40))
	}
	return out
}
