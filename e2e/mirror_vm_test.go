//go:build vm

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

// degraded matches the kernel's and mdadm's lines for a RAID-1 running on
// one of its two disks.
var degraded = regexp.MustCompile(`md/raid1:md\d+: active with 1 out of 2 mirrors|has been started with 1 drive \(out of 2\)`)

// TestVMUEFIMirroredBoot provisions a two-disk UEFI node with mirrored
// /boot and root and an ESP on each disk, reprovisions it from a second
// ramdisk boot on the same disks and NVRAM, then boots it three times
// from the host, sharing those boots with the other UEFI checks:
//
//   - boot 0, both disks, (a copy of) the NVRAM both rounds wrote: in the OS,
//     efibootmgr -v lists exactly one entry per ESP, booting shim or grub
//     from that ESP's current partition GUID, none left from round 1;
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
		t.Skip("set IMPRINT_VM_SLOW=1 for the mirrored UEFI / Secure Boot scenario (two provisions and three OS boots, about 15 min)")
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

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()

	// Round 1: provision through the agent, the ramdisk booted by OVMF.
	vm := vmtest.Start(t, vmtest.Options{Firmware: vmtest.FirmwareUEFI, BootTimeout: 420 * time.Second,
		Disks: []vmtest.Disk{{Size: 3 << 30, Serial: "IMPRINT-VDA"}, {Size: 3 << 30, Serial: "IMPRINT-VDB"}}})
	t.Logf("phase bootstrap (UEFI): %s", time.Since(t0).Round(time.Second))
	provisionMirror(t, ctx, vm, doc, false)
	t.Logf("phase round 1 provisioned: %s", time.Since(t0).Round(time.Second))
	vda, vdb := vm.Disks[0], vm.Disks[1]
	firstESPs := espGUIDs(t, vda, vdb)

	// Round 2: the same machine (disks and NVRAM) boots the ramdisk again
	// and is reprovisioned: its new ESPs (new partition GUIDs) get their
	// entries, the old ones (pointing at the partitions just wiped) go.
	vm2 := vmtest.Start(t, vmtest.Options{Firmware: vmtest.FirmwareUEFI, BootTimeout: 420 * time.Second, Vars: vm.Vars,
		Disks: []vmtest.Disk{{Path: vda, Serial: "IMPRINT-VDA"}, {Path: vdb, Serial: "IMPRINT-VDB"}}})
	provisionMirror(t, ctx, vm2, doc, true)
	t.Logf("phase round 2 (reprovision) provisioned: %s", time.Since(t0).Round(time.Second))
	esps := espGUIDs(t, vda, vdb)
	for i := range esps {
		if esps[i] == firstESPs[i] {
			t.Errorf("disk %d: ESP partition GUID %s unchanged by the reprovision: the stale-entry check proves nothing", i, esps[i])
		}
	}

	// Boot 0: both disks, the NVRAM both rounds wrote; in the provisioned
	// OS, efibootmgr -v lists one entry per ESP, booting shim from that
	// ESP as it is now, and none left from round 1.
	// A copy of the NVRAM: OVMF adds its own entries for the disks it
	// sees at boot and reorders BootOrder by the disks' bootindex, and
	// boot 1 must find the NVRAM as the agent left it.
	vars0 := filepath.Join(t.TempDir(), "OVMF_VARS-boot0.fd")
	if b, err := os.ReadFile(vm.Vars); err != nil || os.WriteFile(vars0, b, 0o644) != nil {
		t.Fatalf("copy the NVRAM %s: %v", vm.Vars, err)
	}
	tb := time.Now()
	n0 := vmtest.Start(t, vmtest.Options{DiskBoot: true, Firmware: vmtest.FirmwareUEFI, Vars: vars0,
		Disks: []vmtest.Disk{{Path: vda}, {Path: vdb}}, Ready: " login:", BootTimeout: 20 * time.Minute})
	efi := sshRetry(t, ctx, n0, key, "efibootmgr -v")
	t.Logf("phase boot both disks, ssh: %s; efibootmgr -v:\n%s", time.Since(tb).Round(time.Second), efi)
	checkMirrorNVRAM(t, efi, map[string]string{"vda": esps[0], "vdb": esps[1]}, firstESPs)
	n0.Stop()

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

