//go:build loop || vm

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/imagebuild"
	"github.com/imprint-dev/imprint/internal/testenv"
)

// octaviaHome makes a home directory whose ~/.cache/image-create (the
// Octavia default cache) is the repository's shared debootstrap cache, so
// `imprint build-image` runs with no argument at all and still reuses it.
func octaviaHome(t *testing.T) string {
	t.Helper()
	cache, err := filepath.Abs("../../build/imagebuild-cache")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cache, filepath.Join(home, ".cache", "image-create")); err != nil {
		t.Fatal(err)
	}
	return home
}

func octaviaPrereqs(t *testing.T) {
	t.Helper()
	testenv.RequireLoop(t, "debootstrap", "mkfs.ext4", "e2fsck", "resize2fs", "dumpe2fs", "debugfs", "chroot", "qemu-img", "losetup", "mount", "dpkg-query", "tar")
	if _, err := imagebuild.HostMirror(os.DirFS("/"), "bookworm"); err != nil {
		testenv.Skipf(t, "no host mirror: %v", err)
	}
}

// mountedDisk is a whole-disk image's first MBR partition mounted
// read-only through a loop device at the partition's offset (this host's
// kernel parses no partition tables).
type mountedDisk struct {
	Dir, Dev    string
	Start, Size int64
}

// mountFirstPartition converts disk (qcow2 or raw) to raw when needed and
// mounts its first partition read-only; everything is undone by t.Cleanup.
func mountFirstPartition(t *testing.T, disk, format string) mountedDisk {
	t.Helper()
	raw := disk
	if format != "raw" {
		raw = filepath.Join(t.TempDir(), "disk.raw")
		if b, err := exec.Command("qemu-img", "convert", "-f", format, "-O", "raw", disk, raw).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v %s", err, b)
		}
	}
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	mbr := make([]byte, 512)
	_, err = f.ReadAt(mbr, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		t.Fatalf("%s: no MBR signature", disk)
	}
	e := mbr[446:462]
	m := mountedDisk{Start: int64(binary.LittleEndian.Uint32(e[8:])) * 512, Size: int64(binary.LittleEndian.Uint32(e[12:])) * 512}
	if e[4] != 0x83 || m.Size == 0 {
		t.Fatalf("partition 1: type %#x size %d, want a Linux partition", e[4], m.Size)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", strconv.FormatInt(m.Start, 10),
		"--sizelimit", strconv.FormatInt(m.Size, 10), raw).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup --offset %d: %v %s", m.Start, err, out)
	}
	m.Dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", m.Dev).Run() })
	m.Dir = t.TempDir()
	if b, err := exec.Command("mount", "-o", "ro", "-t", "ext4", m.Dev, m.Dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s (partition 1 at offset %d): %v %s", m.Dev, m.Start, err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("umount", m.Dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", m.Dir, err, b)
		}
	})
	return m
}

