package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/inventory"
)

// sdaSdb is a node with two disks; scheme documents list only sda.
var sdaSdb = &inventory.Inventory{Disks: []inventory.Disk{
	{Name: "sda", Path: "/dev/sda", SizeBytes: 100 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512},
	{Name: "sdb", Path: "/dev/sdb", SizeBytes: 100 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512},
}}

// schemeDoc is nailgun_simple's document with a pre-computed scheme on sda
// alone; f edits the generic "partitioning" object.
func schemeDoc(t *testing.T, f func(p map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile("../partition/testdata/simple_nailgun_driver.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	part := func(n, begin, end int, flags []any, cd bool) map[string]any {
		return map[string]any{"name": "/dev/sda" + string(rune('0'+n)), "count": n, "device": "/dev/sda", "begin": begin, "end": end,
			"partition_type": "primary", "flags": flags, "guid": nil, "configdrive": cd}
	}
	p := map[string]any{
		"parteds": []any{map[string]any{"name": "/dev/sda", "label": "gpt", "install_bootloader": true, "partitions": []any{
			part(1, 1, 25, []any{"bios_grub"}, false),
			part(2, 25, 225, []any{}, false),
			part(3, 225, 20225, []any{}, false),
			part(4, 20225, 20245, []any{}, true),
		}}},
		"pvs": []any{map[string]any{"name": "/dev/sda3", "metadatasize": 28, "metadatacopies": 2}},
		"vgs": []any{map[string]any{"name": "os", "pvnames": []any{"/dev/sda3"}}},
		"lvs": []any{map[string]any{"name": "root", "vgname": "os", "size": 15000}},
		"mds": []any{},
		"fss": []any{
			map[string]any{"device": "/dev/sda2", "fs_type": "ext2", "mount": "/boot", "fs_label": "", "fs_options": ""},
			map[string]any{"device": "/dev/mapper/os-root", "fs_type": "ext4", "mount": "/", "fs_label": "", "fs_options": ""},
		},
	}
	if f != nil {
		f(p)
	}
	m["partitioning"] = p
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func appendTo(p map[string]any, key string, v any) { p[key] = append(p[key].([]any), v) }

func TestSchemeValid(t *testing.T) {
	job, err := Prepare(context.Background(), schemeDoc(t, nil), sdaSdb, Options{FS: noFS{}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Devices.Contains("/dev/sdb") || job.Configdrive == nil || job.Configdrive.Device != "/dev/sda4" {
		t.Fatalf("devices %q, configdrive %+v", job.Devices.Devices(), job.Configdrive)
	}
}

// Every path by which a scheme document could reach the unlisted sdb is
// refused at prepare, naming the field.
func TestSchemeReachingAnUnlistedDisk(t *testing.T) {
	tests := []struct {
		name string
		edit func(p map[string]any)
	}{
		{"a filesystem on sdb", func(p map[string]any) {
			appendTo(p, "fss", map[string]any{"device": "/dev/sdb1", "fs_type": "ext4", "mount": "/srv", "fs_label": "", "fs_options": ""})
		}},
		{"the root image on sdb", func(p map[string]any) {
			p["fss"].([]any)[1].(map[string]any)["device"] = "/dev/sdb1"
		}},
		{"a PV on sdb", func(p map[string]any) {
			appendTo(p, "pvs", map[string]any{"name": "/dev/sdb1", "metadatasize": 28, "metadatacopies": 2})
			p["vgs"].([]any)[0].(map[string]any)["pvnames"] = []any{"/dev/sda3", "/dev/sdb1"}
		}},
		{"an md member on sdb", func(p map[string]any) {
			appendTo(p, "mds", map[string]any{"name": "/dev/md0", "level": "mirror", "devices": []any{"/dev/sda2", "/dev/sdb2"}, "spares": []any{}})
			p["fss"].([]any)[0].(map[string]any)["device"] = "/dev/md0"
		}},
		{"a partition of sda named on sdb", func(p map[string]any) {
			parts := p["parteds"].([]any)[0].(map[string]any)["partitions"].([]any)
			parts[1].(map[string]any)["name"] = "/dev/sdb2"
			p["fss"].([]any)[0].(map[string]any)["device"] = "/dev/sdb2"
		}},
		{"the configdrive on sdb", func(p map[string]any) {
			parts := p["parteds"].([]any)[0].(map[string]any)["partitions"].([]any)
			parts[3].(map[string]any)["name"] = "/dev/sdb4"
		}},
		{"fs_options logdev", func(p map[string]any) {
			p["fss"].([]any)[1].(map[string]any)["fs_options"] = "-l logdev=/dev/sdb"
		}},
		{"fs_options -J device", func(p map[string]any) {
			p["fss"].([]any)[1].(map[string]any)["fs_options"] = "-J device=/dev/sdb"
		}},
		{"fs_options -E", func(p map[string]any) {
			p["fss"].([]any)[1].(map[string]any)["fs_options"] = "-E journal_device=/dev/sdb"
		}},
		{"fs_options --opt=", func(p map[string]any) {
			p["fss"].([]any)[1].(map[string]any)["fs_options"] = "--journal-device=/dev/sdb"
		}},
		{"fs_options glued", func(p map[string]any) {
			p["fss"].([]any)[0].(map[string]any)["fs_options"] = "-llogdev=/dev/sdb,size=8m"
		}},
		{"fs_options bare device", func(p map[string]any) {
			p["fss"].([]any)[0].(map[string]any)["fs_options"] = "/dev/sdb"
		}},
		{"the whole disk as a filesystem", func(p map[string]any) {
			appendTo(p, "fss", map[string]any{"device": "/dev/sdb", "fs_type": "xfs", "mount": "/data", "fs_label": "", "fs_options": ""})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Prepare(context.Background(), schemeDoc(t, tt.edit), sdaSdb, Options{FS: noFS{}})
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Prepare = %v, want a refusal", err)
			}
			found := false
			for _, p := range pe.Problems {
				if strings.HasPrefix(p.Path, "partitioning") && strings.Contains(p.Msg, "/dev/sdb") {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem under partitioning naming /dev/sdb: %v", pe.Problems)
			}
		})
	}
}
