package inventory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/logtest"
)

// named is the part of a Disk the naming tests check.
type named struct {
	Name                       string
	SizeBytes                  int64
	Logical, Physical          int
	Rotational, Removable      bool
	Vendor, Model, Serial, WWN string
	Bus                        string
	ByID, ByPath               []string
	LegacyByID, LegacyByPath   []string
	Holders                    []string
	Partitions                 []Partition
}

func project(ds []Disk) []named {
	out := make([]named, 0, len(ds))
	for _, d := range ds {
		out = append(out, named{
			Name: d.Name, SizeBytes: d.SizeBytes, Logical: d.LogicalSectorSize, Physical: d.PhysicalSectorSize,
			Rotational: d.Rotational, Removable: d.Removable,
			Vendor: d.Vendor, Model: d.Model, Serial: d.Serial, WWN: d.WWN, Bus: d.Bus,
			ByID: d.ByID, ByPath: d.ByPath, LegacyByID: d.LegacyByID, LegacyByPath: d.LegacyByPath,
			Holders: d.Holders, Partitions: d.Partitions,
		})
	}
	return out
}

// The by-path names below are what systemd-udevd 252's path_id builtin
// prints for the same trees (TestLoopNamingMatchesUdev runs it on them);
// the by-id names follow 60-persistent-storage.rules with ata_id/scsi_id
// as Debian 12 ships them.
func TestCollectDisksNaming(t *testing.T) {
	tests := []struct {
		fixture string
		want    []named
	}{{
		fixture: "this-vm", // captured from this machine's own /sys, read-only
		want: []named{{
			Name: "vda", SizeBytes: 536870912 * 512, Logical: 512, Physical: 4096, Rotational: true, Bus: "virtio",
			Serial: "overlayblk",
			ByID:   []string{"/dev/disk/by-id/virtio-overlayblk"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:02.0", "/dev/disk/by-path/virtio-pci-0000:00:02.0"},
		}},
	}, {
		fixture: "server-sata",
		want: []named{{
			Name: "sda", SizeBytes: 976773168 * 512, Logical: 512, Physical: 512, Bus: "ata",
			Vendor: "ATA", Model: "Samsung SSD 860 EVO 500GB", Serial: "S3Z9NB0K123456A", WWN: "0x5002538e40a1b2c3",
			ByID: []string{
				"/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S3Z9NB0K123456A",
				"/dev/disk/by-id/wwn-0x5002538e40a1b2c3",
			},
			ByPath:     []string{"/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "/dev/disk/by-path/pci-0000:00:1f.2-ata-1.0"},
			LegacyByID: []string{"/dev/disk/by-id/scsi-SATA_Samsung_SSD_860_S3Z9NB0K123456A"},
			// pci-0000:00:1f.2-scsi-0:0:0:0 would be both disks' legacy name: dropped.
		}, {
			Name: "sdb", SizeBytes: 1953525168 * 512, Logical: 512, Physical: 4096, Rotational: true, Bus: "ata",
			Vendor: "ATA", Model: "WDC WD10EFRX-68FYTN0", Serial: "WD-WCC4J1234567",
			ByID:       []string{"/dev/disk/by-id/ata-WDC_WD10EFRX-68FYTN0_WD-WCC4J1234567"},
			ByPath:     []string{"/dev/disk/by-path/pci-0000:00:1f.2-ata-2", "/dev/disk/by-path/pci-0000:00:1f.2-ata-2.0"},
			LegacyByID: []string{"/dev/disk/by-id/scsi-SATA_WDC_WD10EFRX-68F_WD-WCC4J1234567"},
			Holders:    []string{"md127"},
			Partitions: []Partition{
				{Name: "sdb1", Number: 1, StartBytes: 2048 * 512, SizeBytes: 2097152 * 512},
				{Name: "sdb2", Number: 2, StartBytes: 2099200 * 512, SizeBytes: 1951424512 * 512, Holders: []string{"md127"}},
			},
		}},
	}, {
		fixture: "server-sas",
		want: []named{{
			Name: "sda", SizeBytes: 7814037168 * 512, Logical: 512, Physical: 4096, Rotational: true, Bus: "scsi",
			Vendor: "SEAGATE", Model: "ST4000NM0025", Serial: "ZC11ABCD0000C7301234", WWN: "0x5000c500a1b2c3d7",
			ByID:   []string{"/dev/disk/by-id/scsi-35000c500a1b2c3d7", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d7"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:03:00.0-sas-phy0-lun-0"},
		}, {
			Name: "sdb", SizeBytes: 15628053168 * 512, Logical: 512, Physical: 4096, Rotational: true, Bus: "ata",
			Vendor: "ATA", Model: "ST8000NM0055-1RM112", Serial: "ZA1ABCDE", WWN: "0x5000c500b1c2d3e4",
			ByID:       []string{"/dev/disk/by-id/ata-ST8000NM0055-1RM112_ZA1ABCDE", "/dev/disk/by-id/wwn-0x5000c500b1c2d3e4"},
			ByPath:     []string{"/dev/disk/by-path/pci-0000:03:00.0-sas-exp0x500304801f3c2a7f-phy7-lun-0"},
			LegacyByID: []string{"/dev/disk/by-id/scsi-SATA_ST8000NM0055-1RMZA1ABCDE"},
		}, {
			Name: "sdc", SizeBytes: 19532873728 * 512, Logical: 4096, Physical: 4096, Rotational: true, Bus: "scsi",
			Vendor: "HGST", Model: "HUH721010AL5200", Serial: "7JH0ABCD", WWN: "0x5000cca0a1b2c3d4",
			ByID:       []string{"/dev/disk/by-id/scsi-35000cca0a1b2c3d4", "/dev/disk/by-id/wwn-0x5000cca0a1b2c3d4"},
			ByPath:     []string{"/dev/disk/by-path/pci-0000:03:00.0-sas-0x5000cca0a1b2c3d5-lun-0"},
			Holders:    []string{"dm-0"},
			Partitions: []Partition{{Name: "sdc1", Number: 1, StartBytes: 2048 * 512, SizeBytes: 19532869632 * 512, Holders: []string{"dm-0"}}},
		}},
	}, {
		fixture: "server-nvme",
		want: []named{{
			Name: "nvme0n1", SizeBytes: 1953525168 * 512, Logical: 512, Physical: 512, Bus: "nvme",
			Model: "Samsung SSD 970 EVO Plus 1TB", Serial: "S4EWNX0R123456", WWN: "eui.0025388b91b4a1c2",
			ByID: []string{
				"/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456",
				"/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456_1",
				"/dev/disk/by-id/nvme-eui.0025388b91b4a1c2",
			},
			ByPath: []string{"/dev/disk/by-path/pci-0000:3d:00.0-nvme-1"},
		}, {
			Name: "nvme1n1", SizeBytes: 1953525168 * 512, Logical: 512, Physical: 512, Bus: "nvme",
			Model: "INTEL SSDPE2KX010T8", Serial: "PHLJ912345671P0FGN", WWN: "eui.01000000000000005cd2e4e1ab4b5051",
			ByID: []string{
				"/dev/disk/by-id/nvme-INTEL_SSDPE2KX010T8_PHLJ912345671P0FGN",
				"/dev/disk/by-id/nvme-INTEL_SSDPE2KX010T8_PHLJ912345671P0FGN_1",
				"/dev/disk/by-id/nvme-eui.01000000000000005cd2e4e1ab4b5051",
			},
			ByPath:     []string{"/dev/disk/by-path/pci-0000:3e:00.0-nvme-1"},
			Partitions: []Partition{{Name: "nvme1n1p1", Number: 1, StartBytes: 2048 * 512, SizeBytes: 1953523087 * 512}},
		}},
	}, {
		fixture: "usb-stick",
		want: []named{{
			Name: "sde", SizeBytes: 60063744 * 512, Logical: 512, Physical: 512, Removable: true, Bus: "usb",
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"},
		}},
	}, {
		fixture: "vm-scsi",
		want: []named{{
			Name: "sda", SizeBytes: 20971520 * 512, Logical: 512, Physical: 512, Rotational: true, Bus: "scsi",
			Vendor: "QEMU", Model: "QEMU HARDDISK", Serial: "disk-a1",
			ByID:   []string{"/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_disk-a1"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:04.0-scsi-0:0:0:0"},
		}, {
			Name: "sdb", SizeBytes: 20971520 * 512, Logical: 512, Physical: 512, Rotational: true, Bus: "scsi",
			Vendor: "QEMU", Model: "QEMU HARDDISK", Serial: "disk-b2", WWN: "0x5000c50015ea71ad",
			ByID:   []string{"/dev/disk/by-id/scsi-35000c50015ea71ad", "/dev/disk/by-id/wwn-0x5000c50015ea71ad"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:04.0-scsi-0:0:1:0"},
		}},
	}}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			root := buildTree(t, tt.fixture)
			got, err := CollectDisks(context.Background(), Options{SysRoot: root, DevRoot: t.TempDir(), Log: logtest.New(t)})
			if err != nil {
				t.Fatalf("CollectDisks(%s): %v", tt.fixture, err)
			}
			if diff := cmp.Diff(tt.want, project(got)); diff != "" {
				t.Errorf("CollectDisks(%s) mismatch (-want +got):\n%s", tt.fixture, diff)
			}
			for _, d := range got {
				if d.ProbeError == "" {
					t.Errorf("%s: no device node in the empty DevRoot, yet no probe error", d.Name)
				}
			}
		})
	}
}

// Devices CollectDisks leaves out are still described when named.
func TestDescribeDiskExcluded(t *testing.T) {
	tests := []struct {
		fixture, name string
		wantName      string
		readOnly      bool
	}{
		{"server-sata", "sr0", "sr0", false},
		{"server-sata", "/dev/md127", "md127", false},
		{"server-sas", "sdd", "sdd", true},
		{"this-vm", "loop0", "loop0", false},
		{"server-nvme", "nvme0c0n1", "nvme0c0n1", false},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.name, func(t *testing.T) {
			root := buildTree(t, tt.fixture)
			dev := t.TempDir()
			d, err := DescribeDisk(context.Background(), Options{SysRoot: root, DevRoot: dev}, tt.name)
			if err != nil {
				t.Fatalf("DescribeDisk(%q): %v", tt.name, err)
			}
			if d.Name != tt.wantName || d.ReadOnly != tt.readOnly || d.Path != dev+"/"+tt.wantName {
				t.Errorf("DescribeDisk(%q) = name %q path %q read-only %v, want %q, %q, %v",
					tt.name, d.Name, d.Path, d.ReadOnly, tt.wantName, dev+"/"+tt.wantName, tt.readOnly)
			}
		})
	}
}

