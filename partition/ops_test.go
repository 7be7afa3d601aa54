package partition

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiskWipeRanges(t *testing.T) {
	r := func(a, b int64) ByteRange { return ByteRange{Offset: a << 20, Length: (b - a) << 20} }
	for _, tt := range []struct {
		name  string
		parts [][2]int64
		want  []ByteRange
	}{
		{"no partitions: first MiB", nil, []ByteRange{r(0, 1)}},
		// Begin 1: [0,3) swallows the first MiB; end 25: [22,27).
		{"one partition", [][2]int64{{1, 25}}, []ByteRange{r(0, 3), r(22, 27)}},
		// fuel-agent's 1 MiB gaps: end 25 and begin 26 merge to [22,28).
		{"fuel layout", [][2]int64{{1, 25}, {26, 226}, {227, 427}}, []ByteRange{r(0, 3), r(22, 28), r(223, 229), r(424, 429)}},
		{"small partitions merge", [][2]int64{{1, 2}, {3, 4}}, []ByteRange{r(0, 6)}},
		{"far away", [][2]int64{{1000, 2000}}, []ByteRange{r(0, 1), r(997, 1002), r(1997, 2002)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Disk{Device: "/dev/sda"}
			for i, p := range tt.parts {
				d.Partitions = append(d.Partitions, Partition{Number: i + 1, BeginMiB: p[0], EndMiB: p[1]})
			}
			if diff := cmp.Diff(tt.want, DiskWipeRanges(d)); diff != "" {
				t.Errorf("DiskWipeRanges(%v) (-want +got):\n%s", tt.parts, diff)
			}
		})
	}
}

func TestOperationsDryRunListing(t *testing.T) {
	plan := applySamplePlan()
	plan.Disks = plan.Disks[1:2] // sdb only, to keep the listing short
	plan.MDs[0].Members = []string{"/dev/sdb3"}
	plan.PVs, plan.VGs, plan.LVs = nil, nil, nil
	plan.FSs = []FS{{Device: "/dev/md0", Type: "xfs", Label: "var"}, {Device: "/dev/sdb2", Type: "vfat", Label: "config-2"}, {Device: "/dev/sdb1", Type: "ext4", Image: true}}
	ops, err := Operations(plan, "")
	if err != nil {
		t.Fatal(err)
	}
	got := opStrings(ops)
	want := []string{
		"wipe: zero /dev/sdb [0 MiB, 3 MiB) (old signatures at the new boundaries)",
		"wipe: zero /dev/sdb [22 MiB, 28 MiB) (old signatures at the new boundaries)",
		"wipe: zero /dev/sdb [223 MiB, 229 MiB) (old signatures at the new boundaries)",
		"wipe: zero /dev/sdb [1224 MiB, 1229 MiB) (old signatures at the new boundaries)",
		"wipe: zero /dev/sdb last 1 MiB (backup GPT)",
		"gpt: write-gpt /dev/sdb",
		"gpt: reread /dev/sdb",
		"nodes: wait-nodes /dev/sdb",
		"wipe: zero /dev/sdb1 [0 MiB, 1 MiB) (new partition start)",
		"wipe: zero /dev/sdb1 last 1 MiB (new partition end)",
		"wipe: zero /dev/sdb2 [0 MiB, 1 MiB) (new partition start)",
		"wipe: zero /dev/sdb2 last 1 MiB (new partition end)",
		"wipe: zero /dev/sdb3 [0 MiB, 1 MiB) (new partition start)",
		"wipe: zero /dev/sdb3 last 1 MiB (new partition end)",
		"md: mdadm --create /dev/md0 --run --force --metadata=1.2 --level=mirror --raid-devices=1 /dev/sdb3",
		"mkfs: mkfs.xfs -f -q -L var /dev/md0",
		"mkfs: mkfs.vfat -n config-2 /dev/sdb2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Operations (-want +got):\n%s", diff)
	}
}

