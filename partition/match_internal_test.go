package partition

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/provision"
)

func TestMatchDisk(t *testing.T) {
	inv := []Device{
		{Name: "sda", Path: "/dev/sda", Links: []string{"/dev/disk/by-id/wwn-0xaaa", "/dev/disk/by-id/ata-A", "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"}},
		{Name: "sdb", Path: "/dev/sdb", Links: []string{"/dev/disk/by-id/wwn-0xbbb", "/dev/disk/by-path/pci-0000:00:1f.2-ata-2"}},
		{Name: "vda", Path: "/dev/vda", Links: []string{"/dev/disk/by-path/virtio-pci-0000:00:04.0"}},
		// Two NVMe disks reporting the same WWN (LP #1503987).
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Links: []string{"/dev/disk/by-id/nvme-eui.dup"}},
		{Name: "nvme1n1", Path: "/dev/nvme1n1", Links: []string{"/dev/disk/by-id/nvme-eui.dup"}},
		{Name: "mapper/mpatha", Path: "/dev/mapper/mpatha", Links: []string{"/dev/disk/by-id/dm-uuid-mpath-3600"}},
	}
	tests := []struct {
		name  string
		space provision.Space
		want  []string
	}{
		{"by-id extra", provision.Space{Name: "sdx", ID: "sdx", Extra: []string{"disk/by-id/nope", "disk/by-id/ata-A"}}, []string{"/dev/sda"}},
		{"extra wins over id", provision.Space{Name: "sdx", ID: "disk/by-path/pci-0000:00:1f.2-ata-2", Extra: []string{"disk/by-id/wwn-0xaaa"}}, []string{"/dev/sda"}},
		{"by-id ids given, none matches: no fallback to the name", provision.Space{Name: "sdb", ID: "disk/by-path/pci-0000:00:1f.2-ata-1", Extra: []string{"disk/by-id/gone"}}, nil},
		{"by-path id given, matches nothing: no fallback to the name", provision.Space{Name: "sdb", ID: "disk/by-path/pci-0000:00:1f.2-ata-9"}, nil},
		{"a by-path extra is an id too (fuel-agent took the name)", provision.Space{Name: "sdb", Extra: []string{"disk/by-path/pci-0000:00:1f.2-ata-1"}}, []string{"/dev/sda"}},
		{"a by-path extra matching nothing: no name fallback", provision.Space{Name: "sdb", Extra: []string{"disk/by-path/pci-0000:00:1f.2-ata-9"}}, nil},
		{"extra that is no /dev/disk link is ignored", provision.Space{Name: "sdb", Extra: []string{"sdb"}}, []string{"/dev/sdb"}},
		{"by-path id", provision.Space{Name: "sdx", ID: "disk/by-path/pci-0000:00:1f.2-ata-2"}, []string{"/dev/sdb"}},
		{"kernel name id falls back to name", provision.Space{Name: "vda", ID: "vda"}, []string{"/dev/vda"}},
		{"name only", provision.Space{Name: "sda"}, []string{"/dev/sda"}},
		{"multipath by name", provision.Space{Name: "mapper/mpatha", ID: "dm-0"}, []string{"/dev/mapper/mpatha"}},
		{"missing", provision.Space{Name: "sdz", ID: "sdz", Extra: []string{"disk/by-id/zzz"}}, nil},
		{"ambiguous by-id", provision.Space{Name: "nvme9n1", Extra: []string{"disk/by-id/nvme-eui.dup"}}, []string{"/dev/nvme0n1", "/dev/nvme1n1"}},
		{"duplicate WWN resolved by name (rule 4)", provision.Space{Name: "nvme1n1", Extra: []string{"disk/by-id/nvme-eui.dup"}}, []string{"/dev/nvme1n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchPaths(&tt.space, inv)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("matchDisk(%+v) (-want +got):\n%s", tt.space, diff)
			}
		})
	}
}

