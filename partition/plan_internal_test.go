package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/provision"
)

// planLoadDoc reads a provision document from testdata.
func planLoadDoc(t *testing.T, name string) *provision.Document {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return planDecode(t, data)
}

func planDecode(t *testing.T, data []byte) *provision.Document {
	t.Helper()
	doc, err := provision.Parse(data)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc
}

// row is one partition of a golden table.
type row struct {
	Dev        string
	Num        int
	Begin, End int64
	Purpose    string
	GUID       string
	Holds      string // mount, vg or md
}

func planRows(p *Plan) []row {
	var out []row
	for _, d := range p.Disks {
		for _, part := range d.Partitions {
			holds := part.Mount + part.VG + part.MD
			out = append(out, row{part.Device, part.Number, part.BeginMiB, part.EndMiB, part.Purpose, part.TypeGUID, holds})
		}
	}
	return out
}

func mustPlan(t *testing.T, doc *provision.Document, inv []Device, opts PlanOptions) *Plan {
	t.Helper()
	p, err := NewPlan(doc, inv, opts)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	return p
}

func TestPlanGolden3Disks(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	p := mustPlan(t, doc, nil, DefaultPlanOptions())

	want := []row{
		{"/dev/sda1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
		{"/dev/sda2", 2, 26, 226, PurposeUEFI, GUIDUEFIPlaceholder, ""},
		{"/dev/sda3", 3, 227, 427, PurposeFS, GUIDLinuxFS, "/boot"},
		{"/dev/sda4", 4, 428, 628, PurposeFS, "fake_guid", "/tmp"},
		{"/dev/sda5", 5, 629, 20067, PurposePV, GUIDLinuxLVM, "os"},
		{"/dev/sda6", 6, 20068, 65665, PurposePV, GUIDLinuxLVM, "image"},
		{"/dev/sda7", 7, 65666, 65686, PurposeConfigdrive, GUIDLinuxFS, ""},
		{"/dev/sdb1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
		{"/dev/sdb2", 2, 26, 226, PurposeUEFI, GUIDUEFIPlaceholder, ""},
		{"/dev/sdb3", 3, 227, 65198, PurposePV, GUIDLinuxLVM, "image"},
		{"/dev/sdc1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
		{"/dev/sdc2", 2, 26, 226, PurposeUEFI, GUIDUEFIPlaceholder, ""},
		{"/dev/sdc3", 3, 227, 65198, PurposePV, GUIDLinuxLVM, "image"},
	}
	if diff := cmp.Diff(want, planRows(p)); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	wantPVs := []PV{
		{Device: "/dev/sda5", VG: "os", MetadataSizeMiB: 28, MetadataCopies: 2},
		{Device: "/dev/sda6", VG: "image", MetadataSizeMiB: 28, MetadataCopies: 2},
		{Device: "/dev/sdb3", VG: "image", MetadataSizeMiB: 28, MetadataCopies: 2},
		{Device: "/dev/sdc3", VG: "image", MetadataSizeMiB: 28, MetadataCopies: 2},
	}
	if diff := cmp.Diff(wantPVs, p.PVs); diff != "" {
		t.Errorf("pvs (-want +got):\n%s", diff)
	}
	wantVGs := []VG{
		{Name: "os", PVs: []string{"/dev/sda5"}},
		{Name: "image", PVs: []string{"/dev/sda6", "/dev/sdb3", "/dev/sdc3"}},
	}
	if diff := cmp.Diff(wantVGs, p.VGs); diff != "" {
		t.Errorf("vgs (-want +got):\n%s", diff)
	}
	wantLVs := []LV{
		{Name: "root", VG: "os", SizeMiB: 15360, Device: "/dev/mapper/os-root"},
		{Name: "swap", VG: "os", SizeMiB: 4014, Device: "/dev/mapper/os-swap"},
		{Name: "glance", VG: "image", SizeMiB: 175347, Device: "/dev/mapper/image-glance"},
	}
	if diff := cmp.Diff(wantLVs, p.LVs); diff != "" {
		t.Errorf("lvs (-want +got):\n%s", diff)
	}
	wantFSs := []FS{
		{Device: "/dev/sda3", Mount: "/boot", Type: "ext2"},
		{Device: "/dev/sda4", Mount: "/tmp", Type: "ext2"},
		{Device: "/dev/mapper/os-root", Mount: "/", Type: "ext4", Image: true},
		{Device: "/dev/mapper/os-swap", Mount: "swap", Type: "swap"},
		{Device: "/dev/mapper/image-glance", Mount: "/var/lib/glance", Type: "xfs"},
	}
	if diff := cmp.Diff(wantFSs, p.FSs); diff != "" {
		t.Errorf("fss (-want +got):\n%s", diff)
	}
	wantImages := []Image{{Mount: "/", URI: "http://10.20.0.1:123/imgs/fake_image.img.gz", Format: "ext4", Container: "gzip", Device: "/dev/mapper/os-root"}}
	if diff := cmp.Diff(wantImages, p.Images); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/dev/sda", "/dev/sdb", "/dev/sdc"}, p.Bootloader); diff != "" {
		t.Errorf("bootloader (-want +got):\n%s", diff)
	}
	if p.Configdrive != "/dev/sda7" {
		t.Errorf("configdrive = %q, want /dev/sda7", p.Configdrive)
	}
	if len(p.MDs) != 0 || p.KeepData {
		t.Errorf("mds = %v, keep_data = %v; want none, false", p.MDs, p.KeepData)
	}
	// The fuel-agent sample is 65535 MiB but its layout ends at 65686: fine
	// as declared (a warning), an error against a real disk of that size.
	if len(p.Warnings) != 2 || !strings.Contains(p.Warnings[0], "/dev/sda: layout needs 65687 MiB") ||
		!strings.Contains(p.Warnings[1], `type GUID "fake_guid" is not a GUID`) {
		t.Errorf("warnings = %q", p.Warnings)
	}
	for _, d := range p.Disks {
		if d.Label != "gpt" || !d.Bootloader || d.SizeMiB != 65535 {
			t.Errorf("disk %s: label %q bootloader %v size %d", d.Device, d.Label, d.Bootloader, d.SizeMiB)
		}
		if got := d.Partitions[0].Flags; len(got) != 1 || got[0] != "bios_grub" {
			t.Errorf("disk %s: partition 1 flags %v, want [bios_grub]", d.Device, got)
		}
	}
}

func TestPlanGoldenFuel90(t *testing.T) {
	doc := planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json")
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	want := []row{
		{"/dev/vda1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
		{"/dev/vda2", 2, 26, 226, PurposeUEFI, GUIDUEFIPlaceholder, ""},
		{"/dev/vda3", 3, 227, 427, PurposeFS, GUIDLinuxFS, "/boot"},
		{"/dev/vda4", 4, 428, 25068, PurposePV, GUIDLinuxLVM, "os"},
		{"/dev/vda5", 5, 25069, 35373, PurposePV, GUIDLinuxLVM, "logs"},
		{"/dev/vda6", 6, 35374, 55918, PurposePV, GUIDLinuxLVM, "mysql"},
		{"/dev/vda7", 7, 55919, 67247, PurposePV, GUIDLinuxLVM, "horizon"},
		{"/dev/vda8", 8, 67248, 81852, PurposePV, GUIDLinuxLVM, "image"},
		{"/dev/vda9", 9, 81853, 81873, PurposeConfigdrive, GUIDLinuxFS, ""},
	}
	if diff := cmp.Diff(want, planRows(p)); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	wantLVs := []LV{
		{Name: "root", VG: "os", SizeMiB: 16384, Device: "/dev/mapper/os-root"},
		{Name: "swap", VG: "os", SizeMiB: 8192, Device: "/dev/mapper/os-swap"},
		{Name: "log", VG: "logs", SizeMiB: 10240, Device: "/dev/mapper/logs-log"},
		{Name: "glance", VG: "image", SizeMiB: 14540, Device: "/dev/mapper/image-glance"},
		{Name: "root", VG: "mysql", SizeMiB: 20480, Device: "/dev/mapper/mysql-root"},
		{Name: "horizontmp", VG: "horizon", SizeMiB: 11264, Device: "/dev/mapper/horizon-horizontmp"},
	}
	if diff := cmp.Diff(wantLVs, p.LVs); diff != "" {
		t.Errorf("lvs (-want +got):\n%s", diff)
	}
	var vgs []string
	for _, vg := range p.VGs {
		vgs = append(vgs, fmt.Sprintf("%s=%s", vg.Name, strings.Join(vg.PVs, ",")))
	}
	if diff := cmp.Diff([]string{"os=/dev/vda4", "logs=/dev/vda5", "mysql=/dev/vda6", "horizon=/dev/vda7", "image=/dev/vda8"}, vgs); diff != "" {
		t.Errorf("vgs (-want +got):\n%s", diff)
	}
	for _, pv := range p.PVs {
		if pv.MetadataSizeMiB != 28 || pv.MetadataCopies != 2 {
			t.Errorf("pv %s: metadatasize %d copies %d, want 28, 2", pv.Device, pv.MetadataSizeMiB, pv.MetadataCopies)
		}
	}
	wantImages := []Image{
		{Mount: "/", URI: "http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64.img.gz", Format: "ext4", Container: "gzip", Device: "/dev/mapper/os-root"},
		{Mount: "/boot", URI: "http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64-boot.img.gz", Format: "ext2", Container: "gzip", Device: "/dev/vda3"},
	}
	if diff := cmp.Diff(wantImages, p.Images); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	var mkfs []string
	for _, fs := range p.FSs {
		if !fs.Image {
			mkfs = append(mkfs, fs.Type+":"+fs.Device)
		}
	}
	if diff := cmp.Diff([]string{"swap:/dev/mapper/os-swap", "ext4:/dev/mapper/logs-log", "xfs:/dev/mapper/image-glance", "ext4:/dev/mapper/mysql-root", "xfs:/dev/mapper/horizon-horizontmp"}, mkfs); diff != "" {
		t.Errorf("mkfs'd filesystems (-want +got):\n%s", diff)
	}
	if p.Configdrive != "/dev/vda9" || len(p.Warnings) != 0 {
		t.Errorf("configdrive %q, warnings %q", p.Configdrive, p.Warnings)
	}
}

func TestPlanNoConfigdrive(t *testing.T) {
	doc := planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json")
	opts := DefaultPlanOptions()
	opts.PrepareConfigdrive = false
	p := mustPlan(t, doc, nil, opts)
	parts := p.Disks[0].Partitions
	if last := parts[len(parts)-1]; last.Number != 8 || last.Purpose != PurposePV || p.Configdrive != "" {
		t.Errorf("last partition %+v, configdrive %q; want vda8 PV and no configdrive", last, p.Configdrive)
	}
}

// variantDoc is the 3-disk sample with its ks_spaces replaced, as
// fuel-agent's test_nailgun does.
func variantDoc(t *testing.T, spaces json.RawMessage) *provision.Document {
	t.Helper()
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	doc.KsMeta.PmData.KsSpaces = nil
	if err := json.Unmarshal(spaces, &doc.KsMeta.PmData.KsSpaces); err != nil {
		t.Fatal(err)
	}
	// fuel-agent's variants leave some VGs undeclared (fuel-agent makes a
	// VG from its PVs) and do not provide every mount the sample's images
	// fill; provision refuses both, so declare the VGs and keep only the
	// images something can take.
	declared := map[string]bool{}
	for _, s := range doc.KsMeta.PmData.KsSpaces {
		if s.Type == provision.SpaceVG {
			declared[s.ID] = true
		}
	}
	mounts := map[string]bool{}
	for _, s := range doc.KsMeta.PmData.KsSpaces {
		for _, v := range s.Volumes {
			if v.Size > 0 {
				mounts[v.Mount] = true
			}
			if v.Type == provision.VolPV && v.Size > 0 && !declared[v.VG] {
				declared[v.VG] = true
				doc.KsMeta.PmData.KsSpaces = append(doc.KsMeta.PmData.KsSpaces, provision.Space{Type: provision.SpaceVG, ID: v.VG})
			}
		}
	}
	for m := range doc.KsMeta.ImageData {
		if !mounts[m] {
			delete(doc.KsMeta.ImageData, m)
		}
	}
	return doc
}

func loadVariants(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile("testdata/ks_spaces_variants.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPlanKsSpacesVariants(t *testing.T) {
	variants := loadVariants(t)
	concat := func(a, b string) json.RawMessage {
		var x, y []json.RawMessage
		_ = json.Unmarshal(variants[a], &x)
		_ = json.Unmarshal(variants[b], &y)
		out, _ := json.Marshal(append(x, y...))
		return out
	}
	tests := []struct {
		name    string
		spaces  json.RawMessage
		wantErr string // substring; "" = planned
		rows    []row  // checked when set
		boot    string // device of /boot ("" = none)
		root    string // device of /
		cd      string
		bl      []string
		keep    bool
		check   func(t *testing.T, p *Plan)
	}{
		{
			name: "SINGLE_DISK_KS_SPACES", spaces: variants["SINGLE_DISK_KS_SPACES"],
			rows: []row{
				{"/dev/sda1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
				{"/dev/sda2", 2, 26, 226, PurposeUEFI, GUIDUEFIPlaceholder, ""},
				{"/dev/sda3", 3, 227, 427, PurposeFS, GUIDLinuxFS, "/boot"},
				{"/dev/sda4", 4, 428, 628, PurposeFS, GUIDLinuxFS, "/"},
				{"/dev/sda5", 5, 629, 649, PurposeConfigdrive, GUIDLinuxFS, ""},
			},
			boot: "/dev/sda3", root: "/dev/sda4", cd: "/dev/sda5", bl: []string{"/dev/sda"}, keep: true,
			check: func(t *testing.T, p *Plan) {
				// elevate_keep_data: the flag moved from the partition to "/".
				for _, fs := range p.FSs {
					if fs.KeepData != (fs.Mount == "/") {
						t.Errorf("fs %s keep_data = %v", fs.Mount, fs.KeepData)
					}
				}
				for _, part := range p.Disks[0].Partitions {
					if part.KeepData {
						t.Errorf("partition %s still keep_data", part.Device)
					}
				}
			},
		},
		{
			name: "SECOND_DISK_OS_KS_SPACES", spaces: variants["SECOND_DISK_OS_KS_SPACES"],
			boot: "/dev/sdb3", root: "/dev/sdb4", cd: "/dev/sdb5", bl: []string{"/dev/sdb"}, keep: true,
			check: func(t *testing.T, p *Plan) {
				if len(p.Disks) != 1 || p.Disks[0].Device != "/dev/sdb" {
					t.Errorf("disks %v: sda has only a boot volume and must be untouched", p.Disks)
				}
			},
		},
		{
			name: "MPATH_DISK_KS_SPACES", spaces: variants["MPATH_DISK_KS_SPACES"],
			boot: "/dev/mapper/12312-part3", root: "/dev/mapper/12312-part4", cd: "/dev/mapper/12312-part5",
			bl: []string{"/dev/mapper/12312", "/dev/sdc"},
			check: func(t *testing.T, p *Plan) {
				if got := p.Disks[1].Partitions[2]; got.Device != "/dev/sdc3" || got.Mount != "/home" {
					t.Errorf("sdc3 = %+v", got)
				}
			},
		},
		{
			name: "NO_BOOT_KS_SPACES", spaces: variants["NO_BOOT_KS_SPACES"],
			root: "/dev/sda3", cd: "/dev/sda4", bl: []string{"/dev/sda"},
		},
		{
			name: "MD_RAID_KS_SPACES", spaces: variants["MD_RAID_KS_SPACES"],
			boot: "/dev/sda3", root: "/dev/md0", cd: "/dev/sda5", bl: []string{"/dev/sda"},
			check: func(t *testing.T, p *Plan) {
				want := []MD{{Device: "/dev/md0", Level: "mirror", Metadata: "default", Members: []string{"/dev/sda4"}, Spares: []string{}, Mount: "/"}}
				if diff := cmp.Diff(want, p.MDs); diff != "" {
					t.Errorf("mds (-want +got):\n%s", diff)
				}
				if got := p.Disks[0].Partitions[3]; got.Purpose != PurposeRaid || got.TypeGUID != GUIDLinuxRAID || got.MD != "/dev/md0" {
					t.Errorf("sda4 = %+v", got)
				}
			},
		},
		{
			name: "FIRST_DISK_HUGE_KS_SPACES", spaces: variants["FIRST_DISK_HUGE_KS_SPACES"],
			boot: "/dev/sda3", root: "/dev/sda4", cd: "/dev/sda5", bl: []string{"/dev/sda", "/dev/sdb"},
			check: func(t *testing.T, p *Plan) {
				// sdb's /boot raid volume is skipped: /tmp is sdb3.
				if got := p.Disks[1].Partitions[2]; got.Device != "/dev/sdb3" || got.Mount != "/tmp" {
					t.Errorf("sdb3 = %+v", got)
				}
			},
		},
		{
			name: "ONLY_ROOTFS_IMAGE_SPACES", spaces: variants["ONLY_ROOTFS_IMAGE_SPACES"],
			rows: []row{
				{"/dev/sda1", 1, 1, 25, PurposeBiosGrub, GUIDBIOSBoot, ""},
				{"/dev/sda2", 2, 26, 226, PurposeUEFI, GUIDUEFIPlaceholder, ""},
				{"/dev/sda3", 3, 227, 10227, PurposeFS, GUIDLinuxFS, "/"},
				{"/dev/sda4", 4, 10228, 10248, PurposeConfigdrive, GUIDLinuxFS, ""},
			},
			root: "/dev/sda3", cd: "/dev/sda4", bl: []string{"/dev/sda"},
		},
		{
			name: "FIRST_DISK_NVME_KS_SPACES", spaces: variants["FIRST_DISK_NVME_KS_SPACES"],
			// /boot never on NVMe: it goes to sda although nvme0n1 comes first.
			boot: "/dev/sda3", root: "/dev/nvme0n1p3", cd: "/dev/nvme0n1p4", bl: []string{"/dev/nvme0n1", "/dev/sda"},
		},
		{
			name: "ONLY_ONE_NVME_KS_SPACES", spaces: variants["ONLY_ONE_NVME_KS_SPACES"],
			wantErr: "/boot partition has not been created: every disk with a /boot volume is NVMe (nvme0n1)",
		},
		{
			name: "MANY_HUGE_DISKS_KS_SPACES", spaces: variants["MANY_HUGE_DISKS_KS_SPACES"],
			boot: "/dev/sda3", root: "/dev/sda4", cd: "/dev/sda5", bl: []string{"/dev/sda", "/dev/sdb"},
		},
		{
			name: "LVM_META_POOL_KS_SPACES", spaces: variants["LVM_META_POOL_KS_SPACES"],
			boot: "/dev/sda3", root: "/dev/mapper/os-root", cd: "/dev/sda6", bl: []string{"/dev/sda"},
			check: func(t *testing.T, p *Plan) {
				if len(p.Disks) != 1 {
					t.Errorf("%d disks planned; sdb and sdc carry only zero-size volumes and must be untouched", len(p.Disks))
				}
			},
		},
		{
			name: "SINGLE_NVME_DISK_KS_SPACES", spaces: variants["SINGLE_NVME_DISK_KS_SPACES"],
			wantErr: "every disk with a /boot volume is NVMe (nvme0n1)",
		},
		{
			// fuel-agent's test_parse_partition_scheme_for_nvme_disks.
			name: "SINGLE_NVME_DISK+SINGLE_DISK", spaces: concat("SINGLE_NVME_DISK_KS_SPACES", "SINGLE_DISK_KS_SPACES"),
			boot: "/dev/sda3", root: "/dev/sda4", cd: "/dev/nvme0n1p5", bl: []string{"/dev/nvme0n1", "/dev/sda"}, keep: true,
		},
		{
			name: "FAKE_RAID_DISK_KS_SPACES", spaces: variants["FAKE_RAID_DISK_KS_SPACES"],
			boot: "/dev/md123p3", root: "/dev/mapper/os-root", cd: "/dev/md123p5", bl: []string{"/dev/sda", "/dev/sdb", "/dev/md123"},
		},
	}
	for name := range variants {
		if name == "_extra_volumes" {
			continue
		}
		found := false
		for _, tt := range tests {
			if tt.name == name {
				found = true
			}
		}
		if !found {
			t.Errorf("variant %s has no expected outcome", name)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := variantDoc(t, tt.spaces)
			p, err := NewPlan(doc, nil, DefaultPlanOptions())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewPlan error = %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrLayout) {
					t.Errorf("error %v does not wrap ErrLayout", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			if tt.rows != nil {
				if diff := cmp.Diff(tt.rows, planRows(p)); diff != "" {
					t.Errorf("partitions (-want +got):\n%s", diff)
				}
			}
			fsDev := func(m string) string {
				for _, fs := range p.FSs {
					if fs.Mount == m {
						return fs.Device
					}
				}
				return ""
			}
			if got := fsDev("/boot"); got != tt.boot {
				t.Errorf("/boot on %q, want %q", got, tt.boot)
			}
			if got := fsDev("/"); got != tt.root {
				t.Errorf("/ on %q, want %q", got, tt.root)
			}
			if p.Configdrive != tt.cd {
				t.Errorf("configdrive %q, want %q", p.Configdrive, tt.cd)
			}
			if diff := cmp.Diff(tt.bl, p.Bootloader); diff != "" {
				t.Errorf("bootloader (-want +got):\n%s", diff)
			}
			if p.KeepData != tt.keep {
				t.Errorf("keep_data %v, want %v", p.KeepData, tt.keep)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
			planCheckInvariants(t, p)
		})
	}
}

// planCheckInvariants: what every computed plan must satisfy.
func planCheckInvariants(t *testing.T, p *Plan) {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range p.Disks {
		var prevEnd int64
		for i, part := range d.Partitions {
			if part.Number != i+1 || part.BeginMiB >= part.EndMiB || part.BeginMiB <= prevEnd && i > 0 || part.BeginMiB < 1 {
				t.Errorf("disk %s: bad partition %+v (previous end %d)", d.Device, part, prevEnd)
			}
			if seen[part.Device] {
				t.Errorf("partition device %s twice", part.Device)
			}
			seen[part.Device] = true
			prevEnd = part.EndMiB
		}
	}
	mounts := map[string]bool{}
	for _, fs := range p.FSs {
		if fs.Mount != "" && fs.Mount != "swap" {
			if mounts[fs.Mount] {
				t.Errorf("mount %s twice", fs.Mount)
			}
			mounts[fs.Mount] = true
		}
	}
}

func TestPlanCephJournal(t *testing.T) {
	variants := loadVariants(t)
	var extra map[string]provision.Volume
	if err := json.Unmarshal(variants["_extra_volumes"], &extra); err != nil {
		t.Fatal(err)
	}
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	journal := extra["CEPH_JOURNAL"]
	journal.Size = 30000
	// 3 OSDs (one per disk), one journal volume on sda: ratio 3, each
	// journal 30000/3 = 10000 MiB (under the 10240 cap).
	spaces := doc.KsMeta.PmData.KsSpaces
	spaces[0].Volumes = append(spaces[0].Volumes, journal)
	for i := range 3 {
		spaces[i].Volumes = append(spaces[i].Volumes, extra["CEPH_DATA"])
		spaces[i].Size += 70000 // room for them
	}
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	sda := p.Disks[0].Partitions
	var got []string
	for _, part := range sda[6:] {
		got = append(got, fmt.Sprintf("%s %d-%d %s %s", part.Device, part.BeginMiB, part.EndMiB, part.Purpose, part.TypeGUID))
	}
	want := []string{
		"/dev/sda7 65666-75666 cephjournal 45b0969e-9b03-4f30-b4c6-b4b80ceff106",
		"/dev/sda8 75667-85667 cephjournal 45b0969e-9b03-4f30-b4c6-b4b80ceff106",
		"/dev/sda9 85668-95668 cephjournal 45b0969e-9b03-4f30-b4c6-b4b80ceff106",
		"/dev/sda10 95669-99002 none 4fbd7e29-9d25-41b8-afd0-062c0ceff05d",
		"/dev/sda11 99003-99023 configdrive " + GUIDLinuxFS,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sda tail (-want +got):\n%s", diff)
	}
	// The cap: 3 OSDs, journal of 60000 → 20000 each, capped at 10240.
	spaces[0].Volumes[len(spaces[0].Volumes)-2].Size = 60000
	p = mustPlan(t, doc, nil, DefaultPlanOptions())
	if j := p.Disks[0].Partitions[6]; j.SizeMiB() != 10240 {
		t.Errorf("journal size %d, want the 10240 cap", j.SizeMiB())
	}
	// A journal with no OSD anywhere is rejected (fuel-agent divides by zero).
	doc = planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	doc.KsMeta.PmData.KsSpaces[0].Volumes = append(doc.KsMeta.PmData.KsSpaces[0].Volumes, journal)
	doc.KsMeta.PmData.KsSpaces[0].Size += 70000
	if _, err := NewPlan(doc, nil, DefaultPlanOptions()); err == nil || !strings.Contains(err.Error(), "ks_meta.pm_data.ks_spaces[0].volumes[6]: ceph journal volume but no ceph OSD") {
		t.Errorf("journal without OSD: err = %v", err)
	}
}

func TestPlanSwiftPartitionNoFS(t *testing.T) {
	variants := loadVariants(t)
	var extra map[string]provision.Volume
	if err := json.Unmarshal(variants["_extra_volumes"], &extra); err != nil {
		t.Fatal(err)
	}
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	for i := range 3 {
		doc.KsMeta.PmData.KsSpaces[i].Volumes = append(doc.KsMeta.PmData.KsSpaces[i].Volumes, extra["SWIFT"])
	}
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	// mount "none" with file_system xfs: an xfs without mount point.
	if len(p.FSs) != 8 {
		t.Errorf("%d filesystems, want 8 (fuel-agent test_partition_scheme_no_mount_fs)", len(p.FSs))
	}
	part := p.Disks[1].Partitions[3]
	if part.TypeGUID != "deadbeef-9d34-4175-8ded-1ce68967a5ee" || part.Purpose != PurposeFS || part.Mount != "" {
		t.Errorf("sdb4 = %+v", part)
	}
}

func TestPlanKeepDataElevation(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	// keep the "image" VG: its PV on sdb carries keep_data.
	doc.KsMeta.PmData.KsSpaces[1].Volumes[4].KeepData = true
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	if !p.KeepData {
		t.Fatal("KeepData = false")
	}
	for _, part := range p.Disks[1].Partitions {
		if part.KeepData {
			t.Errorf("partition %s keeps its flag; it must move to the VG", part.Device)
		}
	}
	for _, vg := range p.VGs {
		if vg.KeepData {
			t.Errorf("vg %s keeps the flag; it must move to its LVs, then their FS", vg.Name)
		}
	}
	for _, lv := range p.LVs {
		if lv.KeepData {
			t.Errorf("lv %s keeps the flag; it must move to its FS", lv.Name)
		}
	}
	for _, fs := range p.FSs {
		if want := fs.Device == "/dev/mapper/image-glance"; fs.KeepData != want {
			t.Errorf("fs %s keep_data = %v, want %v", fs.Device, fs.KeepData, want)
		}
	}

	// A kept VG without LVs keeps the flag itself.
	doc = planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	doc.KsMeta.PmData.KsSpaces[0].Volumes = append(doc.KsMeta.PmData.KsSpaces[0].Volumes, provision.Volume{Type: "pv", VG: "spare", Size: 100, LVMMetaSize: 64, KeepData: true})
	doc.KsMeta.PmData.KsSpaces[0].Size += 100
	doc.KsMeta.PmData.KsSpaces = append(doc.KsMeta.PmData.KsSpaces, provision.Space{Type: provision.SpaceVG, ID: "spare"})
	p = mustPlan(t, doc, nil, DefaultPlanOptions())
	if vg := p.VGs[len(p.VGs)-1]; vg.Name != "spare" || !vg.KeepData || !p.KeepData {
		t.Errorf("vg %+v, plan keep %v", vg, p.KeepData)
	}

	// A kept md member keeps its flag (fuel-agent does not elevate mds).
	doc = variantDoc(t, loadVariants(t)["MD_RAID_KS_SPACES"])
	doc.KsMeta.PmData.KsSpaces[0].Volumes[2].KeepData = true
	p = mustPlan(t, doc, nil, DefaultPlanOptions())
	if !p.Disks[0].Partitions[3].KeepData || !p.KeepData {
		t.Errorf("md member keep_data lost: %+v", p.Disks[0].Partitions[3])
	}
}

func TestPlanBootable(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	doc.KsMeta.PmData.KsSpaces[1].Bootable = true
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	for _, fs := range p.FSs {
		if fs.Mount == "/boot" && fs.Device != "/dev/sdb3" {
			t.Errorf("/boot on %s, want the bootable /dev/sdb3", fs.Device)
		}
	}
	doc.KsMeta.PmData.KsSpaces[2].Bootable = true
	_, err := NewPlan(doc, nil, DefaultPlanOptions())
	if err == nil || !strings.Contains(err.Error(), "ks_meta.pm_data.ks_spaces[2].bootable: only one disk may be bootable, ks_spaces[1] is bootable too") {
		t.Errorf("two bootable disks: err = %v", err)
	}
}

func TestPlanMDMetadataByProfile(t *testing.T) {
	for _, tt := range []struct {
		profile string
		grub    int
		want    string
	}{
		{"base-centos-x86_64", 0, "0.90"},
		{"base-centos7-x86_64", 0, "default"},
		{"base-ubuntu_1404_x86_64", 0, "default"},
		{"base-ubuntu_1404_x86_64", 1, "0.90"},
	} {
		doc := variantDoc(t, loadVariants(t)["MD_RAID_KS_SPACES"])
		doc.Profile = tt.profile
		opts := DefaultPlanOptions()
		opts.GrubVersion = tt.grub
		p := mustPlan(t, doc, nil, opts)
		if got := p.MDs[0].Metadata; got != tt.want {
			t.Errorf("profile %q grub %d: md metadata %q, want %q", tt.profile, tt.grub, got, tt.want)
		}
	}
}

func TestPlanNaming(t *testing.T) {
	for _, tt := range []struct {
		dev  string
		n    int
		want string
	}{
		{"/dev/sda", 3, "/dev/sda3"},
		{"/dev/vda", 1, "/dev/vda1"},
		{"/dev/nvme0n1", 3, "/dev/nvme0n1p3"},
		{"/dev/cciss/c0d0", 2, "/dev/cciss/c0d0p2"},
		{"/dev/loop0", 1, "/dev/loop0p1"},
		{"/dev/md123", 3, "/dev/md123p3"},
		{"/dev/mapper/mpatha", 3, "/dev/mapper/mpatha-part3"},
		{"/dev/mapper/12312", 10, "/dev/mapper/12312-part10"},
	} {
		if got := planPartitionDevice(tt.dev, tt.n); got != tt.want {
			t.Errorf("planPartitionDevice(%q, %d) = %q, want %q", tt.dev, tt.n, got, tt.want)
		}
	}
	for _, tt := range []struct{ vg, lv, want string }{
		{"os", "root", "/dev/mapper/os-root"},
		{"my-vg", "my-lv", "/dev/mapper/my--vg-my--lv"},
		{"a--b", "c", "/dev/mapper/a----b-c"},
	} {
		if got := LVDevice(tt.vg, tt.lv); got != tt.want {
			t.Errorf("LVDevice(%q, %q) = %q, want %q", tt.vg, tt.lv, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{"exactly12chr", "exactly12chr"},
		{"thirteen-char", "thirteen-cha"},
		{"ééééééé", "éééééé"}, // 14 bytes: cut at a rune boundary
	} {
		if got := planTruncLabel(tt.in); got != tt.want {
			t.Errorf("planTruncLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPlanFSDefaults(t *testing.T) {
	doc := planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json")
	vols := doc.KsMeta.PmData.KsSpaces[0].Volumes
	vols[1].FileSystem = "" // /boot without file_system: ext2
	doc.KsMeta.PmData.KsSpaces[0].Volumes = append(vols,
		provision.Volume{Type: "partition", Size: 10, Mount: "/srv"},                                                      // xfs
		provision.Volume{Type: "partition", Size: 10, Mount: "swap", FileSystem: "swap"},                                  // swap GUID
		provision.Volume{Type: "partition", Size: 10, Mount: "/data", FileSystem: "ext4", DiskLabel: "a-very-long-label"}, // label cut
		provision.Volume{Type: "partition", Size: 10, Mount: "none", FileSystem: "none"},                                  // nothing on it
	)
	doc.KsMeta.PmData.KsSpaces[0].Size += 1000
	p := mustPlan(t, doc, nil, DefaultPlanOptions())
	got := map[string]FS{}
	for _, fs := range p.FSs {
		got[fs.Mount] = fs
	}
	if got["/boot"].Type != "ext2" || got["/srv"].Type != "xfs" || got["/data"].Label != "a-very-long-" {
		t.Errorf("fs defaults: /boot %+v /srv %+v /data %+v", got["/boot"], got["/srv"], got["/data"])
	}
	parts := p.Disks[0].Partitions
	if parts[9].TypeGUID != GUIDLinuxSwap || parts[11].Purpose != PurposeNone || parts[12].Purpose != PurposeConfigdrive {
		t.Errorf("partitions 10, 12, 13: %+v / %+v / %+v", parts[9], parts[11], parts[12])
	}
}

func TestPlanRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *provision.Document)
		want   []string
		is     error // default ErrLayout
	}{
		{
			name:   "lvm_meta_size below 10",
			mutate: func(d *provision.Document) { d.KsMeta.PmData.KsSpaces[0].Volumes[4].LVMMetaSize = 8 },
			want:   []string{"ks_meta.pm_data.ks_spaces[0].volumes[4].lvm_meta_size: must be >= 10, got 8"},
		},
		{
			name:   "relative mount",
			mutate: func(d *provision.Document) { d.KsMeta.PmData.KsSpaces[0].Volumes[2].Mount = "tmp" },
			want:   []string{`ks_meta.pm_data.ks_spaces[0].volumes[2].mount: must be an absolute path, "swap" or "none", got "tmp"`},
		},
		{
			name: "lv without pv",
			mutate: func(d *provision.Document) {
				d.KsMeta.PmData.KsSpaces[4].Volumes[0].Size = 10
			},
			want: []string{`ks_meta.pm_data.ks_spaces[4].id: volume group "zero_size" has logical volumes but no physical volume`},
		},
		{
			name: "image for a mount nothing provides",
			mutate: func(d *provision.Document) {
				d.KsMeta.ImageData["/var"] = provision.ImageData{URI: "file:///x", Format: "ext4", Container: "raw"}
			},
			want: []string{`ks_meta.image_data["/var"]: no volume is mounted at "/var" to write this image to`},
		},
		{
			name: "no disk for the configdrive",
			mutate: func(d *provision.Document) {
				// "/" on an LV of a VG not named os: no disk qualifies.
				for i := range d.KsMeta.PmData.KsSpaces {
					s := &d.KsMeta.PmData.KsSpaces[i]
					if s.ID == "os" {
						s.ID = "system"
					}
					for j := range s.Volumes {
						if s.Volumes[j].VG == "os" {
							s.Volumes[j].VG = "system"
						}
					}
				}
			},
			want: []string{`no partitioned disk holds "/"`},
		},
		{
			name:   "same disk twice",
			mutate: func(d *provision.Document) { d.KsMeta.PmData.KsSpaces[2].Name = "sdb" },
			want:   []string{`ks_meta.pm_data.ks_spaces[2].name: disk "sdb" is already declared by ks_spaces[1]`},
		},
		{
			name:   "no disk at all",
			mutate: func(d *provision.Document) { d.KsMeta.PmData.KsSpaces = d.KsMeta.PmData.KsSpaces[3:] },
			want:   []string{`ks_meta.pm_data.ks_spaces[0].id: volume group "os" has logical volumes but no physical volume`},
		},
		{
			name:   "absurd size",
			mutate: func(d *provision.Document) { d.KsMeta.PmData.KsSpaces[0].Volumes[2].Size = 1 << 62 },
			want:   []string{"ks_meta.pm_data.ks_spaces[0].volumes[2].size: 4611686018427387904 MiB is beyond any disk"},
		},
		{
			name: "root over 16 TiB",
			mutate: func(d *provision.Document) {
				d.KsMeta.PmData.KsSpaces[0].Volumes[2].Mount = "/"
				d.KsMeta.PmData.KsSpaces[0].Volumes[2].Size = 16777217
			},
			want: []string{"ks_meta.pm_data.ks_spaces[0].volumes[2].size: the root file system must be at most 16777216 MiB (16 TiB), got 16777217"},
		},
		{
			name: "several problems at once",
			mutate: func(d *provision.Document) {
				d.KsMeta.PmData.KsSpaces[0].Volumes[4].LVMMetaSize = 2
				d.KsMeta.PmData.KsSpaces[1].Volumes[4].LVMMetaSize = 3
				d.KsMeta.ImageData["/opt"] = provision.ImageData{}
			},
			want: []string{
				"ks_spaces[0].volumes[4].lvm_meta_size: must be >= 10, got 2",
				"ks_spaces[1].volumes[4].lvm_meta_size: must be >= 10, got 3",
				`ks_meta.image_data["/opt"]`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
			tt.mutate(doc)
			_, err := NewPlan(doc, nil, DefaultPlanOptions())
			if err == nil {
				t.Fatal("NewPlan succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			is := tt.is
			if is == nil {
				is = ErrLayout
			}
			if !errors.Is(err, is) {
				t.Errorf("error does not wrap %v", is)
			}
		})
	}
}

func TestPlanNilDocument(t *testing.T) {
	if _, err := NewPlan(nil, nil, DefaultPlanOptions()); err == nil {
		t.Error("NewPlan(nil) succeeded")
	}
}

// A document whose layout did not decode (a size that is not an integer,
// left zero by Parse) is never planned, even when the caller ignored
// Parse's error: a disk read as "size 0" would be left out of the plan.
func TestPlanRefusesUndecodedLayout(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "provision_sample_nailgun_3disks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	spaces := m["ks_meta"].(map[string]any)["pm_data"].(map[string]any)["ks_spaces"].([]any)
	spaces[1].(map[string]any)["size"] = "big"
	data, _ = json.Marshal(m)
	doc, perr := provision.Parse(data)
	if perr == nil || doc == nil {
		t.Fatalf("Parse = %v, %v; want a document and its problem", doc, perr)
	}
	_, err = NewPlan(doc, nil, DefaultPlanOptions())
	if err == nil || !strings.Contains(err.Error(), `ks_meta.pm_data.ks_spaces[1].size: must be an integer, got string "big"`) || !errors.Is(err, ErrLayout) {
		t.Errorf("NewPlan = %v, want the size problem as ErrLayout", err)
	}
}
