package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/inventory"
)

// miniSysfs makes a sysfs tree with one loop device (left out of the
// listing) and one virtio disk, and its device nodes as files.
func miniSysfs(t *testing.T) (sys, dev string) {
	t.Helper()
	sys, dev = t.TempDir(), t.TempDir()
	write := func(p, v string) {
		full := filepath.Join(sys, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		full := filepath.Join(sys, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	write("devices/pci0000:00/uevent", "")
	write("devices/pci0000:00/0000:00:05.0/uevent", "DRIVER=virtio-pci")
	link("devices/pci0000:00/0000:00:05.0/subsystem", "../../../bus/pci")
	write("devices/pci0000:00/0000:00:05.0/virtio3/uevent", "DRIVER=virtio_blk")
	link("devices/pci0000:00/0000:00:05.0/virtio3/subsystem", "../../../../bus/virtio")
	vdb := "devices/pci0000:00/0000:00:05.0/virtio3/block/vdb"
	write(vdb+"/uevent", "MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk")
	link(vdb+"/subsystem", "../../../../../../class/block")
	write(vdb+"/size", "2048")
	write(vdb+"/serial", "data-1")
	write(vdb+"/queue/logical_block_size", "512")
	write(vdb+"/queue/physical_block_size", "512")
	link("block/vdb", "../"+vdb)
	write("devices/virtual/block/loop3/uevent", "MAJOR=7\nMINOR=3\nDEVNAME=loop3\nDEVTYPE=disk")
	write("devices/virtual/block/loop3/size", "2048")
	link("block/loop3", "../devices/virtual/block/loop3")
	for _, n := range []string{"vdb", "loop3"} {
		if err := os.WriteFile(filepath.Join(dev, n), make([]byte, 2048*512), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sys, dev
}

func TestInventoryCommand(t *testing.T) {
	sys, dev := miniSysfs(t)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdout: &out, stderr: &errb}, append([]string{"imprint", "inventory"}, args...))
		return code, out.String(), errb.String()
	}
	code, out, errs := run("--sysfs", sys, "--dev", dev, "--proc", t.TempDir())
	if code != 0 {
		t.Fatalf("inventory: exit %d, stderr %q", code, errs)
	}
	var inv inventory.Inventory
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("inventory output is not JSON: %v\n%s", err, out)
	}
	if len(inv.Disks) != 1 || inv.Disks[0].Name != "vdb" || inv.Disks[0].SizeBytes != 1<<20 {
		t.Fatalf("inventory disks = %+v, want vdb of 1 MiB only", inv.Disks)
	}
	wantIDs := "/dev/disk/by-id/virtio-data-1 /dev/disk/by-path/pci-0000:00:05.0 /dev/disk/by-path/virtio-pci-0000:00:05.0"
	if got := strings.Join(append(inv.Disks[0].ByID, inv.Disks[0].ByPath...), " "); got != wantIDs {
		t.Errorf("vdb names = %q, want %q", got, wantIDs)
	}

	// Named devices: described even when left out of the listing.
	code, out, errs = run("--sysfs", sys, "/dev/loop3", "--dev", dev, "vdb", "--compact")
	if code != 0 {
		t.Fatalf("inventory loop3 vdb: exit %d, stderr %q", code, errs)
	}
	var disks []inventory.Disk
	if err := json.Unmarshal([]byte(out), &disks); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("inventory loop3 vdb --compact: %v\n%s", err, out)
	}
	if len(disks) != 2 || disks[0].Name != "loop3" || disks[1].Name != "vdb" {
		t.Errorf("described %+v, want loop3 then vdb", disks)
	}

	if code, _, errs := run("--sysfs", sys, "sdq"); code != 2 || !strings.Contains(errs, `"sdq"`) || !strings.Contains(errs, "no such block device") {
		t.Errorf("unknown device: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := run("--sysfs", t.TempDir()); code != 1 || !strings.Contains(errs, "list disks") {
		t.Errorf("sysfs without block/: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := run("--bogus"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

// TestInventoryNailgunFormat: --format nailgun prints nailgun-agent's
// discovery document for the same disks, the PXE MAC from BOOTIF.
func TestInventoryNailgunFormat(t *testing.T) {
	sys, dev := miniSysfs(t)
	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "cmdline"), []byte("console=ttyS0 BOOTIF=01-52-54-00-AA-BB-CC\n"), 0o644)
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), &cmdEnv{stdout: &out, stderr: &errb},
		[]string{"imprint", "inventory", "--format", "nailgun", "--sysfs", sys, "--dev", dev, "--proc", proc})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var d inventory.NailgunDiscovery
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if !d.IsAgent || len(d.Meta.Disks) != 1 || d.Meta.Disks[0].Name != "vdb" || d.Meta.Disks[0].Size != 1<<20 ||
		d.Meta.Disks[0].Disk != "disk/by-path/pci-0000:00:05.0" || d.MAC != "52:54:00:aa:bb:cc" {
		t.Errorf("discovery: %s", out.String())
	}
	for _, args := range [][]string{{"--format", "yaml"}, {"--format", "nailgun", "vdb"}} {
		errb.Reset()
		if code := dispatch(context.Background(), &cmdEnv{stdout: &out, stderr: &errb}, append([]string{"imprint", "inventory"}, args...)); code != 2 || !strings.Contains(errb.String(), "--format") {
			t.Errorf("%v: exit %d, %s", args, code, errb.String())
		}
	}
	for in, want := range map[string]string{"01-52-54-00-aa-bb-cc": "52:54:00:aa:bb:cc", "52:54:00:AA:BB:CC": "52:54:00:aa:bb:cc", "": "", "01-zz": ""} {
		if got := bootifMAC(in); got != want {
			t.Errorf("bootifMAC(%q) = %q, want %q", in, got, want)
		}
	}
}
