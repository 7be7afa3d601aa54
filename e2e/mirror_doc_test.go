package e2e

import (
	"testing"

	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

const mirrorHost = "imprint-mirror.domain.tld"

// mirrorDoc is a two-disk UEFI node with everything mirrored: Fuel's
// pre-computed scheme (the nailgun_simple driver's "partitioning") puts
// bios_grub and the "UEFI" partition (made an ESP: boot_mode uefi) on both
// disks, /boot on md0 (RAID-1 of vda3, vdb3) and the os VG on md1 (RAID-1
// of vda4, vdb4), the configdrive on vda. ks_spaces describes the same
// disks for validation. The kernel parameters keep every kernel message
// on ttyS0 (ignore_loglevel) so md's and Secure Boot's lines are seen.
func mirrorDoc(t *testing.T, rootURI, bootURI, authKey string) []byte {
	t.Helper()
	d := vmtest.FuelDoc(t, vmtest.FuelNode{Host: mirrorHost, RootURI: rootURI, BootURI: bootURI, AuthKey: authKey})
	ks, pm := vmtest.FuelKsMeta(d), vmtest.FuelPmData(d)
	ks["boot_mode"] = "uefi"
	disk := func(name string) map[string]any {
		return map[string]any{
			"type": "disk", "id": name, "name": name, "size": 3072, "free_space": 2500, "extra": []any{},
			"volumes": []any{
				map[string]any{"type": "boot", "size": 300},
				map[string]any{"type": "raid", "mount": "/boot", "size": 200, "file_system": "ext2", "name": "Boot"},
				map[string]any{"type": "lvm_meta_pool", "size": 0},
				map[string]any{"type": "pv", "vg": "os", "size": 2400, "lvm_meta_size": 64},
			},
		}
	}
	pm["ks_spaces"] = []any{disk("vda"), disk("vdb"), map[string]any{
		"type": "vg", "id": "os", "label": "Base System", "min_size": 2048, "_allocate_size": "min",
		"volumes": []any{map[string]any{"type": "lv", "name": "root", "mount": "/", "size": 2048, "file_system": "ext4"}},
	}}
	part := func(dev string, n int, begin, end int, flags []any, configdrive bool) map[string]any {
		return map[string]any{"begin": begin, "end": end, "count": n, "device": dev, "name": dev + string(rune('0'+n)),
			"flags": flags, "guid": nil, "configdrive": configdrive, "partition_type": "primary"}
	}
	parted := func(dev string, extra ...map[string]any) map[string]any {
		ps := []any{part(dev, 1, 1, 25, []any{"bios_grub"}, false), part(dev, 2, 25, 225, []any{}, false),
			part(dev, 3, 225, 425, []any{}, false), part(dev, 4, 425, 2825, []any{}, false)}
		for _, e := range extra {
			ps = append(ps, e)
		}
		return map[string]any{"label": "gpt", "name": dev, "install_bootloader": true, "partitions": ps}
	}
	d["partitioning"] = map[string]any{
		"parteds": []any{parted("/dev/vda", part("/dev/vda", 5, 2825, 2845, []any{}, true)), parted("/dev/vdb")},
		"mds": []any{
			map[string]any{"name": "/dev/md0", "level": "mirror", "devices": []any{"/dev/vda3", "/dev/vdb3"}, "spares": []any{}},
			map[string]any{"name": "/dev/md1", "level": "mirror", "devices": []any{"/dev/vda4", "/dev/vdb4"}, "spares": []any{}},
		},
		"pvs": []any{map[string]any{"name": "/dev/md1", "metadatasize": 28, "metadatacopies": 2}},
		"vgs": []any{map[string]any{"name": "os", "pvnames": []any{"/dev/md1"}}},
		"lvs": []any{map[string]any{"name": "root", "size": 2048, "vgname": "os"}},
		"fss": []any{
			map[string]any{"device": "/dev/md0", "fs_type": "ext2", "mount": "/boot", "fs_label": "", "fs_options": ""},
			map[string]any{"device": "/dev/mapper/os-root", "fs_type": "ext4", "mount": "/", "fs_label": "", "fs_options": ""},
		},
	}
	return vmtest.MarshalDoc(t, d)
}

// The mirrored document validates and plans as TestVMUEFIMirroredBoot
// expects: an ESP on each disk (the first at /boot/efi), /boot and the os
// PV on RAID-1, grub on both disks.
func TestMirrorDocPlans(t *testing.T) {
	doc, err := provision.ParseAndValidate(mirrorDoc(t, "http://10.0.2.2:1/root.img.gz", "http://10.0.2.2:1/boot.img.gz", "ssh-ed25519 AAAA test"))
	if err != nil {
		t.Fatal(err)
	}
	devs := []partition.Device{{Name: "vda", Path: "/dev/vda", SizeMiB: 3072, LogicalSectorSize: 512}, {Name: "vdb", Path: "/dev/vdb", SizeMiB: 3072, LogicalSectorSize: 512}}
	opts := partition.DefaultPlanOptions()
	opts.BootMode = provision.ResolveBootMode(doc.KsMeta.BootMode, false)
	p, err := partition.NewPlan(doc, devs, opts)
	if err != nil {
		t.Fatal(err)
	}
	esps := p.ESPs()
	if p.BootMode != "uefi" || len(esps) != 2 || esps[0].Device != "/dev/vda2" || esps[0].Mount != partition.ESPMount || esps[1].Device != "/dev/vdb2" || esps[1].Mount != "" {
		t.Errorf("boot mode %q, ESPs %+v", p.BootMode, esps)
	}
	if len(p.MDs) != 2 || p.MDs[0].Mount != "/boot" || len(p.MDs[0].Members) != 2 || len(p.MDs[1].Members) != 2 {
		t.Errorf("mds %+v", p.MDs)
	}
	if len(p.Bootloader) != 2 || p.Configdrive != "/dev/vda5" {
		t.Errorf("bootloader %v configdrive %q", p.Bootloader, p.Configdrive)
	}
	for _, w := range p.Warnings {
		t.Logf("warning: %s", w)
	}
}