func TestOperationsArgv(t *testing.T) {
	for _, tt := range []struct {
		name string
		plan Plan
		want []string
	}{
		{"md 0.90 with spare", Plan{MDs: []MD{{Device: "/dev/md1", Level: "raid1", Metadata: "0.90", Members: []string{"/dev/sda3", "/dev/sdb3"}, Spares: []string{"/dev/sdc3"}}}},
			[]string{"mdadm --create /dev/md1 --run --force --metadata=0.90 --level=raid1 --raid-devices=2 --spare-devices=1 /dev/sda3 /dev/sdb3 /dev/sdc3"}},
		{"lvm", Plan{
			PVs: []PV{{Device: "/dev/sda5", VG: "os", MetadataSizeMiB: 28, MetadataCopies: 2}, {Device: "/dev/md0", VG: "os"}},
			VGs: []VG{{Name: "os", PVs: []string{"/dev/sda5", "/dev/md0"}}},
			LVs: []LV{{Name: "my-lv", VG: "my-vg", SizeMiB: 4014}},
		}, []string{
			"lvm pvcreate --config C --metadatacopies 2 --metadatasize 28m -ff -y /dev/sda5",
			"lvm pvcreate --config C -ff -y /dev/md0",
			"lvm vgcreate --config C os /dev/sda5 /dev/md0",
			"lvm lvcreate --config C --yes -Wy -Zy -L 4014m -n my-lv my-vg",
		}},
		{"mkfs", Plan{FSs: []FS{
			{Device: "/dev/sda3", Type: "ext2", Label: "boot"},
			{Device: "/dev/sda4", Type: "ext3"},
			{Device: "/dev/sda5", Type: "ext4", Label: "a-label-longer-than-16", Options: "-b 4096 -O ^has_journal"},
			{Device: "/dev/sda6", Type: "xfs", Label: "mysql-data-long"},
			{Device: "/dev/sda7", Type: "swap", Label: "swap"},
			{Device: "/dev/sda8", Type: "vfat", Label: "config-2"},
			{Device: "/dev/sda9", Type: "ext4", Image: true},
		}}, []string{
			"mke2fs -t ext2 -F -q -L boot /dev/sda3",
			"mke2fs -t ext3 -F -q /dev/sda4",
			"mke2fs -t ext4 -F -q -L a-label-longer-t -b 4096 -O ^has_journal /dev/sda5",
			"mkfs.xfs -f -q -L mysql-data-l /dev/sda6",
			"mkswap -f -L swap /dev/sda7",
			"mkfs.vfat -n config-2 /dev/sda8",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := Operations(&tt.plan, "C")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, op := range ops {
				got = append(got, strings.Join(op.Argv, " "))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Operations argv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOperationsErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		plan   Plan
		substr string
	}{
		{"fs type", Plan{FSs: []FS{{Device: "/dev/sda1", Type: "btrfs"}}}, `unsupported type "btrfs"`},
		{"md metadata", Plan{MDs: []MD{{Device: "/dev/md0", Metadata: "imsm", Members: []string{"/dev/sda1"}}}}, `unknown metadata "imsm"`},
		{"md members", Plan{MDs: []MD{{Device: "/dev/md0"}}}, "no members"},
		{"lv size", Plan{LVs: []LV{{Name: "root", VG: "os"}}}, "size 0 MiB must be > 0"},
		{"vg pvs", Plan{VGs: []VG{{Name: "os"}}}, "no physical volumes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Operations(&tt.plan, "")
			if err == nil || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("Operations = %v, want error containing %q", err, tt.substr)
			}
		})
	}
}

func TestLVDeviceDoublesDashes(t *testing.T) {
	if got, want := lvDevice(LV{Name: "my-lv", VG: "my-vg"}), "/dev/mapper/my--vg-my--lv"; got != want {
		t.Errorf("lvDevice = %q, want %q", got, want)
	}
}

// A plan built in Go (no document) cannot smuggle a device into mkfs
// either: Operations checks the options with provision's rule.
func TestOperationsRefusesDeviceInFSOptions(t *testing.T) {
	for _, opts := range []string{"-l logdev=/dev/sdc", "-E device=/dev/sdc", "--opt=/dev/sdc", "/dev/sdc", "-J device=LABEL=j"} {
		p := &Plan{FSs: []FS{{Device: "/dev/sda3", Type: "xfs", Options: opts}}}
		if strings.HasPrefix(opts, "-J") || strings.HasPrefix(opts, "-E") {
			p.FSs[0].Type = "ext4"
		}
		_, err := Operations(p, "")
		if err == nil || !errors.Is(err, ErrNotPlanned) || !strings.Contains(err.Error(), `filesystem on "/dev/sda3": fs_options`) {
			t.Errorf("Operations with fs_options %q = %v, want an ErrNotPlanned naming fs_options", opts, err)
		}
	}
}

// opStrings is each operation as its String (what --dry-run prints).
func opStrings(ops []Op) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.String())
	}
	return out
}