// planInv3 is an inventory for the 3-disk sample, under other kernel
// names: each disk is found by one of its by-id links.
func planInv3(sizeMiB int64) []Device {
	return []Device{
		{Name: "sdx", Path: "/dev/sdx", SizeMiB: sizeMiB, Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB69050467-b385c7cd"}},
		{Name: "sdy", Path: "/dev/sdy", SizeMiB: sizeMiB, Links: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VBf2923215-708af674"}},
		{Name: "sdz", Path: "/dev/sdz", SizeMiB: sizeMiB, LogicalSectorSize: 4096, Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB50ee61eb-84e74fdf", "/dev/disk/by-path/pci-0000:00:0d.0-scsi-0:0:0:0"}},
	}
}

// planRealGUID3 replaces the 3-disk sample's /tmp partition_guid
// "fake_guid" (a placeholder of fuel-agent's unit tests, which mock
// sgdisk) by a real type GUID, Linux /var/tmp, as an apply needs.
func planRealGUID3(t *testing.T, doc *provision.Document) {
	t.Helper()
	v := &doc.KsMeta.PmData.KsSpaces[0].Volumes[2]
	if v.PartitionGUID != "fake_guid" {
		t.Fatalf("ks_spaces[0].volumes[2].partition_guid = %q, want the fixture's fake_guid", v.PartitionGUID)
	}
	v.PartitionGUID = "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1"
}

func TestPlanWithInventory(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	planRealGUID3(t, doc)
	p := mustPlan(t, doc, planInv3(70000), DefaultPlanOptions())
	var got []string
	for _, d := range p.Disks {
		got = append(got, d.Device+"="+d.Partitions[len(d.Partitions)-1].Device)
	}
	if diff := cmp.Diff([]string{"/dev/sdx=/dev/sdx7", "/dev/sdy=/dev/sdy3", "/dev/sdz=/dev/sdz3"}, got); diff != "" {
		t.Errorf("matched disks (-want +got):\n%s", diff)
	}
	if d := p.Disks[2]; d.SizeMiB != 70000 || d.LogicalSectorSize != 4096 || d.Name != "sdz" {
		t.Errorf("disk 3 = %+v, want the inventory's size, name and sector size", d)
	}
	if diff := cmp.Diff([]string{"/dev/sdx5"}, p.VGs[0].PVs); diff != "" {
		t.Errorf("vg os (-want +got):\n%s", diff)
	}
	for _, w := range p.Warnings {
		if strings.Contains(w, "layout needs") {
			t.Errorf("unexpected fit warning %q", w)
		}
	}
}

func TestPlanInventoryErrors(t *testing.T) {
	tests := []struct {
		name    string
		inv     []Device
		want    []string
		wantErr error
	}{
		{
			name:    "too small",
			inv:     planInv3(65535),
			want:    []string{"ks_meta.pm_data.ks_spaces[0]: disk /dev/sdx: layout needs 65687 MiB (last partition ends at 65686 MiB, plus 1 MiB for the backup GPT), the disk has 65535 MiB"},
			wantErr: ErrDoesNotFit,
		},
		{
			name:    "exactly one MiB short",
			inv:     append(planInv3(70000)[1:], Device{Name: "sdx", Path: "/dev/sdx", SizeMiB: 65686, Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB69050467-b385c7cd"}}),
			want:    []string{"disk /dev/sdx: layout needs 65687 MiB"},
			wantErr: ErrDoesNotFit,
		},
		{
			name: "missing",
			inv:  planInv3(70000)[:2],
			want: []string{
				`ks_meta.pm_data.ks_spaces[2].extra: disk "sdc": none of its ids ["/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB50ee61eb-84e74fdf" "/dev/disk/by-id/ata-VBOX_HARDDISK_VB50ee61eb-84e74fdf"] names a disk of this machine (its kernel name is not used when ids are given); inventory has /dev/sdx (/dev/disk/by-id/ata-VBOX_HARDDISK_VB69050467-b385c7cd), /dev/sdy`,
			},
			wantErr: ErrDiskNotFound,
		},
		{
			name: "ambiguous",
			inv: append(planInv3(70000), Device{Name: "sdw", Path: "/dev/sdw", SizeMiB: 70000,
				Links: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VBf2923215-708af674"}}),
			want:    []string{`ks_meta.pm_data.ks_spaces[1]: disk "sdb" is ambiguous: extra ["disk/by-id/scsi-SATA_VBOX_HARDDISK_VBf2923215-708af674" "disk/by-id/ata-VBOX_HARDDISK_VBf2923215-708af674"], name "sdb" matches /dev/sdy`, "/dev/sdw"},
			wantErr: ErrDiskNotFound,
		},
		{
			name: "two ks disks on one device",
			inv: []Device{
				{Name: "sda", Path: "/dev/sda", SizeMiB: 70000, Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB69050467-b385c7cd", "/dev/disk/by-id/ata-VBOX_HARDDISK_VBf2923215-708af674"}},
				{Name: "sdc", Path: "/dev/sdc", SizeMiB: 70000},
			},
			want:    []string{`ks_meta.pm_data.ks_spaces[1]: disk "sdb" matches /dev/sda, already matched by ks_meta.pm_data.ks_spaces[0] ("sda")`},
			wantErr: ErrDiskNotFound,
		},
		{
			// sdc has by-id extra links, so its by-path id is ignored; none
			// matches, and its name is not tried (fuel-agent's fallback
			// landed on the disk sda's by-id link found, partitioning
			// /dev/sdc twice).
			name: "no name fallback onto a disk another entry matched",
			inv: []Device{
				{Name: "sdc", Path: "/dev/sdc", SizeMiB: 70000, Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB69050467-b385c7cd"}},
				{Name: "sdy", Path: "/dev/sdy", SizeMiB: 70000, Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VBf2923215-708af674"}},
				{Name: "sdz", Path: "/dev/sdz", SizeMiB: 70000, Links: []string{"/dev/disk/by-path/pci-0000:00:0d.0-scsi-0:0:0:0"}},
			},
			want:    []string{`ks_meta.pm_data.ks_spaces[2].extra: disk "sdc": none of its ids ["/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB50ee61eb-84e74fdf" "/dev/disk/by-id/ata-VBOX_HARDDISK_VB50ee61eb-84e74fdf"] names a disk of this machine`},
			wantErr: ErrDiskNotFound,
		},
		{
			name:    "empty inventory",
			inv:     []Device{},
			want:    []string{`ks_spaces[0].extra: disk "sda": none of its ids`, `ks_spaces[1].extra: disk "sdb": none of its ids`, `ks_spaces[2].extra: disk "sdc": none of its ids`, "inventory has no disks"},
			wantErr: ErrDiskNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
			_, err := NewPlan(doc, tt.inv, DefaultPlanOptions())
			if err == nil {
				t.Fatal("NewPlan succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%s\ndoes not contain:\n%s", err, w)
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error does not wrap %v", tt.wantErr)
			}
		})
	}
}

func TestPlanInventoryUnallocatedDiskNeedNotExist(t *testing.T) {
	// LVM_META_POOL: sdb and sdc carry nothing; only sda must be present.
	doc := variantDoc(t, loadVariants(t)["LVM_META_POOL_KS_SPACES"])
	p := mustPlan(t, doc, []Device{{Name: "sda", Path: "/dev/sda", SizeMiB: 102400}}, DefaultPlanOptions())
	if len(p.Disks) != 1 || p.Disks[0].Device != "/dev/sda" {
		t.Errorf("disks = %+v", p.Disks)
	}
}

func TestDevicesFromInventory(t *testing.T) {
	inv := &inventory.Inventory{Disks: []inventory.Disk{
		{Name: "sda", Path: "/dev/sda", SizeBytes: 65535<<20 + 4096, LogicalSectorSize: 512,
			ByID: []string{"/dev/disk/by-id/wwn-0x1"}, ByPath: []string{"/dev/disk/by-path/pci-1"}},
		{Name: "sdb", Path: "/dev/sdb", SizeBytes: 1 << 30, ByID: []string{"/dev/disk/by-id/ata-M_S"},
			LegacyByID: []string{"/dev/disk/by-id/scsi-SATA_M_S"}, LegacyByPath: []string{"/dev/disk/by-path/pci-2-scsi-0:0:0:0"}},
		{Name: "sr0", Path: "/dev/sr0", SizeBytes: 1 << 30, ReadOnly: true},
		{Name: "mapper/mpatha", SizeBytes: 10 << 20},
	}}
	want := []Device{
		{Name: "sda", Path: "/dev/sda", SizeMiB: 65535, LogicalSectorSize: 512, Links: []string{"/dev/disk/by-id/wwn-0x1", "/dev/disk/by-path/pci-1"}},
		{Name: "sdb", Path: "/dev/sdb", SizeMiB: 1024, Links: []string{"/dev/disk/by-id/ata-M_S"},
			LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_M_S", "/dev/disk/by-path/pci-2-scsi-0:0:0:0"}},
		{Name: "mapper/mpatha", Path: "/dev/mapper/mpatha", SizeMiB: 10, Links: []string{}},
	}
	if diff := cmp.Diff(want, DevicesFromInventory(inv)); diff != "" {
		t.Errorf("DevicesFromInventory (-want +got):\n%s", diff)
	}
	if DevicesFromInventory(nil) != nil {
		t.Error("DevicesFromInventory(nil) != nil")
	}
}

// fake_guid: a warning when the plan only describes the layout (no
// inventory), an error when it is planned against real disks for an apply.
func TestPlanFakeGUID(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	const want = `partition /dev/sdx4: type GUID "fake_guid" is not a GUID`
	_, err := NewPlan(doc, planInv3(70000), DefaultPlanOptions())
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrLayout) {
		t.Fatalf("NewPlan with inventory = %v, want ErrLayout containing %q", err, want)
	}
	if strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("NewPlan with inventory: more than the GUID problem:\n%s", err)
	}
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	found := false
	for _, w := range p.Warnings {
		found = found || strings.Contains(w, `partition /dev/sda4: type GUID "fake_guid" is not a GUID`)
	}
	if !found {
		t.Errorf("without inventory: warnings %q lack the fake_guid one", p.Warnings)
	}
	planRealGUID3(t, doc)
	p = mustPlan(t, doc, planInv3(70000), DefaultPlanOptions())
	if got := p.Disks[0].Partitions[3].TypeGUID; got != "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1" {
		t.Errorf("sdx4 type GUID = %q, want the document's", got)
	}
}

// Names older udev gave a disk (inventory's LegacyByID/LegacyByPath) are
// tried only when no disk matches by its current names.
func TestMatchDiskLegacy(t *testing.T) {
	inv := []Device{
		{Name: "sda", Path: "/dev/sda", Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB1", "/dev/disk/by-path/pci-0000:00:0d.0-ata-1"},
			LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB1", "/dev/disk/by-path/pci-0000:00:0d.0-scsi-0:0:0:0"}},
		{Name: "sdb", Path: "/dev/sdb", Links: []string{"/dev/disk/by-id/ata-VBOX_HARDDISK_VB2", "/dev/disk/by-path/pci-0000:00:0d.0-ata-2"},
			LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB2", "/dev/disk/by-path/pci-0000:00:0d.0-scsi-1:0:0:0"}},
		// Two disks an old udev named alike (a legacy name the inventory
		// would keep for both only by mistake: the planner must not pick one).
		{Name: "sdc", Path: "/dev/sdc", Links: []string{"/dev/disk/by-id/ata-X_C"}, LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_X_DUP"}},
		{Name: "sdd", Path: "/dev/sdd", Links: []string{"/dev/disk/by-id/ata-X_D"}, LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_X_DUP"}},
	}
	tests := []struct {
		name  string
		space provision.Space
		want  []string
	}{
		{"legacy by-id extra", provision.Space{Name: "sdx", Extra: []string{"disk/by-id/scsi-SATA_VBOX_HARDDISK_VB2"}}, []string{"/dev/sdb"}},
		{"legacy by-path id", provision.Space{Name: "sdx", ID: "disk/by-path/pci-0000:00:0d.0-scsi-0:0:0:0"}, []string{"/dev/sda"}},
		{"current name wins over another disk's legacy name", provision.Space{Name: "sdx", Extra: []string{"disk/by-id/scsi-SATA_VBOX_HARDDISK_VB2", "disk/by-id/ata-VBOX_HARDDISK_VB1"}}, []string{"/dev/sda"}},
		{"current and legacy name of one disk", provision.Space{Name: "sdx", Extra: []string{"disk/by-id/scsi-SATA_VBOX_HARDDISK_VB1", "disk/by-id/ata-VBOX_HARDDISK_VB1"}}, []string{"/dev/sda"}},
		{"legacy wins over the name fallback", provision.Space{Name: "sda", Extra: []string{"disk/by-id/scsi-SATA_VBOX_HARDDISK_VB2"}}, []string{"/dev/sdb"}},
		{"legacy by-path ignored when extra is given", provision.Space{Name: "sdz", ID: "disk/by-path/pci-0000:00:0d.0-scsi-0:0:0:0", Extra: []string{"disk/by-id/gone"}}, nil},
		{"ambiguous legacy name", provision.Space{Name: "sdz", Extra: []string{"disk/by-id/scsi-SATA_X_DUP"}}, []string{"/dev/sdc", "/dev/sdd"}},
		{"ambiguous legacy name resolved by name", provision.Space{Name: "sdd", Extra: []string{"disk/by-id/scsi-SATA_X_DUP"}}, []string{"/dev/sdd"}},
		{"no legacy name matches", provision.Space{Name: "sdz", Extra: []string{"disk/by-id/scsi-SATA_NOPE"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchPaths(&tt.space, inv)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("matchDisk(%+v) (-want +got):\n%s", tt.space, diff)
			}
		})
	}
}

// The 3-disk sample's extra lists both names of each disk; an inventory
// that only knows the legacy scsi-SATA_ names still finds them, and the
// one-to-one rule holds through legacy names too.
func TestPlanLegacyNames(t *testing.T) {
	legacy := func(name, serial string) Device {
		return Device{Name: name, Path: "/dev/" + name, SizeMiB: 70000, LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_" + serial}}
	}
	t.Run("found by legacy names", func(t *testing.T) {
		doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
		planRealGUID3(t, doc)
		inv := []Device{legacy("sdz", "VB50ee61eb-84e74fdf"), legacy("sdx", "VB69050467-b385c7cd"), legacy("sdy", "VBf2923215-708af674")}
		p := mustPlan(t, doc, inv, DefaultPlanOptions())
		var got []string
		for _, d := range p.Disks {
			got = append(got, d.Device)
		}
		if diff := cmp.Diff([]string{"/dev/sdx", "/dev/sdy", "/dev/sdz"}, got); diff != "" {
			t.Errorf("disks (-want +got):\n%s", diff)
		}
	})
	for _, tt := range []struct {
		name string
		inv  []Device
		want []string
	}{
		{
			name: "two document disks, one device",
			inv: []Device{
				{Name: "sdx", Path: "/dev/sdx", SizeMiB: 70000, LegacyLinks: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB69050467-b385c7cd", "/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VBf2923215-708af674"}},
				legacy("sdz", "VB50ee61eb-84e74fdf"),
			},
			want: []string{`ks_meta.pm_data.ks_spaces[1]: disk "sdb" matches /dev/sdx, already matched by ks_meta.pm_data.ks_spaces[0] ("sda")`},
		},
		{
			name: "one document disk, two devices",
			inv: []Device{
				legacy("sdx", "VB69050467-b385c7cd"), legacy("sdy", "VBf2923215-708af674"), legacy("sdz", "VB50ee61eb-84e74fdf"),
				legacy("sdw", "VBf2923215-708af674"),
			},
			want: []string{`ks_meta.pm_data.ks_spaces[1]: disk "sdb" is ambiguous`, "matches /dev/sdy (legacy: /dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VBf2923215-708af674), /dev/sdw (legacy: "},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
			planRealGUID3(t, doc)
			_, err := NewPlan(doc, tt.inv, DefaultPlanOptions())
			if err == nil || !errors.Is(err, ErrDiskNotFound) {
				t.Fatalf("NewPlan = %v, want ErrDiskNotFound", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%s\ndoes not contain:\n%s", err, w)
				}
			}
		})
	}
}

// The 3-disk sample on a machine whose sda, sdb and sdc carry other
// serials: every disk is refused, naming the ids tried; fuel-agent planned
// onto sda/sdb/sdc by kernel name. A document that gives only kernel names
// still matches by name, as fuel-agent did.
func TestPlanForeignSerials(t *testing.T) {
	foreign := func(name, serial string) Device {
		return Device{Name: name, Path: "/dev/" + name, SizeMiB: 70000, Links: []string{
			"/dev/disk/by-id/ata-OTHER_DISK_" + serial, "/dev/disk/by-id/wwn-0x5000" + serial}}
	}
	inv := []Device{foreign("sda", "1111"), foreign("sdb", "2222"), foreign("sdc", "3333")}
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	planRealGUID3(t, doc)
	_, err := NewPlan(doc, inv, DefaultPlanOptions())
	if !errors.Is(err, ErrDiskNotFound) {
		t.Fatalf("NewPlan = %v, want ErrDiskNotFound", err)
	}
	want := []string{
		`ks_meta.pm_data.ks_spaces[0].extra: disk "sda": none of its ids ["/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB69050467-b385c7cd" "/dev/disk/by-id/ata-VBOX_HARDDISK_VB69050467-b385c7cd"] names a disk of this machine`,
		`ks_meta.pm_data.ks_spaces[1].extra: disk "sdb": none of its ids ["/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VBf2923215-708af674" "/dev/disk/by-id/ata-VBOX_HARDDISK_VBf2923215-708af674"] names a disk of this machine`,
		`ks_meta.pm_data.ks_spaces[2].extra: disk "sdc": none of its ids ["/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB50ee61eb-84e74fdf" "/dev/disk/by-id/ata-VBOX_HARDDISK_VB50ee61eb-84e74fdf"] names a disk of this machine`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%s", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d:\n%s\nwant prefix:\n%s", i, got[i], w)
		}
	}

	// Only kernel names (extra [], id = name): matched by name.
	doc = planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	planRealGUID3(t, doc)
	for i := range doc.KsMeta.PmData.KsSpaces {
		if s := &doc.KsMeta.PmData.KsSpaces[i]; s.Type == provision.SpaceDisk {
			s.Extra, s.ID = []string{}, s.Name
		}
	}
	p := mustPlan(t, doc, inv, DefaultPlanOptions())
	var disks []string
	for _, d := range p.Disks {
		disks = append(disks, d.Device)
	}
	if diff := cmp.Diff([]string{"/dev/sda", "/dev/sdb", "/dev/sdc"}, disks); diff != "" {
		t.Errorf("kernel names only (-want +got):\n%s", diff)
	}
}

// The planner's problems are provision.FieldErrors: the path, the message
// and the class, which errors.Is finds; provision's own rules come with
// provision's wording (one rule, one place).
func TestPlanErrorsAreFieldErrors(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	planRealGUID3(t, doc)
	doc.KsMeta.PmData.KsSpaces[0].Volumes[4].LVMMetaSize = 8
	_, err := NewPlan(doc, planInv3(70000)[:2], DefaultPlanOptions())
	var ve *provision.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("NewPlan = %v, want a *provision.ValidationError", err)
	}
	type got struct {
		Path string
		Err  error
	}
	var paths []got
	for _, p := range ve.Problems {
		paths = append(paths, got{p.Path, p.Err})
	}
	want := []got{
		{"ks_meta.pm_data.ks_spaces[0].volumes[4].lvm_meta_size", ErrLayout},
		{"ks_meta.pm_data.ks_spaces[2].extra", ErrDiskNotFound},
	}
	if diff := cmp.Diff(want, paths, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if ve.Problems[0].Msg != "must be >= 10, got 8" {
		t.Errorf("lvm_meta_size problem worded %q, want provision's", ve.Problems[0].Msg)
	}
	if !errors.Is(err, ErrLayout) || !errors.Is(err, ErrDiskNotFound) || errors.Is(err, ErrDoesNotFit) {
		t.Errorf("errors.Is does not see the classes of %v", err)
	}
}

// matchPaths is matchDisk's answer as the matched disks' paths.
func matchPaths(space *provision.Space, inv []Device) []string {
	var got []string
	found, _ := matchDisk(space, inv)
	for _, i := range found {
		got = append(got, inv[i].Path)
	}
	return got
}
