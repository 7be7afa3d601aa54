//go:build vm

package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// keepDoc is realImageDoc on a 4 GiB disk with a /var/keep partition and an
// os/data LV (/srv/data) beside root and swap; keep marks both keep_data;
// keepMiB is /var/keep's size (a different one moves the partition).
func keepDoc(t *testing.T, base []byte, keep bool, keepMiB int) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(base, &d); err != nil {
		t.Fatal(err)
	}
	pm := d["ks_meta"].(map[string]any)["pm_data"].(map[string]any)
	pm["ks_spaces"] = []any{
		map[string]any{
			"type": "disk", "id": "vda", "name": "vda", "size": 4096, "free_space": 3500, "bootable": true, "extra": []any{},
			"volumes": []any{
				map[string]any{"type": "boot", "size": 300},
				map[string]any{"type": "partition", "mount": "/boot", "size": 200, "file_system": "ext2", "name": "Boot"},
				map[string]any{"type": "partition", "mount": "/var/keep", "size": keepMiB, "file_system": "ext4", "name": "Keep", "keep_data": keep},
				map[string]any{"type": "lvm_meta_pool", "size": 0},
				map[string]any{"type": "pv", "vg": "os", "size": 2700, "lvm_meta_size": 64},
			},
		},
		map[string]any{
			"type": "vg", "id": "os", "label": "Base System", "min_size": 2496, "_allocate_size": "min",
			"volumes": []any{
				map[string]any{"type": "lv", "name": "root", "mount": "/", "size": 2048, "file_system": "ext4"},
				map[string]any{"type": "lv", "name": "swap", "mount": "swap", "size": 192, "file_system": "swap"},
				map[string]any{"type": "lv", "name": "data", "mount": "/srv/data", "size": 256, "file_system": "ext4", "keep_data": keep},
			},
		},
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVMKeepData: the real image provisioned with a /var/keep partition
// and an os/data LV; from the host, a marker file is written into each of
// them and into the non-kept /boot and root; in a second bootstrap boot a
// keep_data document that would move /var/keep is refused (422, the disk's
// sha256 unchanged) and the same layout with keep_data on both provisions
// again: the kept filesystems still hold their markers (same UUIDs), /boot
// and root are fresh; the disk then boots and the OS mounts the kept
// volumes with their markers.
func TestVMKeepData(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1: provisions the real image twice and boots it (about 20 min)")
	}
	testenv.RequireTool(t, "debugfs", "blkid")
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t0 := time.Now()
	ri := serveRealImage(t, log)
	ph, key := ri.PhoneHome, ri.Key
	base := ri.Doc
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()

	provision := func(vm *vmtest.VM, doc []byte) { t.Helper(); vm.ProvisionAndReboot(ctx, t, doc, 15*time.Minute) }

	// 1. first provision: the layout without keep_data
	vm := vmtest.Start(t, vmtest.Options{Disks: []vmtest.Disk{{Size: 4 << 30, Serial: "IMPRINT-VDA"}}, BootTimeout: 300 * time.Second})
	provision(vm, keepDoc(t, base, false, 100))
	disk := vm.Disks[0]

	// 2. markers, from the host
	parts, err := vmtest.Partitions(disk)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 6 {
		t.Fatalf("partitions %+v, want bios_grub, UEFI, /boot, /var/keep, PV, configdrive", parts)
	}
	bootOff, keepOff, pvOff := parts[2].StartBytes, parts[3].StartBytes, parts[4].StartBytes
	dataOff, _, err := vmtest.LVExtent(disk, pvOff, "os", "data")
	if err != nil {
		t.Fatal(err)
	}
	rootOff, _, err := vmtest.LVExtent(disk, pvOff, "os", "root")
	if err != nil {
		t.Fatal(err)
	}
	vols := []struct {
		name string
		off  int64
		kept bool
	}{{"/boot", bootOff, false}, {"/var/keep", keepOff, true}, {"os/data", dataOff, true}, {"os/root", rootOff, false}}
	uuids := map[string]string{}
	for _, v := range vols {
		if err := vmtest.DebugfsWrite(disk, v.off, "/imprint-marker", "marker of "+v.name+"\n"); err != nil {
			t.Fatal(err)
		}
		p, err := vmtest.Probe(disk, v.off)
		if err != nil {
			t.Fatal(err)
		}
		uuids[v.name] = p["UUID"]
	}
	t.Logf("markers written; UUIDs %v", uuids)

	// 3. second bootstrap boot: a document moving the kept partition is
	// refused and changes nothing; the same layout with keep_data provisions.
	sum := vmtest.FileSHA256(t, disk)
	vm = vmtest.Start(t, vmtest.Options{Disks: []vmtest.Disk{{Path: disk, Serial: "IMPRINT-VDA"}}, BootTimeout: 300 * time.Second})
	c := vm.Client
	for _, call := range []string{"plan", "provision"} {
		if call == "plan" {
			_, err = c.Plan(ctx, keepDoc(t, base, true, 120))
		} else {
			_, err = c.Provision(ctx, keepDoc(t, base, true, 120), false)
		}
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "would move") {
			t.Errorf("moving the kept /var/keep: POST /v1/%s = %v, want 422 saying it would move", call, err)
		} else {
			t.Logf("moving the kept partition: %s refused: %v", call, err)
		}
	}
	if got := vmtest.FileSHA256(t, disk); got != sum {
		t.Errorf("the refused document changed the disk: sha256 %s, was %s", got, sum)
	}
	provision(vm, keepDoc(t, base, true, 100))

	// 4. from the host: kept markers and UUIDs intact, the others fresh
	for _, v := range vols {
		got, err := vmtest.DebugfsCat(disk, v.off, "/imprint-marker")
		if err != nil {
			t.Fatal(err)
		}
		p, err := vmtest.Probe(disk, v.off)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case v.kept && (got != "marker of "+v.name+"\n" || p["UUID"] != uuids[v.name]):
			t.Errorf("kept %s: marker %q, UUID %s (was %s)", v.name, got, p["UUID"], uuids[v.name])
		case !v.kept && got != "":
			t.Errorf("%s is not kept but still holds the marker %q", v.name, got)
		default:
			t.Logf("%s (kept %v): marker %q, UUID %s", v.name, v.kept, strings.TrimSpace(got), p["UUID"])
		}
	}

	// 5. the disk boots; the OS mounts the kept volumes with their markers
	node := vmtest.BootDisk(t, disk, 240*time.Second)
	if _, err := node.WaitPhoneHome(ph, 12*time.Minute); err != nil {
		t.Fatal(err)
	}
	var out string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
		out, err = node.SSH(sctx, key, "cat /var/keep/imprint-marker /srv/data/imprint-marker; ls /imprint-marker /boot/imprint-marker 2>&1; findmnt -n -o SOURCE /srv/data")
		scancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, node.Tail(40))
	}
	t.Logf("in the OS:\n%s", out)
	for _, want := range []string{"marker of /var/keep\n", "marker of os/data\n", "/imprint-marker': No such file", "/boot/imprint-marker': No such file", "/dev/mapper/os-data"} {
		if !strings.Contains(out, want) {
			t.Errorf("the OS's view lacks %q", want)
		}
	}
	t.Logf("total: %s", time.Since(t0).Round(time.Second))
}