// provisionMirror posts doc to the ramdisk's agent, waits for the job,
// reboots the node and waits for QEMU to exit (-no-reboot).
func provisionMirror(t *testing.T, ctx context.Context, vm *vmtest.VM, doc []byte, force bool) {
	t.Helper()
	c := vm.Client
	plan, err := c.Plan(ctx, doc)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.BootMode != "uefi" || len(plan.ESPs()) != 2 || len(plan.MDs) != 2 {
		t.Fatalf("plan: boot mode %q, ESPs %v, mds %v; want uefi, 2, 2", plan.BootMode, plan.ESPs(), plan.MDs)
	}
	t1 := time.Now()
	r, err := c.Provision(ctx, doc, force)
	if err != nil {
		t.Fatalf("provision (force %v): %v", force, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	st, err := c.Wait(wctx, r.ID, 3*time.Second)
	cancel()
	if err != nil {
		t.Fatalf("provision (force %v): %v\n%s", force, err, vm.Tail(60))
	}
	if st.State != api.StateSucceeded {
		t.Fatalf("provision (force %v) failed: %+v\n%s", force, st.Error, vm.Tail(150))
	}
	t.Logf("phase provision (force %v): %s", force, time.Since(t1).Round(time.Second))
	for _, l := range strings.Split(vm.Console(), "\n") {
		if strings.Contains(l, "NVRAM") || strings.Contains(l, "grub installed") {
			t.Logf("agent: %s", strings.TrimSpace(l))
		}
	}
	if err := c.Reboot(ctx); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	if err := vm.WaitExit(120 * time.Second); err != nil {
		t.Fatalf("bootstrap did not reboot: %v\n%s", err, vm.Tail(40))
	}
}

// espGUIDs checks both disks carry a FAT32 ESP at partition 2 and RAID
// members at 3 and 4, and returns the ESPs' partition GUIDs.
func espGUIDs(t *testing.T, imgs ...string) []string {
	t.Helper()
	var out []string
	for _, img := range imgs {
		parts, err := vmtest.Partitions(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) < 4 || !strings.EqualFold(parts[1].Type, partition.GUIDEFISystem) || !strings.EqualFold(parts[2].Type, partition.GUIDLinuxRAID) {
			t.Fatalf("%s: partitions %+v, want an ESP at 2 and RAID members at 3, 4", img, parts)
		}
		if p, err := vmtest.Probe(img, parts[1].StartBytes); err != nil || p["TYPE"] != "vfat" || p["VERSION"] != "FAT32" {
			t.Errorf("%s: ESP holds %v (%v), want FAT32", img, p, err)
		}
		out = append(out, strings.ToLower(parts[1].GUID))
	}
	return out
}

// checkMirrorNVRAM checks efibootmgr -v output: for each disk exactly one
// "debian (<disk>)" entry, booting shim or grub from partition 2 by its
// current GUID; no entry names a GUID of stale (the partitions a
// reprovision wiped).
func checkMirrorNVRAM(t *testing.T, efibootmgr string, esps map[string]string, stale []string) {
	t.Helper()
	lines := strings.Split(efibootmgr, "\n")
	for disk, guid := range esps {
		var got []string
		for _, l := range lines {
			if strings.Contains(l, "debian ("+disk+")") {
				got = append(got, l)
			}
		}
		if len(got) != 1 {
			t.Errorf("efibootmgr: %d entries for %s, want 1: %q", len(got), disk, got)
			continue
		}
		e := strings.ToLower(got[0])
		if !strings.Contains(e, "hd(2,gpt,"+guid+",") {
			t.Errorf("efibootmgr: %s's entry %q does not name its ESP now (partition 2, GUID %s)", disk, got[0], guid)
		}
		if !strings.Contains(e, `\efi\debian\shimx64.efi`) && !strings.Contains(e, `\efi\debian\grubx64.efi`) {
			t.Errorf("efibootmgr: %s's entry %q boots neither shim nor grub", disk, got[0])
		}
	}
	for _, g := range stale {
		if strings.Contains(strings.ToLower(efibootmgr), g) {
			t.Errorf("efibootmgr: an entry still names the wiped ESP %s", g)
		}
	}
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
