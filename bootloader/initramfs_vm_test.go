//go:build vm

package bootloader_test

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/bootloader"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/internal/vmtest"
	"github.com/imprint-dev/imprint/partition"
)

// TestVMInitramfsLVMScript runs InitramfsLVM on the real target image (the
// bookworm tree the VM tests boot, its root and /boot images loop-mounted,
// no QEMU): the image's own update-initramfs builds an initramfs whose
// local-top and local-block phases run imprint-lvm (listed in their ORDER
// files, executable), with the plan's VGs, next to lvm itself.
func TestVMInitramfsLVMScript(t *testing.T) {
	testenv.RequireRoot(t, "loop mounts and chroot")
	testenv.RequireTool(t, "losetup", "mount", "umount", "e2fsck", "resize2fs", "cpio")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ti := vmtest.RequireTargetImage(t, log)
	dir := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	unpack := func(gz, out string, size int64) string {
		t.Helper()
		f, err := os.Open(gz)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, zr); err != nil {
			t.Fatal(err)
		}
		w.Truncate(size) // room for a new initramfs, as the agent grows the images to their partitions
		w.Close()
		exec.Command("e2fsck", "-fy", out).Run()
		run("resize2fs", out)
		dev := run("losetup", "--find", "--show", out)
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	root := unpack(ti.Root, filepath.Join(dir, "root.img"), 2<<30)
	boot := unpack(ti.Boot, filepath.Join(dir, "boot.img"), 200<<20)
	mnt := filepath.Join(dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	var mounted []string
	t.Cleanup(func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			exec.Command("umount", mounted[i]).Run()
		}
	})
	mount := func(args ...string) {
		run("mount", args...)
		mounted = append(mounted, args[len(args)-1])
	}
	mount(root, mnt)
	mount(boot, filepath.Join(mnt, "boot"))
	for _, p := range []string{"proc", "sys", "dev"} {
		mount("--bind", "/"+p, filepath.Join(mnt, p))
	}

	plan := &partition.Plan{
		LVs: []partition.LV{{Name: "root", VG: "os", Device: "/dev/mapper/os-root"}, {Name: "glance", VG: "image", Device: "/dev/mapper/image-glance"}},
		FSs: []partition.FS{{Device: "/dev/mapper/os-root", Mount: "/", Type: "ext4", Image: true}, {Device: "/dev/mapper/image-glance", Mount: "/var/lib/glance", Type: "xfs"}},
	}
	if err := bootloader.InitramfsLVM(context.Background(), &sys.Exec{}, mnt, plan, slog.New(slog.NewTextHandler(testWriter{t}, nil))); err != nil {
		t.Fatal(err)
	}
	initrds, _ := filepath.Glob(filepath.Join(mnt, "boot", "initrd.img-*"))
	if len(initrds) != 1 {
		t.Fatalf("initrds %v", initrds)
	}
	ird := filepath.Join(dir, "ird")
	os.MkdirAll(ird, 0o755)
	x := exec.Command("sh", "-c", `zcat "$1" | cpio -idm --quiet`, "sh", initrds[0])
	x.Dir = ird
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", initrds[0], err, out)
	}
	for _, phase := range []string{"local-top", "local-block"} {
		order, err := os.ReadFile(filepath.Join(ird, "scripts", phase, "ORDER"))
		if err != nil || !strings.Contains(string(order), "/scripts/"+phase+"/imprint-lvm") {
			t.Errorf("%s/ORDER does not run imprint-lvm: %q %v", phase, order, err)
		}
		s, err := os.ReadFile(filepath.Join(ird, "scripts", phase, "imprint-lvm"))
		fi, _ := os.Stat(filepath.Join(ird, "scripts", phase, "imprint-lvm"))
		if err != nil || fi.Mode().Perm()&0o111 == 0 || !strings.Contains(string(s), "for vg in 'image' 'os'; do") {
			t.Errorf("%s/imprint-lvm: %v %v\n%s", phase, err, fi, s)
		}
		t.Logf("%s/ORDER:\n%s", phase, order)
	}
	if _, err := os.Stat(filepath.Join(ird, "usr/sbin/lvm")); err != nil {
		t.Errorf("no lvm in the initramfs: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
