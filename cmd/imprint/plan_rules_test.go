package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/inventory"
)

// Class 5 of issue 15: documents that used to pass `imprint plan` and fail
// only in the configdrive or bootloader step, after the disks were
// written. Each is now refused by provision's rules: exit 2, the field
// named.
func TestPlanCommandRefusesLateFailures(t *testing.T) {
	ksMeta := func(m map[string]any) map[string]any { return m["ks_meta"].(map[string]any) }
	lv := func(m map[string]any, space int) map[string]any {
		spaces := ksMeta(m)["pm_data"].(map[string]any)["ks_spaces"].([]any)
		return spaces[space].(map[string]any)["volumes"].([]any)[0].(map[string]any)
	}
	for _, tt := range []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"timezone", func(m map[string]any) { ksMeta(m)["timezone"] = "Mars/Olympus_Mons" }, "ks_meta.timezone: "},
		{"timezone path", func(m map[string]any) { ksMeta(m)["timezone"] = "../../etc/passwd" }, "ks_meta.timezone: "},
		{"master_ip", func(m map[string]any) { ksMeta(m)["master_ip"] = "fuel-master" }, "ks_meta.master_ip: "},
		{"gw", func(m map[string]any) { ksMeta(m)["gw"] = "10.20.0" }, "ks_meta.gw: "},
		{"lv mount /tmp/", func(m map[string]any) { lv(m, 2)["mount"] = "/tmp/" }, "ks_meta.pm_data.ks_spaces[2].volumes[0].mount: "},
		{"lv mount /var/./log", func(m map[string]any) { lv(m, 2)["mount"] = "/var/./log" }, "ks_meta.pm_data.ks_spaces[2].volumes[0].mount: "},
		{"kernel_params $()", func(m map[string]any) {
			ksMeta(m)["pm_data"].(map[string]any)["kernel_params"] = "console=tty0 $(touch /tmp/pwned)"
		}, "ks_meta.pm_data.kernel_params: "},
		{"kernel_params backquotes", func(m map[string]any) {
			ksMeta(m)["pm_data"].(map[string]any)["kernel_params"] = "console=tty0 `touch /tmp/pwned`"
		}, "ks_meta.pm_data.kernel_params: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := planWriteDoc(t, tt.mutate)
			code, out, errs := planRun(t, "", path)
			if code != 2 || out != "" || !strings.Contains(errs, path+": "+tt.want) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", code, out, errs, tt.want)
			}
		})
	}
}

// Issue 15, class 3: the 3-disk sample against a machine whose sda, sdb and
// sdc carry other serials. fuel-agent planned onto them by kernel name
// (exit 0); imprint plan refuses each disk, naming the ids it tried.
func TestPlanCommandForeignSerials(t *testing.T) {
	inv := inventory.Inventory{}
	for i, name := range []string{"sda", "sdb", "sdc"} {
		inv.Disks = append(inv.Disks, inventory.Disk{Name: name, Path: "/dev/" + name, SizeBytes: 70000 << 20, LogicalSectorSize: 512,
			ByID: []string{"/dev/disk/by-id/ata-OTHER_DISK_" + strconv.Itoa(i)}})
	}
	data, _ := json.Marshal(inv)
	invPath := filepath.Join(t.TempDir(), "inv.json")
	if err := os.WriteFile(invPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	doc := "../../partition/testdata/provision_sample_nailgun_3disks.json"
	code, out, errs := planRun(t, "", "--inventory", invPath, doc)
	if code != 2 || out != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	for i, name := range []string{"sda", "sdb", "sdc"} {
		want := doc + ": ks_meta.pm_data.ks_spaces[" + strconv.Itoa(i) + `].extra: disk "` + name + `": none of its ids ["/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_`
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}
