package partition

import (
	"errors"
	"testing"

	"github.com/imprint-dev/imprint/internal/devguard"
	"github.com/imprint-dev/imprint/inventory"
)

// fakeGuardFS knows no symlinks and no device nodes: the set is checked by
// name only.
type fakeGuardFS struct{}

func (fakeGuardFS) EvalSymlinks(p string) (string, error) { return p, nil }
func (fakeGuardFS) Rdev(string) (uint64, bool)            { return 0, false }

// Fuel's multipath variant names mapper/12312 by its by-id links; on an
// inventory where that map has paths sda and sdb (and another map, mpathb,
// paths sdd and sde), the plan partitions the map, and the guard counts
// sda and sdb as that disk but refuses sdd (a path of another map) and
// neither path's partitions are planned.
func TestPlanMultipathDisk(t *testing.T) {
	gib := int64(100 << 30)
	inv := &inventory.Inventory{Disks: []inventory.Disk{
		{Name: "mapper/12312", Path: "/dev/mapper/12312", SizeBytes: gib, LogicalSectorSize: 512, Kind: inventory.KindMultipath,
			WWN: "fake_wwn_1", Slaves: []string{"sda", "sdb"},
			ByID: []string{"/dev/disk/by-id/dm-name-12312", "/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB69050467-b385c7cd", "/dev/disk/by-id/wwn-fake_wwn_1"}},
		{Name: "mapper/mpathb", Path: "/dev/mapper/mpathb", SizeBytes: gib, LogicalSectorSize: 512, Kind: inventory.KindMultipath,
			Slaves: []string{"sdd", "sde"}, ByID: []string{"/dev/disk/by-id/dm-name-mpathb"}},
		{Name: "sdc", Path: "/dev/sdc", SizeBytes: gib, LogicalSectorSize: 512,
			ByID: []string{"/dev/disk/by-id/scsi-SATA_VBOX_HARDDISK_VB69050467-fffff", "/dev/disk/by-id/wwn-fake_wwn_2"}},
	}}
	doc := variantDoc(t, loadVariants(t)["MPATH_DISK_KS_SPACES"])
	p, err := NewPlan(doc, DevicesFromInventory(inv), DefaultPlanOptions())
	if err != nil {
		t.Fatal(err)
	}
	if p.Disks[0].Device != "/dev/mapper/12312" || p.Disks[0].Partitions[2].Device != "/dev/mapper/12312-part3" {
		t.Fatalf("disk 0: %+v", p.Disks[0])
	}
	if len(p.Disks[0].Paths) != 2 || p.Disks[0].Paths[0] != "/dev/sda" || p.Disks[0].Paths[1] != "/dev/sdb" {
		t.Errorf("paths %v, want /dev/sda /dev/sdb", p.Disks[0].Paths)
	}
	set := DeviceSet(p, fakeGuardFS{})
	for _, dev := range []string{"/dev/mapper/12312", "/dev/mapper/12312-part3", "/dev/sda", "/dev/sdb", "/dev/sdc"} {
		if err := set.Check(dev, "test"); err != nil {
			t.Errorf("%s: %v", dev, err)
		}
	}
	for _, dev := range []string{"/dev/sdd", "/dev/sde", "/dev/mapper/mpathb", "/dev/sda1"} {
		if err := set.Check(dev, "test"); !errors.Is(err, devguard.ErrNotPlanned) {
			t.Errorf("%s: %v, want refused", dev, err)
		}
	}
}

// Reprovisioning a multipath disk: its old partitions are kpartx maps
// holding it; teardown removes them (after the LVM on them) before
// checking the disk is free.
func TestTeardownMultipathPartitionMaps(t *testing.T) {
	plan := &Plan{Disks: []Disk{{Device: "/dev/mapper/mpatha", Name: "mapper/mpatha"}}}
	st := &teardownState{
		onDisks:  map[string]string{"dm-0": "/dev/mapper/mpatha", "dm-3": "/dev/mapper/mpatha", "dm-4": "/dev/mapper/mpatha"},
		oldParts: map[string][]ExistingPartition{"/dev/mapper/mpatha": {{Name: "dm-3", Number: 1, StartBytes: 1 << 20, SizeBytes: 24 << 20}, {Name: "dm-4", Number: 2, StartBytes: 26 << 20, SizeBytes: 500 << 20}}},
		pvs:      []lvmPV{{Path: "/dev/mapper/mpatha-part2", Name: "dm-4", VG: "os"}},
		lvs:      []lvmLV{{Name: "root", VG: "os"}},
		paths:    map[string]string{},
		dmDisks:  map[string]bool{"/dev/mapper/mpatha": true},
	}
	ops, err := teardownOps(plan, st, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range ops {
		got = append(got, op.String())
	}
	want := []string{
		"teardown: lvm lvremove -ff os",
		"teardown: lvm vgremove -ff os",
		"teardown: lvm pvremove -ff -y /dev/mapper/mpatha-part2",
		"teardown: kpartx -d -p -part /dev/mapper/mpatha",
		"teardown: check-free /dev/mapper/mpatha",
	}
	if len(got) < len(want) {
		t.Fatalf("ops %q", got)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("op %d: %q, want %q", i, got[i], w)
		}
	}
}
