//go:build loop

package configdrive

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// TestLoopWriteDevice writes onto loop devices with 512- and 4096-byte
// logical sectors: WriteDevice must detect the sector size, size the image
// to the device, and blkid must see the label on the device.
func TestLoopWriteDevice(t *testing.T) {
	testenv.RequireLoop(t)
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sector := range []int{512, 4096} {
		t.Run(strconv.Itoa(sector), func(t *testing.T) {
			backing := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(backing, make([]byte, 20<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("losetup", "--find", "--show", "--sector-size", strconv.Itoa(sector), backing).CombinedOutput()
			if err != nil {
				testenv.Skipf(t, "losetup --sector-size %d: %v: %s", sector, err, out)
			}
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })

			_, b, err := ToDevice(context.Background(), loadFixture(t, fixtures[0]), dev, 0, Config2VFAT, Options{InstanceID: c.InstanceID, Rand: &fixedRand{}})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := Build(loadFixture(t, fixtures[0]), Options{Rand: &fixedRand{}})
			want := map[int]string{512: "vfat/FAT16", 4096: "vfat/FAT32"}[sector]
			if b.FSType != want || b.Size != 20<<20 {
				t.Errorf("WriteDevice: %s, %d bytes; want %s, %d", b.FSType, b.Size, want, 20<<20)
			}
			probe := blkid(t, dev)
			if probe["TYPE"] != "vfat" || probe["LABEL"] != "CONFIG-2" || probe["BLOCK_SIZE"] != strconv.Itoa(sector) {
				t.Errorf("blkid -p %s: %v", dev, probe)
			}
			if _, err := WriteDevice(context.Background(), c, Config2VFAT, dev, 21<<20, ImageOptions{}); err == nil || !strings.Contains(err.Error(), "larger than its partition") {
				t.Errorf("size beyond the device: %v", err)
			}
			if sector == 4096 {
				if _, err := WriteDevice(context.Background(), c, NoCloudISO, dev, 0, ImageOptions{}); err == nil || !strings.Contains(err.Error(), "4096-byte-sector") {
					t.Errorf("ISO on a 4Kn device: %v", err)
				}
			}
			exec.Command("losetup", "-d", dev).Run()
			files, _ := readImage(t, backing, Config2VFAT, sector)
			if string(files["openstack/latest/user_data"]) != string(c.UserData) {
				t.Errorf("user_data on the device differs")
			}
		})
	}
}
