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
// no QEMU): the image imprint built keeps its initramfs, which already
// runs the builder's imprint-lvm (every VG) in local-top and local-block;
// with the builder's scripts removed (any other image), the image's own
// update-initramfs rebuilds it with the plan's VGs.
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
	// checkInitrd: the target's initramfs runs imprint-lvm in both phases
	// (listed in their ORDER files, executable), its text holding want,
	// next to lvm itself.
	checkInitrd := func(name, want string) {
		t.Helper()
		initrds, _ := filepath.Glob(filepath.Join(mnt, "boot", "initrd.img-*"))
		if len(initrds) != 1 {
			t.Fatalf("%s: initrds %v", name, initrds)
		}
		ird := filepath.Join(dir, "ird-"+name)
		os.MkdirAll(ird, 0o755)
		x := exec.Command("sh", "-c", `zcat "$1" | cpio -idm --quiet`, "sh", initrds[0])
		x.Dir = ird
		if out, err := x.CombinedOutput(); err != nil {
			t.Fatalf("%s: unpack %s: %v\n%s", name, initrds[0], err, out)
		}
		for _, phase := range []string{"local-top", "local-block"} {
			order, err := os.ReadFile(filepath.Join(ird, "scripts", phase, "ORDER"))
			if err != nil || !strings.Contains(string(order), "/scripts/"+phase+"/imprint-lvm") {
				t.Errorf("%s: %s/ORDER does not run imprint-lvm: %q %v", name, phase, order, err)
			}
			s, err := os.ReadFile(filepath.Join(ird, "scripts", phase, "imprint-lvm"))
			fi, _ := os.Stat(filepath.Join(ird, "scripts", phase, "imprint-lvm"))
			if err != nil || fi.Mode().Perm()&0o111 == 0 || !strings.Contains(string(s), want) {
				t.Errorf("%s: %s/imprint-lvm (want %q): %v %v\n%s", name, phase, want, err, fi, s)
			}
		}
		if _, err := os.Stat(filepath.Join(ird, "usr/sbin/lvm")); err != nil {
			t.Errorf("%s: no lvm in the initramfs: %v", name, err)
		}
	}
	log2 := slog.New(slog.NewTextHandler(testWriter{t}, nil))

	// 1. The image `imprint build-image` made carries the builder's script
	// (every VG) in its initramfs already: kept as it is.
	initrds, _ := filepath.Glob(filepath.Join(mnt, "boot", "initrd.img-*"))
	before, err := os.Stat(initrds[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := bootloader.InitramfsLVM(context.Background(), &sys.Exec{}, mnt, plan, log2); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(initrds[0]); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the built image's initramfs was rebuilt (%v)", err)
	}
	checkInitrd("built", `"$LVM" vgchange -ay --sysinit >`)

	// 2. An image without it (any other image: the builder's scripts
	// removed here): the plan's VGs written and the initramfs rebuilt by
	// the image's own update-initramfs.
	for _, p := range bootloader.InitramfsLVMPaths {
		if err := os.Remove(filepath.Join(mnt, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bootloader.InitramfsLVM(context.Background(), &sys.Exec{}, mnt, plan, log2); err != nil {
		t.Fatal(err)
	}
	checkInitrd("foreign", "for vg in 'image' 'os'; do")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
