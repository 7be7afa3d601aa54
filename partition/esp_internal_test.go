package partition

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/provision"
)

// espRow is what the boot mode decides about one bootable disk's first
// two partitions.
type espRow struct {
	Dev     string
	Purpose string
	GUID    string
	Flags   string
	SizeMiB int64
}

func espRows(p *Plan) []espRow {
	var out []espRow
	for _, d := range p.Disks {
		for _, part := range d.Partitions {
			if part.Number > 2 {
				continue
			}
			out = append(out, espRow{part.Device, part.Purpose, part.TypeGUID, strings.Join(part.Flags, ","), part.SizeMiB()})
		}
	}
	return out
}

// espFSs are the plan's vfat filesystems.
func espFSs(p *Plan) []FS {
	var out []FS
	for _, fs := range p.FSs {
		if fs.Type == "vfat" {
			out = append(out, fs)
		}
	}
	return out
}

func TestPlanBootModes(t *testing.T) {
	exampleDoc := func(t *testing.T) *provision.Document {
		data, err := os.ReadFile("../examples/provision.json")
		if err != nil {
			t.Fatal(err)
		}
		return planDecode(t, data)
	}
	threeDisks := func(t *testing.T) *provision.Document { return planLoadDoc(t, "provision_sample_nailgun_3disks.json") }
	fuel90 := func(t *testing.T) *provision.Document { return planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json") }
	scheme := func(t *testing.T) *provision.Document {
		doc := schemeDoc(t)
		for i := range doc.Partitioning.Parteds {
			doc.Partitioning.Parteds[i].InstallBootloader = doc.Partitioning.Parteds[i].Name == "/dev/sda"
		}
		return doc
	}
	bios := func(dev string) []espRow {
		return []espRow{
			{dev + "1", PurposeBiosGrub, GUIDBIOSBoot, "bios_grub", 24},
			{dev + "2", PurposeUEFI, GUIDUEFIPlaceholder, "", 200},
		}
	}
	esp := func(dev string) []espRow {
		return []espRow{
			{dev + "1", PurposeBiosGrub, GUIDBIOSBoot, "bios_grub", 24},
			{dev + "2", PurposeESP, GUIDEFISystem, "boot,esp", 200},
		}
	}
	cat := func(rs ...[]espRow) []espRow {
		var out []espRow
		for _, r := range rs {
			out = append(out, r...)
		}
		return out
	}
	fat32 := func(dev, mount, label string) FS {
		return FS{Device: dev, Mount: mount, Type: "vfat", Label: label, Options: "-F 32"}
	}
	tests := []struct {
		name string
		doc  func(t *testing.T) *provision.Document
		mode string
		rows []espRow
		fss  []FS
	}{
		{"example, as booted in BIOS", exampleDoc, "", bios("/dev/vda"), nil},
		{"example, bios", exampleDoc, "bios", bios("/dev/vda"), nil},
		{"example, uefi", exampleDoc, "uefi", esp("/dev/vda"), []FS{fat32("/dev/vda2", "/boot/efi", "ESP0")}},
		{"example, both", exampleDoc, "both", esp("/dev/vda"), []FS{fat32("/dev/vda2", "/boot/efi", "ESP0")}},
		{"fuel 9.0 one disk, uefi", fuel90, "uefi", esp("/dev/vda"), []FS{fat32("/dev/vda2", "/boot/efi", "ESP0")}},
		{"fuel 9.0 one disk, bios", fuel90, "bios", bios("/dev/vda"), nil},
		// Every partitioned disk is bootable in fuel-agent (grub on each):
		// each gets an ESP, only the first is mounted.
		{"nailgun 3 disks, uefi", threeDisks, "uefi", cat(esp("/dev/sda"), esp("/dev/sdb"), esp("/dev/sdc")),
			[]FS{fat32("/dev/sda2", "/boot/efi", "ESP0"), fat32("/dev/sdb2", "", "ESP1"), fat32("/dev/sdc2", "", "ESP2")}},
		{"nailgun 3 disks, both", threeDisks, "both", cat(esp("/dev/sda"), esp("/dev/sdb"), esp("/dev/sdc")),
			[]FS{fat32("/dev/sda2", "/boot/efi", "ESP0"), fat32("/dev/sdb2", "", "ESP1"), fat32("/dev/sdc2", "", "ESP2")}},
		{"nailgun 3 disks, bios", threeDisks, "bios", cat(bios("/dev/sda"), bios("/dev/sdb"), bios("/dev/sdc")), nil},
		// A pre-computed scheme: only install_bootloader disks get an ESP.
		{"simple driver scheme, uefi", scheme, "uefi",
			[]espRow{
				{"/dev/sdb1", PurposeBiosGrub, GUIDBIOSBoot, "bios_grub", 24},
				{"/dev/sdb2", PurposeUEFI, GUIDUEFIPlaceholder, "", 200},
				{"/dev/sda1", PurposeBiosGrub, GUIDBIOSBoot, "bios_grub", 24},
				{"/dev/sda2", PurposeESP, GUIDEFISystem, "boot,esp", 200},
			},
			[]FS{fat32("/dev/sda2", "/boot/efi", "ESP0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DefaultPlanOptions()
			opts.BootMode = tt.mode
			p := mustPlan(t, tt.doc(t), nil, opts)
			if diff := cmp.Diff(tt.rows, espRows(p)); diff != "" {
				t.Errorf("first two partitions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.fss, espFSs(p)); diff != "" {
				t.Errorf("vfat filesystems (-want +got):\n%s", diff)
			}
			if p.BootMode != tt.mode {
				t.Errorf("plan boot mode %q, want %q", p.BootMode, tt.mode)
			}
			var wantESPs []string
			for _, fs := range tt.fss {
				wantESPs = append(wantESPs, fs.Device)
			}
			var gotESPs []string
			for _, e := range p.ESPs() {
				gotESPs = append(gotESPs, e.Device)
			}
			if diff := cmp.Diff(wantESPs, gotESPs); diff != "" {
				t.Errorf("ESPs (-want +got):\n%s", diff)
			}
			// The mode changes no partition's place: the rest of the layout
			// is the BIOS one.
			opts.BootMode = provision.BootModeBIOS
			ref := mustPlan(t, tt.doc(t), nil, opts)
			if len(ref.Disks) != len(p.Disks) {
				t.Fatalf("%d disks, bios plan has %d", len(p.Disks), len(ref.Disks))
			}
			for i := range p.Disks {
				for j, part := range p.Disks[i].Partitions {
					r := ref.Disks[i].Partitions[j]
					if part.Device != r.Device || part.BeginMiB != r.BeginMiB || part.EndMiB != r.EndMiB {
						t.Errorf("%s moved: %d-%d, bios plan %s %d-%d", part.Device, part.BeginMiB, part.EndMiB, r.Device, r.BeginMiB, r.EndMiB)
					}
				}
			}
			// The mkfs of every ESP is planned, as FAT32.
			ops, err := Operations(p, "")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, op := range ops {
				if op.Kind == OpMkfs && op.FSType == "vfat" {
					n++
					if want := []string{"mkfs.vfat", "-n"}; !strings.HasPrefix(strings.Join(op.Argv, " "), strings.Join(want, " ")) || !strings.Contains(strings.Join(op.Argv, " "), "-F 32 /dev/") {
						t.Errorf("mkfs of %s: %q", op.Device, op.Argv)
					}
				}
			}
			if n != len(tt.fss) {
				t.Errorf("%d vfat mkfs ops, want %d", n, len(tt.fss))
			}
		})
	}
}

// On a 4Kn disk the 200 MiB ESP has 51200 sectors: too few clusters for
// FAT32. It is made FAT16, with a warning.
func TestPlanESP4Kn(t *testing.T) {
	doc := planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json")
	s := doc.KsMeta.PmData.KsSpaces[0]
	inv := []Device{{Name: s.Name, Path: "/dev/" + s.Name, SizeMiB: s.Size + 100, LogicalSectorSize: 4096}}
	opts := DefaultPlanOptions()
	opts.BootMode = provision.BootModeUEFI
	p := mustPlan(t, doc, inv, opts)
	fss := espFSs(p)
	if len(fss) != 1 || fss[0].Options != "" || fss[0].Mount != ESPMount {
		t.Fatalf("vfat filesystems %+v, want one FAT16 (no -F 32) at /boot/efi", fss)
	}
	found := false
	for _, w := range p.Warnings {
		if strings.Contains(w, "too few 4096-byte sectors for FAT32") {
			found = true
		}
	}
	if !found {
		t.Errorf("warnings %q: want the FAT16 one", p.Warnings)
	}
}

func TestPlanBootModeRejects(t *testing.T) {
	opts := DefaultPlanOptions()
	opts.BootMode = "legacy"
	_, err := NewPlan(planLoadDoc(t, "provision_fuel90_ubuntu_1disk.json"), nil, opts)
	if err == nil || !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), `boot mode "legacy"`) {
		t.Errorf("error %v, want ErrLayout naming the mode", err)
	}

	// A scheme whose bootable disk has no "UEFI" partition cannot get an ESP.
	doc := schemeDoc(t)
	for i := range doc.Partitioning.Parteds {
		pd := &doc.Partitioning.Parteds[i]
		if pd.Name == "/dev/sdb" {
			pd.InstallBootloader = true
			pd.Partitions = append(pd.Partitions[:1], pd.Partitions[2:]...)
		}
	}
	opts.BootMode = provision.BootModeUEFI
	_, err = NewPlan(doc, nil, opts)
	if err == nil || !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), `disk /dev/sdb: boot mode "uefi" needs an EFI System Partition`) {
		t.Errorf("error %v, want the missing ESP of /dev/sdb", err)
	}
}