// qcow2VirtualSize is `qemu-img info`'s virtual size and format.
func qcow2VirtualSize(t *testing.T, disk string) (int64, string) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", disk).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", disk, err)
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Format      string `json:"format"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info.VirtualSize, info.Format
}

// checkAmphoraTree checks what Octavia's spec lists in a mounted amphora
// root: a valid kernel with its initrd and modules, haproxy and the listed
// packages installed, haproxy configured (haproxy -c in the tree) and
// enabled, root's password locked or set as asked.
func checkAmphoraTree(t *testing.T, root string, packages []string, rootPassword bool) {
	t.Helper()
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		t.Fatalf("kernels in /boot: %v, want one", kernels)
	}
	ver := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	k, err := os.ReadFile(kernels[0])
	if err != nil {
		t.Fatal(err)
	}
	// a bzImage: "HdrS" at 0x202, the boot protocol version after it
	if len(k) < 1<<20 || string(k[0x202:0x206]) != "HdrS" || binary.LittleEndian.Uint16(k[0x206:]) < 0x020c {
		t.Errorf("%s (%d bytes) is not a bzImage of boot protocol >= 2.12", kernels[0], len(k))
	}
	if fi, err := os.Stat(filepath.Join(root, "boot", "initrd.img-"+ver)); err != nil || fi.Size() < 1<<20 {
		t.Errorf("initrd.img-%s: %v", ver, err)
	}
	if _, err := os.Stat(filepath.Join(root, "lib", "modules", ver, "modules.dep")); err != nil {
		t.Errorf("modules of %s: %v", ver, err)
	}
	args := append([]string{"--admindir=" + filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Package} ${Status}\n"}, packages...)
	out, err := exec.Command("dpkg-query", args...).CombinedOutput()
	if err != nil {
		t.Errorf("dpkg-query: %v\n%s", err, out)
	}
	for _, p := range packages {
		if !strings.Contains(string(out), p+" install ok installed\n") {
			t.Errorf("package %s not installed", p)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(root, "etc/haproxy/haproxy.cfg"))
	if err != nil || !bytes.Contains(cfg, []byte("frontend amphora-health")) {
		t.Errorf("haproxy.cfg not the element's: %v\n%s", err, cfg)
	}
	if b, err := exec.Command("chroot", root, "haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg").CombinedOutput(); err != nil {
		t.Errorf("haproxy -c in the image: %v %s", err, b)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/haproxy.service")); err != nil {
		t.Errorf("haproxy.service not enabled: %v", err)
	}
	shadow, err := os.ReadFile(filepath.Join(root, "etc/shadow"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(shadow), "\n")
	f := strings.Split(line, ":")
	if f[0] != "root" || len(f) < 2 {
		t.Fatalf("shadow's first line is not root's: %q", line)
	}
	locked := f[1] == "" || f[1] == "*" || strings.HasPrefix(f[1], "!")
	if f[1] == "" {
		t.Errorf("root has an empty password (login without one)")
	}
	switch {
	case rootPassword && (locked || !strings.HasPrefix(f[1], "$")):
		t.Errorf("-r given but root's password is %.3q...", f[1])
	case !rootPassword && !locked:
		t.Errorf("no -r but root has a password hash %.6q...", f[1])
	}
}

// TestLoopOctaviaDefaultImage runs `imprint build-image` with no argument
// at all, as Octavia's supported image is made, and checks what the spec
// lists: the qcow2 is the default 5 GB, its partition mounts through a
// loop device at its offset, a valid kernel is installed, haproxy and the
// amphora packages are installed, haproxy is configured and enabled, and
// root's login is disabled. get-kernel extracts the kernel from it.
func TestLoopOctaviaDefaultImage(t *testing.T) {
	octaviaPrereqs(t)
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("HOME", octaviaHome(t))
	for _, v := range []string{"DIB_DISTRIBUTION_MIRROR", "DIB_ELEMENTS", "DIB_LOCAL_ELEMENTS", "DIB_LOCAL_ELEMENTS_PATH", "ELEMENTS_PATH", "DIB_RELEASE"} {
		t.Setenv(v, "")
	}
	t0 := time.Now()
	code, out, errs := runCmd(t, "", "imprint", "build-image")
	if code != 0 {
		t.Fatalf("imprint build-image: exit %d\n%s", code, lastBytes(errs, 6000))
	}
	t.Logf("imprint build-image (no arguments) took %s", time.Since(t0).Round(time.Second))
	disk := filepath.Join(dir, "amphora-x64-haproxy.qcow2")
	if !strings.Contains(out, disk+"\n") {
		t.Errorf("outputs printed:\n%s\nwant %s", out, disk)
	}
	for _, f := range []string{"amphora-x64-haproxy.root.img.zst", "amphora-x64-haproxy.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("agent image: %v", err)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "imprint-*")); len(entries) > 0 {
		t.Errorf("work files left in the working directory: %v", entries)
	}
	size, format := qcow2VirtualSize(t, disk)
	if format != "qcow2" || size != 5<<30 {
		t.Errorf("%s: %s of %d bytes, want qcow2 of 5 GiB (Octavia's -s 5)", disk, format, size)
	}
	if fi, err := os.Stat(disk); err == nil {
		t.Logf("qcow2: virtual %d GiB, file %d MiB", size>>30, fi.Size()>>20)
	}
	m := mountFirstPartition(t, disk, "qcow2")
	if m.Start != 1<<20 || m.Start+m.Size > 5<<30 || m.Size < 4<<30 {
		t.Errorf("partition 1 at %d, %d bytes: want from 1 MiB, filling the 5 GiB disk", m.Start, m.Size)
	}
	packages := append(append(imagebuild.DefaultPackages(imagebuild.KernelCloud), imagebuild.AmphoraPackages...), "haproxy")
	checkAmphoraTree(t, m.Dir, packages, false)

}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
