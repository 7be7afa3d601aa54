package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/provision"
)

// schemeDoc is fuel-agent's nailgun_simple test document without its PV
// on /dev/sdc3, a disk no parted lists (which provision refuses, see
// TestPlanSchemeUnlistedDevices).
func schemeDoc(t *testing.T) *provision.Document {
	t.Helper()
	doc := planLoadDoc(t, "simple_nailgun_driver.json")
	if doc.Partitioning == nil {
		t.Fatal("fixture has no partitioning")
	}
	ps := doc.Partitioning
	if ps.PVs[3].Name != "/dev/sdc3" || ps.VGs[0].PVNames[2] != "/dev/sdc3" {
		t.Fatalf("fixture changed: pvs %+v vgs %+v", ps.PVs, ps.VGs)
	}
	ps.PVs = ps.PVs[:3]
	ps.VGs[0].PVNames = ps.VGs[0].PVNames[:2]
	return doc
}

func TestPlanFromSimpleNailgunScheme(t *testing.T) {
	doc := schemeDoc(t)
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	want := []row{
		{"/dev/sdb1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
		{"/dev/sdb2", 2, 25, 225, PurposeUEFI, GUIDUEFIPlaceholder, ""},
		{"/dev/sdb3", 3, 225, 65196, PurposePV, GUIDLinuxLVM, "image"},
		{"/dev/sda1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
		{"/dev/sda2", 2, 25, 225, PurposeUEFI, GUIDUEFIPlaceholder, ""},
		{"/dev/sda3", 3, 225, 425, PurposeFS, GUIDLinuxFS, "/boot"},
		{"/dev/sda4", 4, 425, 625, PurposeFS, "fake_guid", "/tmp"},
		{"/dev/sda5", 5, 625, 20063, PurposePV, GUIDLinuxLVM, "os"},
		{"/dev/sda6", 6, 20063, 65660, PurposePV, GUIDLinuxLVM, "image"},
		{"/dev/sda7", 7, 65660, 65680, PurposeConfigdrive, GUIDLinuxFS, ""},
	}
	if diff := cmp.Diff(want, planRows(p)); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	if p.Configdrive != "/dev/sda7" {
		t.Errorf("configdrive %q", p.Configdrive)
	}
	wantVGs := []VG{
		{Name: "image", PVs: []string{"/dev/sda6", "/dev/sdb3"}},
		{Name: "os", PVs: []string{"/dev/sda5"}},
	}
	if diff := cmp.Diff(wantVGs, p.VGs); diff != "" {
		t.Errorf("vgs (-want +got):\n%s", diff)
	}
	if p.PVs[0].VG != "os" || p.PVs[2].VG != "image" || p.PVs[0].MetadataSizeMiB != 28 {
		t.Errorf("pvs = %+v", p.PVs)
	}
	if diff := cmp.Diff([]Image{{Mount: "/", URI: "http://10.20.0.1:123/imgs/fake_image.img.gz", Format: "ext4", Container: "gzip", Device: "/dev/mapper/os-root"}}, p.Images); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	if len(p.FSs) != 5 || !p.FSs[2].Image || p.FSs[2].Device != "/dev/mapper/os-root" {
		t.Errorf("fss = %+v", p.FSs)
	}
	// The fixture is fuel-agent's test data: no install_bootloader, a
	// "fake_guid".
	wantWarn := []string{
		"partitioning.parteds: no parted has install_bootloader: true",
		`partition /dev/sda4: type GUID "fake_guid" is not a GUID`,
	}
	if len(p.Warnings) != len(wantWarn) {
		t.Fatalf("warnings = %q", p.Warnings)
	}
	for i, w := range wantWarn {
		if !strings.Contains(p.Warnings[i], w) {
			t.Errorf("warning %d = %q, want %q", i, p.Warnings[i], w)
		}
	}
}

func TestPlanFromSchemeErrors(t *testing.T) {
	base := schemeDoc
	tests := []struct {
		name   string
		mutate func(d *provision.Document)
		inv    []Device
		want   []string
	}{
		{
			name:   "overlap",
			mutate: func(d *provision.Document) { d.Partitioning.Parteds[1].Partitions[3].Begin = 400 },
			want:   []string{"partitioning.parteds[1].partitions[3].begin: 400 overlaps partitions[2], which ends at 425"},
		},
		{
			name:   "begin after end",
			mutate: func(d *provision.Document) { d.Partitioning.Parteds[0].Partitions[2].End = 1 },
			want:   []string{"partitioning.parteds[0].partitions[2].end: must be greater than begin (225), got 1"},
		},
		{
			name:   "lv of an unknown vg",
			mutate: func(d *provision.Document) { d.Partitioning.LVs[0].VGName = "nope" },
			want:   []string{`partitioning.lvs[0].vgname: "nope" is not in partitioning.vgs`},
		},
		{
			name:   "no configdrive",
			mutate: func(d *provision.Document) { d.Partitioning.Parteds[1].Partitions[6].Configdrive = false },
			want:   []string{"partitioning.parteds: no partition has configdrive: true"},
		},
		{
			name:   "relative mount",
			mutate: func(d *provision.Document) { d.Partitioning.FSs[1].Mount = "tmp" },
			want:   []string{`partitioning.fss[1].mount: must be an absolute path, "swap" or "none", got "tmp"`},
		},
		{
			name:   "not a device",
			mutate: func(d *provision.Document) { d.Partitioning.Parteds[0].Name = "sdb" },
			want:   []string{`partitioning.parteds[0].name: must be a device path under /dev (/dev/sda, /dev/nvme0n1), got "sdb"`},
		},
		{
			name: "pv on a disk no parted lists",
			mutate: func(d *provision.Document) {
				d.Partitioning.PVs = append(d.Partitioning.PVs, provision.PhysicalVolume{Name: "/dev/sdc3", MetadataSize: 28, MetadataCopies: 2})
				d.Partitioning.VGs[0].PVNames = append(d.Partitioning.VGs[0].PVNames, "/dev/sdc3")
			},
			want: []string{`partitioning.pvs[3].name: "/dev/sdc3" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`},
		},
		{
			name:   "configdrive and root on an unlisted disk",
			mutate: func(d *provision.Document) { d.Partitioning.FSs[0].Device = "/dev/sdc1" },
			inv:    []Device{{Name: "sda", Path: "/dev/sda", SizeMiB: 70000}, {Name: "sdb", Path: "/dev/sdb", SizeMiB: 70000}, {Name: "sdc", Path: "/dev/sdc", SizeMiB: 70000}},
			want:   []string{`partitioning.fss[0].device: "/dev/sdc1" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`},
		},
		{
			name: "one disk under two names",
			mutate: func(d *provision.Document) {
				d.Partitioning.Parteds[0].Name = "/dev/disk/by-id/wwn-0x5000aaaa"
				for j := range d.Partitioning.Parteds[0].Partitions {
					pt := &d.Partitioning.Parteds[0].Partitions[j]
					pt.Device = "/dev/disk/by-id/wwn-0x5000aaaa"
					pt.Name = fmt.Sprintf("/dev/disk/by-id/wwn-0x5000aaaa-part%d", pt.Count)
				}
				d.Partitioning.PVs[2].Name = "/dev/disk/by-id/wwn-0x5000aaaa-part3"
				d.Partitioning.VGs[0].PVNames[1] = "/dev/disk/by-id/wwn-0x5000aaaa-part3"
			},
			inv:  []Device{{Name: "sda", Path: "/dev/sda", SizeMiB: 70000, Links: []string{"/dev/disk/by-id/wwn-0x5000aaaa"}}},
			want: []string{"partitioning.parteds[1].name: /dev/sda is disk /dev/sda, which parteds[0] (/dev/disk/by-id/wwn-0x5000aaaa) already lays out"},
		},
		{
			name:   "disk missing from inventory",
			mutate: func(d *provision.Document) {},
			inv:    []Device{{Name: "sda", Path: "/dev/sda", SizeMiB: 70000}},
			want:   []string{"partitioning.parteds[0].name: disk /dev/sdb not found; inventory has /dev/sda"},
		},
		{
			name:   "disk too small",
			mutate: func(d *provision.Document) {},
			inv:    []Device{{Name: "sda", Path: "/dev/sda", SizeMiB: 65680}, {Name: "sdb", Path: "/dev/sdb", SizeMiB: 70000}},
			want:   []string{"partitioning.parteds[1]: disk /dev/sda: layout needs 65681 MiB"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := base(t)
			tt.mutate(doc)
			_, err := NewPlan(doc, tt.inv, DefaultPlanOptions())
			if err == nil {
				t.Fatal("NewPlan succeeded")
			}
			if !errors.Is(err, ErrLayout) && !errors.Is(err, ErrDiskNotFound) && !errors.Is(err, ErrDoesNotFit) {
				t.Errorf("error %v wraps none of the planner's sentinels", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%s\ndoes not contain:\n%s", err, w)
				}
			}
		})
	}
}

// A computed plan, rendered with Scheme and fed back as "partitioning",
// gives the same plan.
func TestSchemeRoundTrip(t *testing.T) {
	for _, name := range []string{"provision_sample_nailgun_3disks.json", "provision_fuel90_ubuntu_1disk.json"} {
		t.Run(name, func(t *testing.T) {
			doc := planLoadDoc(t, name)
			p := mustPlan(t, doc, nil, DefaultPlanOptions())
			data, err := json.Marshal(p.Scheme())
			if err != nil {
				t.Fatal(err)
			}
			var s provision.PartitionScheme
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatal(err)
			}
			doc.Partitioning = &s
			q := mustPlan(t, doc, nil, DefaultPlanOptions())
			// Only the GPT names and the declared sizes are not carried by
			// fuel-agent's scheme.
			for _, pl := range []*Plan{p, q} {
				for i := range pl.Disks {
					pl.Disks[i].SizeMiB = 0
					for j := range pl.Disks[i].Partitions {
						pl.Disks[i].Partitions[j].Name = ""
					}
				}
				pl.Warnings = nil
			}
			if diff := cmp.Diff(p, q); diff != "" {
				t.Errorf("round trip (-computed +converted):\n%s", diff)
			}
		})
	}
}

func TestSchemeFieldNames(t *testing.T) {
	p := mustPlan(t, planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json"), nil, DefaultPlanOptions())
	data, err := json.Marshal(p.Scheme())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string][]map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	part := m["parteds"][0]["partitions"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "count", "device", "begin", "end", "flags", "guid", "configdrive", "partition_type"} {
		if _, ok := part[k]; !ok {
			t.Errorf("partition lacks %q: %v", k, part)
		}
	}
	if part["name"] != "/dev/vda1" || part["begin"] != 1.0 || part["end"] != 25.0 || part["guid"] != GUIDBIOSBoot {
		t.Errorf("partition 1 = %v", part)
	}
	if m["pvs"][0]["metadatasize"] != 28.0 || m["pvs"][0]["metadatacopies"] != 2.0 {
		t.Errorf("pv = %v", m["pvs"][0])
	}
	if m["lvs"][0]["vgname"] != "os" || m["vgs"][0]["pvnames"] == nil || m["fss"][0]["fs_type"] != "ext2" {
		t.Errorf("lvs %v vgs %v fss %v", m["lvs"][0], m["vgs"][0], m["fss"][0])
	}
	if m["mds"] == nil {
		t.Error(`"mds" is null, want []`)
	}
}
