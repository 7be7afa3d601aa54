//go:build loop

package sys

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
)

func loopDev(t *testing.T, sizeMiB int64, extra ...string) (img, dev string) {
	t.Helper()
	testenv.RequireLoop(t)
	img = filepath.Join(t.TempDir(), "d.img")
	data := bytes.Repeat([]byte{0xAB}, int(sizeMiB<<20))
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", append(append([]string{"--find", "--show"}, extra...), img)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return img, dev
}

func TestLoopStatAndZero(t *testing.T) {
	for _, sector := range []string{"512", "4096"} {
		t.Run(sector, func(t *testing.T) {
			img, dev := loopDev(t, 8, "--sector-size", sector)
			d := &Devices{}
			info, err := d.Stat(dev)
			if err != nil {
				t.Fatal(err)
			}
			if info.SizeBytes != 8<<20 || info.Name != filepath.Base(dev) || (sector == "4096") != (info.LogicalSectorSize == 4096) {
				t.Fatalf("Stat(%s) = %+v", dev, info)
			}
			// An aligned range (O_DIRECT) and an odd one (buffered).
			if err := d.Zero(dev, 1<<20, 2<<20); err != nil {
				t.Fatal(err)
			}
			if err := d.Zero(dev, 7<<20+512, 1024); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range got {
				zero := (i >= 1<<20 && i < 3<<20) || (i >= 7<<20+512 && i < 7<<20+1536)
				if zero != (b == 0) {
					t.Fatalf("byte %d = %#x (zeroed range: %v)", i, b, zero)
				}
			}
			if parts, err := d.Partitions(dev); err != nil || len(parts) != 0 {
				t.Errorf("Partitions(%s) = %v, %v", dev, parts, err)
			}
			if m, err := d.Mounts(dev); err != nil || len(m) != 0 {
				t.Errorf("Mounts(%s) = %v, %v", dev, m, err)
			}
		})
	}
}

func TestLoopMountsAndExclusive(t *testing.T) {
	testenv.RequireTool(t, "mkfs.ext4")
	_, dev := loopDev(t, 16)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		testenv.Skipf(t, "mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	d := &Devices{}
	m, err := d.Mounts(dev)
	if err != nil || len(m) != 1 || m[0] != filepath.Base(dev)+" mounted on "+mnt {
		t.Fatalf("Mounts(%s) = %q, %v", dev, m, err)
	}
	if _, err := d.OpenDisk(dev); err == nil || !strings.Contains(err.Error(), "device in use") {
		t.Errorf("OpenDisk of a mounted device = %v, want device in use", err)
	}
	if err := d.Zero(dev, 0, 4096); err == nil {
		t.Error("Zero of a mounted device succeeded")
	}
	if err := d.RereadPartitions(context.Background(), dev); err == nil {
		t.Error("BLKRRPART on a loop device without partscan succeeded")
	}
}
