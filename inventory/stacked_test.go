package inventory

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/logtest"
)

// stackedTree is /sys/block with two SCSI paths (sda, sdb) of one
// multipath map dm-0 (mpatha), an LVM LV dm-1 on it, a plain disk sdc, an
// md mirror md127 of two partitions of sdc and an IMSM container md126.
func stackedTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	w := func(p, v string) {
		t.Helper()
		full := filepath.Join(root, "block", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, "block", p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"sda", "sdb", "sdc"} {
		w(n+"/size", "20971520")
		w(n+"/ro", "0")
		w(n+"/queue/logical_block_size", "512")
	}
	d("sda/holders/dm-0")
	d("sdb/holders/dm-0")
	w("dm-0/size", "20971520")
	w("dm-0/ro", "0")
	w("dm-0/dm/name", "mpatha")
	w("dm-0/dm/uuid", "mpath-0QEMU_QEMU_HARDDISK_IMPRINT-MP")
	d("dm-0/slaves/sda")
	d("dm-0/slaves/sdb")
	d("dm-0/holders/dm-1")
	w("dm-1/size", "2048")
	w("dm-1/ro", "0")
	w("dm-1/dm/name", "vg-lv")
	w("dm-1/dm/uuid", "LVM-abc")
	d("dm-1/slaves/dm-0")
	w("md127/size", "1000000")
	w("md127/ro", "0")
	w("md127/md/level", "raid1")
	w("md127/md/uuid", "6ad9b1b6:4a4c4f1e:8f3c0e2d:5b1f6a7c")
	d("md127/slaves/sdc1")
	d("md127/slaves/sdc2")
	w("md126/size", "0")
	w("md126/md/level", "container")
	return root
}

func TestCollectMultipathAndMD(t *testing.T) {
	root := stackedTree(t)
	dev := t.TempDir()
	disks, err := CollectDisks(context.Background(), Options{SysRoot: root, DevRoot: dev, Log: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Path, Kind, WWN string
		Slaves, ByID          []string
	}
	var got []row
	for _, d := range disks {
		got = append(got, row{d.Name, d.Path, d.Kind, d.WWN, d.Slaves, d.ByID})
	}
	want := []row{
		{"mapper/mpatha", filepath.Join(dev, "mapper/mpatha"), KindMultipath, "0QEMU_QEMU_HARDDISK_IMPRINT-MP", []string{"sda", "sdb"},
			[]string{"/dev/disk/by-id/dm-name-mpatha", "/dev/disk/by-id/dm-uuid-mpath-0QEMU_QEMU_HARDDISK_IMPRINT-MP"}},
		{"md127", filepath.Join(dev, "md127"), KindMD, "6ad9b1b6:4a4c4f1e:8f3c0e2d:5b1f6a7c", []string{"sdc1", "sdc2"}, nil},
		{"sdc", filepath.Join(dev, "sdc"), "", "", nil, nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("disks (-want +got): sda and sdb are paths of mpatha, dm-1 an LV, md126 a container\n%s", diff)
	}
	p, err := DescribeDisk(context.Background(), Options{SysRoot: root, DevRoot: dev}, "sdb")
	if err != nil {
		t.Fatal(err)
	}
	if p.MultipathOf != "mapper/mpatha" {
		t.Errorf("sdb: multipath_of %q, want mapper/mpatha", p.MultipathOf)
	}
}
