//go:build vm

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// TestVMEndToEnd is the whole loop under TCG: PXE → agent → provision with
// the image `make image` built → flip → reboot → grub → the provisioned OS
// → cloud-init → phone-home, then reprovisioning, and checks from the
// phone-home, from an SSH login with the provisioned key and from the disk
// that what the controller's provision.json asked for is what the node is.
// The node's QEMU is owned by its ipmi_sim BMC: the controller powers it
// on through the BMC, the second round is the operator's `imprint nodes
// reprovision --reason` (a power cycle through the BMC), and ipmitool
// agrees with the controller at each step (bmcOperator). The first round
// has a second node provisioned by the same controller at the same time
// (ExtraNodes), and the rounds write a config-2 and a NoCloud configdrive.
func TestVMEndToEnd(t *testing.T) {
	im := vmtest.Require(t)
	log := testLogger(t)
	ti := vmtest.RequireTargetImage(t, log)
	t.Logf("target image %s (built now: %v, %v)", ti.Dir, ti.Built, ti.Duration)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var tl strings.Builder
	// one round with each configdrive kind the agent writes
	formats := []string{"config2-vfat", "nocloud-vfat"}
	images := TargetImages(ti)
	op := newBMCOperator(t, dir, "e2e-node")
	res, err := Run(ctx, Config{Dir: dir, Kernel: im.Kernel, Initrd: im.Initrd, Images: images,
		Hostname: "e2e-node", Out: &tl, Logger: log, ConfigdriveFormats: formats, ExtraNodes: 1,
		BMC: true, Reprovision: op.reprovision})
	t.Logf("timeline:\n%s", tl.String())
	op.log(res)
	if err != nil {
		t.Fatal(err)
	}
	checkConcurrentNodes(t, res, images)
	op.check(res)
	if len(res.Rounds) != 2 {
		t.Fatalf("%d rounds, want 2 (provision, reprovision)", len(res.Rounds))
	}
	for i, r := range res.Rounds {
		ph, o := r.PhoneHome, r.Observed
		if ph.Hostname != "e2e-node" && !strings.HasPrefix(ph.FQDN, "e2e-node.") {
			t.Errorf("round %d: phone-home hostname %q fqdn %q, want e2e-node", i+1, ph.Hostname, ph.FQDN)
		}
		if len(ph.PubKeys) == 0 {
			t.Errorf("round %d: phone-home carried no SSH host keys", i+1)
		}
		// The login itself proves the authorized key came from provision.json.
		if o.Hostname != "e2e-node" {
			t.Errorf("round %d: hostname %q over ssh, want e2e-node", i+1, o.Hostname)
		}
		// Every module of the first boot ran: a failed one (an "error")
		// is a node that half-applied its configuration.
		if o.CloudInit != "done" {
			t.Errorf("round %d: cloud-init status %q, want done; cloud-init.log:\n%s", i+1, o.CloudInit, strings.Join(o.CloudInitProblems, "\n"))
		}
		if o.SystemType != "target" {
			t.Errorf("round %d: /etc/nailgun_systemtype %q, want target", i+1, o.SystemType)
		}
		wantDS := map[string]string{"config2-vfat": "DataSourceConfigDrive", "nocloud-vfat": "DataSourceNoCloud"}[formats[i]]
		if !strings.Contains(o.Datasource, wantDS) {
			t.Errorf("round %d (%s configdrive): cloud-init read %q, want %s", i+1, formats[i], o.Datasource, wantDS)
		}
		if i < len(res.Documents) && !strings.Contains(string(res.Documents[i]), `"configdrive_format": "`+formats[i]+`"`) {
			t.Errorf("round %d: provision.json lacks configdrive_format %s", i+1, formats[i])
		}
		if !hasPrefixIn(o.LogicalVolumes, "os/root ") || !hasPrefixIn(o.LogicalVolumes, "os/swap ") {
			t.Errorf("round %d: LVs %q, want os/root and os/swap (Fuel's os VG)", i+1, o.LogicalVolumes)
		}
		if !hasPrefixIn(o.Mounts, "/ /dev/mapper/os-root ") {
			t.Errorf("round %d: mounts %q, want / on /dev/mapper/os-root", i+1, o.Mounts)
		}
		if !hasPrefixIn(o.Mounts, "/boot /dev/") {
			t.Errorf("round %d: mounts %q, want a /boot partition", i+1, o.Mounts)
		}
	}
	if !res.Rounds[1].PhoneHome.Time.After(res.Rounds[0].PhoneHome.Time) {
		t.Errorf("the second round's phone-home (%v) is not after the first's (%v)", res.Rounds[1].PhoneHome.Time, res.Rounds[0].PhoneHome.Time)
	}
	// From the disk, on the host: the GPT the plan asked for.
	parts, err := vmtest.Partitions(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	checkDiskLayout(t, res, parts)
}

// TestVMEndToEndUEFI is the same loop for a UEFI node: OVMF, iPXE's EFI
// driver, the agent in UEFI mode (efivarfs), an ESP with shim and grub,
// the flip through iPXE's exit, the OS booted by the firmware's NVRAM
// entry; the second round reprovisions and must leave one entry per ESP.
func TestVMEndToEndUEFI(t *testing.T) {
	im := vmtest.Require(t)
	log := testLogger(t)
	ti := vmtest.RequireTargetImage(t, log)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var tl strings.Builder
	images := TargetImages(ti)
	res, err := Run(ctx, Config{Dir: dir, Kernel: im.Kernel, Initrd: im.Initrd, Images: images,
		Hostname: "e2e-uefi", MAC: "52:54:00:12:34:58", Firmware: vmtest.FirmwareUEFI, Out: &tl, Logger: log})
	t.Logf("timeline:\n%s", tl.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 {
		t.Fatalf("%d rounds, want 2 (provision, reprovision)", len(res.Rounds))
	}
	for i, r := range res.Rounds {
		o := r.Observed
		t.Logf("round %d: boot mode %s, %s, BootOrder %s, entries:\n%s", i+1, o.BootMode, o.SecureBoot, o.BootOrder, strings.Join(o.BootEntries, "\n"))
		if o.Hostname != "e2e-uefi" || o.CloudInit != "done" {
			t.Errorf("round %d: hostname %q, cloud-init %q; want e2e-uefi, done", i+1, o.Hostname, o.CloudInit)
		}
		if o.BootMode != "uefi" {
			t.Errorf("round %d: the OS was booted %q, want uefi", i+1, o.BootMode)
		}
		if !hasPrefixIn(o.Mounts, "/boot /dev/") {
			t.Errorf("round %d: mounts %q, want a /boot partition", i+1, o.Mounts)
		}
		checkNVRAM(t, i+1, o, []string{"vda"})
	}
	parts, err := vmtest.Partitions(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 || !strings.EqualFold(parts[1].Type, partition.GUIDEFISystem) {
		t.Errorf("partition 2 of the disk: %+v, want the EFI System Partition", parts)
	}
}

// checkNVRAM: one NVRAM entry per ESP disk, booting shim from a GPT
// partition, and the network first in BootOrder.
func checkNVRAM(t *testing.T, round int, o Observed, disks []string) {
	t.Helper()
	for _, d := range disks {
		n := 0
		for _, e := range o.BootEntries {
			if strings.Contains(e, "debian ("+d+")") {
				n++
				if !strings.Contains(e, "HD(2,GPT,") || !strings.Contains(strings.ToLower(e), `\efi\debian\shimx64.efi`) {
					t.Errorf("round %d: entry %q does not boot shim from partition 2", round, e)
				}
			}
		}
		if n != 1 {
			t.Errorf("round %d: %d NVRAM entries for %s, want 1:\n%s", round, n, d, strings.Join(o.BootEntries, "\n"))
		}
	}
	first, _, _ := strings.Cut(o.BootOrder, ",")
	for _, e := range o.BootEntries {
		if strings.HasPrefix(e, "Boot"+first) && !strings.Contains(e, "MAC(") {
			t.Errorf("round %d: BootOrder %s starts with %q, want the network", round, o.BootOrder, e)
		}
	}
}

func hasPrefixIn(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// checkDiskLayout re-plans the last provision.json the controller posted
// for the disk the node had (vda, its size) and checks that the GPT on the
// image is that plan to the MiB: the layout came from the document.
func checkDiskLayout(t *testing.T, res *Result, parts []vmtest.Partition) {
	t.Helper()
	if len(res.Documents) == 0 {
		t.Fatal("the controller posted no provision.json")
	}
	doc, err := provision.ParseAndValidate(res.Documents[len(res.Documents)-1])
	if err != nil {
		t.Fatalf("the posted provision.json: %v", err)
	}
	st, err := os.Stat(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	dev := partition.Device{Name: "vda", Path: "/dev/vda", SizeMiB: st.Size() >> 20, LogicalSectorSize: 512,
		Links: []string{"/dev/disk/by-id/virtio-" + diskSerial}}
	plan, err := partition.NewPlan(doc, []partition.Device{dev}, partition.DefaultPlanOptions())
	if err != nil {
		t.Fatalf("re-planning the posted provision.json: %v", err)
	}
	if len(plan.Disks) != 1 {
		t.Fatalf("plan has %d disks, want 1", len(plan.Disks))
	}
	want := plan.Disks[0].Partitions
	if len(parts) != len(want) {
		t.Fatalf("disk has %d partitions, the plan %d:\n disk %+v\n plan %+v", len(parts), len(want), parts, want)
	}
	for i, p := range want {
		got := parts[i]
		if got.StartBytes != p.BeginMiB<<20 || got.SizeBytes != (p.EndMiB-p.BeginMiB)<<20 || !strings.EqualFold(got.Type, p.TypeGUID) {
			t.Errorf("partition %d: disk [%d, +%d) type %s, plan [%d MiB, %d MiB) type %s (%s)", p.Number,
				got.StartBytes, got.SizeBytes, got.Type, p.BeginMiB, p.EndMiB, p.TypeGUID, p.Purpose)
		}
	}
	// The LVs the node has are the plan's, at its sizes (lvcreate rounds
	// up to whole extents: a few MiB).
	for i, r := range res.Rounds {
		have := map[string]int64{}
		for _, s := range r.Observed.LogicalVolumes {
			var name string
			var mib int64
			if _, err := fmt.Sscanf(s, "%s %d", &name, &mib); err == nil {
				have[name] = mib
			}
		}
		for _, lv := range plan.LVs {
			mib, ok := have[lv.VG+"/"+lv.Name]
			if !ok || mib < lv.SizeMiB || mib > lv.SizeMiB+64 {
				t.Errorf("round %d: the plan's LV %s/%s of %d MiB; the node has %q", i+1, lv.VG, lv.Name, lv.SizeMiB, r.Observed.LogicalVolumes)
			}
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// checkConcurrentNodes: the second node was provisioned by the same
// controller while the main node was (their discovered→provisioned spans
// overlap), and the controller's /metrics, scraped over HTTP after the
// first round, counted both provisions and both downloads.
func checkConcurrentNodes(t *testing.T, res *Result, images []controller.Image) {
	t.Helper()
	if len(res.Extra) != 1 {
		t.Fatalf("%d extra nodes, want 1", len(res.Extra))
	}
	x := res.Extra[0]
	if x.Provisioned.Time.IsZero() || x.Local.Time.IsZero() {
		t.Fatalf("second node %s: provisioned %v, local boot %v", x.Hostname, x.Provisioned.Time, x.Local.Time)
	}
	if !(x.Discovered.Time.Before(res.MainProvisioned.Time) && res.MainDiscovered.Time.Before(x.Provisioned.Time)) {
		t.Errorf("not concurrent: main node %s→%s, second node %s→%s", res.MainDiscovered.Time.Format(time.TimeOnly), res.MainProvisioned.Time.Format(time.TimeOnly),
			x.Discovered.Time.Format(time.TimeOnly), x.Provisioned.Time.Format(time.TimeOnly))
	}
	t.Logf("main node provisioning %s→%s, second node %s→%s", res.MainDiscovered.Time.Format(time.TimeOnly), res.MainProvisioned.Time.Format(time.TimeOnly),
		x.Discovered.Time.Format(time.TimeOnly), x.Provisioned.Time.Format(time.TimeOnly))
	m := res.Metrics
	if n := m.Histogram("imprint_controller_provision_duration_seconds", map[string]string{"outcome": "succeeded"}).Count; n != 2 {
		t.Errorf("/metrics: %d successful provisions, want 2", n)
	}
	var size int64
	for _, im := range images {
		if st, err := os.Stat(im.Path); err == nil {
			size += st.Size()
		}
	}
	if v := m.Value("imprint_controller_served_bytes_total", map[string]string{"kind": "image"}); v < float64(2*size) {
		t.Errorf("/metrics: %v image bytes served, want at least 2 × %d", v, size)
	}
	if v := m.Value("imprint_controller_nodes", map[string]string{"state": "os-up"}); v != 1 {
		t.Errorf("/metrics: %v nodes os-up, want 1 (the main node)", v)
	}
	if v := m.Value("imprint_controller_nodes", map[string]string{"state": "pxe-local"}); v != 1 {
		t.Errorf("/metrics: %v nodes at pxe-local, want 1 (the second node, stopped there)", v)
	}
}
