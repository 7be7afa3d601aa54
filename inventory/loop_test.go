//go:build loop

package inventory

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/testenv"
)

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	testenv.RequireLoop(t, tools...)
}

// attachLoop attaches a loop device over the file (read-write, as the
// partition helper will use it) and detaches it at cleanup.
func attachLoop(t *testing.T, file string, args ...string) string {
	t.Helper()
	out, err := exec.Command("losetup", append(append([]string{"--find", "--show"}, args...), file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v: %s", file, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// A loop device we attached, described by name from the live /sys and /dev:
// size, sector sizes and signatures as the kernel and the bytes say; the
// normal listing leaves it out.
func TestLoopDescribeLoopDevice(t *testing.T) {
	needRoot(t, "losetup", "mkfs.ext4")
	ctx := context.Background()
	dir := t.TempDir()

	// 512-byte sectors, GPT from go-diskfs, ext4 in partition 1.
	img := sparse(t, dir, "gpt.img", 96*mib)
	d, err := diskfs.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Partition(&gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 2048 + 65536 - 1, Type: gpt.LinuxFilesystem, Name: "root"},
	}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	run(t, "mkfs.ext4", "-F", "-q", "-E", "offset=1048576", img, "32M")
	dev := attachLoop(t, img)
	name := filepath.Base(dev)

	got, err := DescribeDisk(ctx, Options{Log: logtest.New(t)}, dev)
	if err != nil {
		t.Fatalf("DescribeDisk(%s): %v", dev, err)
	}
	if got.Name != name || got.Path != dev || got.SizeBytes != 96*mib || got.LogicalSectorSize != 512 || got.ReadOnly {
		t.Errorf("DescribeDisk(%s) = %+v, want name %s, path %s, 96 MiB, 512-byte sectors, writable", dev, got, name, dev)
	}
	if diff := cmp.Diff([]string{SigGPT, SigGPTBackup}, got.Signatures); diff != "" || got.ProbeError != "" {
		t.Errorf("%s signatures mismatch (-want +got):\n%s (probe error %q)", dev, diff, got.ProbeError)
	}
	// This kernel parses no partition tables on loop devices, so sysfs
	// lists no partitions; the ext4 is found by offset through blkid too.
	if out, err := exec.Command("blkid", "-p", "-O", "1048576", "-s", "TYPE", "-o", "value", dev).Output(); err == nil {
		if strings.TrimSpace(string(out)) != "ext4" {
			t.Errorf("blkid -O 1048576 %s = %q, want ext4 (the fixture itself is wrong)", dev, out)
		}
	}
	disks, err := CollectDisks(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		if d.Name == name {
			t.Errorf("CollectDisks lists the loop device %s", name)
		}
		if d.Name == "vda" && d.ProbeError == "" && len(d.Signatures) == 0 {
			t.Logf("vda: no signatures")
		}
	}

	// 4096-byte logical sectors, and a real LVM PV.
	img4k := sparse(t, dir, "pv.img", 64*mib)
	dev4k := attachLoop(t, img4k, "--sector-size", "4096")
	got, err = DescribeDisk(ctx, Options{}, filepath.Base(dev4k))
	if err != nil {
		t.Fatal(err)
	}
	if got.LogicalSectorSize != 4096 || got.PhysicalSectorSize != 4096 || got.SizeBytes != 64*mib {
		t.Errorf("DescribeDisk(%s) sectors %d/%d size %d, want 4096/4096, 64 MiB", dev4k, got.LogicalSectorSize, got.PhysicalSectorSize, got.SizeBytes)
	}
	if !testenv.HasTool(t, "pvcreate") {
		return
	}
	cmd := exec.Command("pvcreate", "-ff", "-y", "--config", "devices { use_devicesfile=0 obtain_device_list_from_udev=0 }", dev4k)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pvcreate %s: %v: %s", dev4k, err, out)
	}
	got, err = DescribeDisk(ctx, Options{}, dev4k)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{SigLVM2}, got.Signatures); diff != "" {
		t.Errorf("%s after pvcreate: signatures mismatch (-want +got):\n%s", dev4k, diff)
	}
}

// The naming code against the real thing: systemd-udevd 252's path_id
// builtin and rules run on the same fixture trees, bind-mounted over /sys in
// a private mount namespace (with empty /dev and /run, so no rule can reach
// a real device). ata_id and scsi_id need the device itself, so the ATA and
// SCSI by-id names are checked by TestCollectDisksNaming only.
func TestLoopNamingMatchesUdev(t *testing.T) {
	needRoot(t, "unshare", "udevadm", "mount")
	for _, fixture := range []string{"this-vm", "server-sata", "server-sas", "server-nvme", "vm-scsi", "usb-stick"} {
		t.Run(fixture, func(t *testing.T) {
			root := buildTree(t, fixture)
			s := sysfs{root: root}
			script := "set -e; mount -t tmpfs none /dev; mount -t tmpfs none /run; mount --bind " + root + " /sys\n" +
				"export SYSTEMD_DEVICE_VERIFY_SYSFS=0\n" +
				"for b in $(ls /sys/block); do echo \"== $b\"; udevadm test-builtin path_id /sys/block/$b 2>/dev/null | grep '^ID_PATH' || true\n" +
				"case $b in nvme*|vd*) udevadm test --action=add /sys/block/$b 2>/dev/null | grep '^DEVLINKS=' || true;; esac; done\n"
			cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("udevadm in a mount namespace: %v: %s", err, stderr.String())
			}
			udev := map[string]map[string]string{}
			var cur string
			for _, line := range strings.Split(string(out), "\n") {
				if b, ok := strings.CutPrefix(line, "== "); ok {
					cur = b
					udev[cur] = map[string]string{}
					continue
				}
				if k, v, ok := strings.Cut(line, "="); ok && cur != "" {
					udev[cur][k] = v
				}
			}
			if len(udev) == 0 {
				t.Fatalf("udevadm printed nothing:\n%s\n%s", out, stderr.String())
			}
			compared := 0
			for b, props := range udev {
				real, err := s.resolve(s.path("block", b))
				if err != nil {
					t.Fatal(err)
				}
				idPath, compat := pathID(s, device{fs: s, path: real})
				if idPath != props["ID_PATH"] || compat != props["ID_PATH_ATA_COMPAT"] {
					t.Errorf("%s: pathID = %q, %q; udev path_id: ID_PATH=%q ID_PATH_ATA_COMPAT=%q",
						b, idPath, compat, props["ID_PATH"], props["ID_PATH_ATA_COMPAT"])
				}
				links, ok := props["DEVLINKS"]
				if !ok {
					continue
				}
				var want []string
				for _, l := range strings.Fields(links) {
					if strings.HasPrefix(l, "/dev/disk/by-id/") || strings.HasPrefix(l, "/dev/disk/by-path/") {
						want = append(want, l)
					}
				}
				d, err := DescribeDisk(context.Background(), Options{SysRoot: root, DevRoot: t.TempDir()}, b)
				if err != nil {
					t.Fatal(err)
				}
				got := append(append([]string{}, d.ByID...), d.ByPath...)
				sort.Strings(want)
				sort.Strings(got)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: by-id/by-path names differ from udev's DEVLINKS (-udev +ours):\n%s", b, diff)
				}
				compared++
			}
			t.Logf("%d block devices checked against path_id, %d against the full rules", len(udev), compared)
		})
	}
}
