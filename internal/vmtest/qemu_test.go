package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiskArgs(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.img")
	if err := os.WriteFile(existing, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	disks := []Disk{
		{Size: 1 << 20, Serial: "S0"},                                    // new, in dir
		{Path: existing},                                                 // attached as is
		{Path: filepath.Join(dir, "new.img"), Size: 2 << 20},             // created at Path
		{Size: 1 << 20, Bus: BusSCSI, Serial: "a-long-scsi-unit-serial"}, // scsi-hd
	}
	paths, args, err := DiskArgs(dir, disks, func(i int) string { return ",bootindex=" + string(rune('1'+i)) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "disk0.img"), existing, filepath.Join(dir, "new.img"), filepath.Join(dir, "disk3.img")}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths %v, want %v", paths, want)
	}
	for i, size := range []int64{1 << 20, 1, 2 << 20, 1 << 20} {
		if st, err := os.Stat(paths[i]); err != nil || st.Size() != size {
			t.Errorf("disk %d: %v %v, want %d bytes", i, st, err, size)
		}
	}
	s := strings.Join(args, " ")
	for _, w := range []string{
		"-drive file=" + existing + ",if=none,id=d1,format=raw -device virtio-blk-pci,drive=d1,bootindex=2",
		"virtio-blk-pci,drive=d0,serial=S0,bootindex=1",
		"-device virtio-scsi-pci,id=scsi0 -drive file=" + want[3],
		"scsi-hd,drive=d3,bus=scsi0.0,channel=0,scsi-id=0,lun=0,serial=a-long-scsi-unit-serial,bootindex=4",
	} {
		if !strings.Contains(s, w) {
			t.Errorf("args lack %q:\n%s", w, s)
		}
	}
	for name, d := range map[string]Disk{
		"missing path without size":   {Path: filepath.Join(dir, "none.img")},
		"virtio serial over 20 bytes": {Size: 1, Serial: "123456789012345678901"},
		"serial with a comma":         {Size: 1, Serial: "a,b"},
		"unknown bus":                 {Size: 1, Bus: "ide"},
	} {
		if _, _, err := DiskArgs(t.TempDir(), []Disk{d}, nil); err == nil || !strings.Contains(err.Error(), "disk 0") {
			t.Errorf("%s: err = %v, want one naming disk 0", name, err)
		}
	}
}