func TestDescribeDiskNotFound(t *testing.T) {
	root := buildTree(t, "server-sata")
	for _, name := range []string{"sdz", "sdb1", "../../etc", "", "/dev/"} {
		_, err := DescribeDisk(context.Background(), Options{SysRoot: root}, name)
		if !errors.Is(err, ErrNoDevice) {
			t.Errorf("DescribeDisk(%q) error = %v, want ErrNoDevice", name, err)
		}
	}
}

func TestCollectDisksMissingSysfs(t *testing.T) {
	_, err := CollectDisks(context.Background(), Options{SysRoot: t.TempDir()})
	if err == nil {
		t.Fatal("CollectDisks on a tree without block/ succeeded")
	}
}

func TestCollectDisksCancelled(t *testing.T) {
	root := buildTree(t, "server-sata")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CollectDisks(ctx, Options{SysRoot: root}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CollectDisks with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestUdevStringRules(t *testing.T) {
	tests := []struct {
		fn, in, want string
	}{
		{"ws", "  WDC  WD10EFRX-68FYTN0   ", "WDC_WD10EFRX-68FYTN0"},
		{"ws", "a\tb\nc", "a_b_c"},
		{"ws", "   ", ""},
		{"chars", "a b/c$d", "a_b_c_d"},
		{"chars/", "a b/c$d", "a_b/c_d"},
		{"chars/ ", "a b\tc", "a b c"},
		{"chars", "Ünïcode✓", "Ünïcode✓"},
		{"chars", "x\\x2fy", "x\\x2fy"},
		{"attr", "serial with spaces  \n", "serial with spaces"},
		{"attr", "odd$%?,*chars", "odd$%?,_chars"},
	}
	for _, tt := range tests {
		var got string
		switch tt.fn {
		case "ws":
			got = replaceWhitespace(tt.in)
		case "chars":
			got = replaceChars(tt.in, "")
		case "chars/":
			got = replaceChars(tt.in, "/")
		case "chars/ ":
			got = replaceChars(tt.in, "/ ")
		case "attr":
			got = attrSubst(tt.in)
		}
		if got != tt.want {
			t.Errorf("%s(%q) = %q, want %q", tt.fn, tt.in, got, tt.want)
		}
	}
}

func TestSCSISerialPreference(t *testing.T) {
	naa6 := []byte{1, 3, 0, 16, 0x60, 0x05, 0x08, 0xb1, 0x00, 0x1c, 0x7a, 0x2e, 0x9f, 0x3d, 0x4c, 0x1b, 0x2a, 0x3b, 0x4c, 0x5d}
	naa5 := []byte{1, 3, 0, 8, 0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd7}
	eui := []byte{1, 2, 0, 8, 0x00, 0x25, 0x38, 0x8b, 0x91, 0xb4, 0xa1, 0xc2}
	t10 := append([]byte{2, 1, 0, 12}, []byte("VENDOR  ID01")...)
	port := []byte{1, 0x13, 0, 8, 0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd5} // target port: never the LU's id
	page := func(ds ...[]byte) []byte {
		var body []byte
		for _, d := range ds {
			body = append(body, d...)
		}
		return append([]byte{0, 0x83, 0, byte(len(body))}, body...)
	}
	pg80 := append([]byte{0, 0x80, 0, 6}, []byte("SER123")...)
	tests := []struct {
		name       string
		pg83, pg80 []byte
		want       scsiID
		ok         bool
	}{
		{"naa6 extended first", page(port, t10, naa5, naa6), nil,
			scsiID{serial: "3600508b1001c7a2e9f3d4c1b2a3b4c5d", serialShort: "600508b1001c7a2e9f3d4c1b2a3b4c5d", wwn: "600508b1001c7a2e", wwnExt: "9f3d4c1b2a3b4c5d"}, true},
		{"naa5 before eui", page(eui, naa5), nil,
			scsiID{serial: "35000c500a1b2c3d7", serialShort: "5000c500a1b2c3d7", wwn: "5000c500a1b2c3d7"}, true},
		{"eui before t10", page(t10, eui), nil, scsiID{serial: "20025388b91b4a1c2", serialShort: "0025388b91b4a1c2"}, true},
		{"t10 ascii", page(t10), nil, scsiID{serial: "1VENDOR  ID01", serialShort: "VENDOR  ID01"}, true},
		{"port only falls back to page 80", page(port), pg80,
			scsiID{serial: "SVEND    MODEL           SER123", serialShort: "SER123"}, true},
		{"nothing", nil, nil, scsiID{}, false},
	}
	for _, tt := range tests {
		got, ok := scsiSerial(tt.pg83, tt.pg80, "VEND", "MODEL")
		if ok != tt.ok {
			t.Errorf("%s: ok = %v, want %v", tt.name, ok, tt.ok)
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(scsiID{})); diff != "" {
			t.Errorf("%s: scsiSerial mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestCollector(t *testing.T) {
	root := buildTree(t, "vm-scsi")
	c := Collector{Options: Options{SysRoot: root, DevRoot: t.TempDir(), ProcRoot: t.TempDir()}}
	inv, err := c.Collect(context.Background())
	if err != nil || len(inv.Disks) != 2 {
		t.Fatalf("Collector.Collect = %v, %v; want the two QEMU disks", inv, err)
	}
	d, err := c.DescribeDisk(context.Background(), "sdb")
	if err != nil || d.WWN != "0x5000c50015ea71ad" {
		t.Fatalf("Collector.DescribeDisk(sdb) = %+v, %v", d, err)
	}
}

// An entry that leads outside the tree, or lacks a size, is skipped with a
// warning; the other disks are still listed.
func TestCollectDisksSkipsBrokenEntries(t *testing.T) {
	root := buildTree(t, "vm-scsi")
	if err := os.Symlink("/etc", filepath.Join(root, "block", "sdx")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "devices", "virtual", "block", "sdy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../devices/virtual/block/sdy", filepath.Join(root, "block", "sdy")); err != nil {
		t.Fatal(err)
	}
	disks, err := CollectDisks(context.Background(), Options{SysRoot: root, DevRoot: t.TempDir(), Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range disks {
		names = append(names, d.Name)
	}
	if diff := cmp.Diff([]string{"sda", "sdb"}, names); diff != "" {
		t.Errorf("CollectDisks with broken entries (-want +got):\n%s", diff)
	}
	if _, err := DescribeDisk(context.Background(), Options{SysRoot: root}, "sdx"); err == nil || !strings.Contains(err.Error(), "outside the sysfs root") {
		t.Errorf("DescribeDisk(sdx -> /etc) = %v, want an outside-the-root error", err)
	}
}

func TestKernelWWN(t *testing.T) {
	for _, tt := range []struct{ wwid, want string }{
		{"naa.5000C500A1B2C3D7", "0x5000c500a1b2c3d7"},
		{"eui.0025388b91b4a1c2", "eui.0025388b91b4a1c2"},
		{"t10.ATA     WDC WD10EFRX-68FYTN0                    WD-WCC4J1234567", ""},
		{"", ""},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "wwid"), []byte(tt.wwid+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := kernelWWN(device{fs: sysfs{root: dir}, path: dir}); got != tt.want {
			t.Errorf("kernelWWN(wwid %q) = %q, want %q", tt.wwid, got, tt.want)
		}
	}
}
