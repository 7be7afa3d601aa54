//go:build loop

package imagebuild

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
)

func run(t *testing.T, argv ...string) {
	t.Helper()
	if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, b)
	}
}

func writeAt(t *testing.T, dst, src string, off int64) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// get-kernel on every kind of image it reads, made here with the real
// tools: an ext4 filesystem (mkfs.ext4 -d), an MBR whole-disk image whose
// first partition is not ext, a GPT one (sgdisk), a qcow2 of the MBR disk
// (qemu-img) and a live ISO (xorriso, Rock Ridge). Each time the newest
// kernel and its own initrd come out, into a directory get-kernel creates.
func TestLoopGetKernelImageKinds(t *testing.T) {
	testenv.RequireTool(t, "mkfs.ext4", "debugfs", "qemu-img", "xorriso", "sgdisk")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	files := map[string]string{
		"boot/vmlinuz-6.1.0-9-amd64":     "old kernel 9",
		"boot/initrd.img-6.1.0-9-amd64":  "old initrd 9",
		"boot/vmlinuz-6.1.0-10-amd64":    "new kernel 10 " + strings.Repeat("k", 5000),
		"boot/initrd.img-6.1.0-10-amd64": "new initrd 10 " + strings.Repeat("i", 7000),
		"etc/hostname":                   "x\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fsImg := filepath.Join(dir, "root.img")
	run(t, "truncate", "-s", "16M", fsImg)
	run(t, "mkfs.ext4", "-q", "-F", "-d", tree, fsImg)

	// MBR: partition 1 is junk (no filesystem), partition 2 the ext4 at 8 MiB
	mbrDisk := filepath.Join(dir, "mbr.raw")
	run(t, "truncate", "-s", "32M", mbrDisk)
	mbr, err := MBR([]DiskPart{{Start: 1 << 20, Size: 4 << 20}, {Start: 8 << 20, Size: 16 << 20}}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mbr.bin"), append(mbr, bytes.Repeat([]byte("junk"), 1<<18)...), 0o644); err != nil {
		t.Fatal(err)
	}
	writeAt(t, mbrDisk, filepath.Join(dir, "mbr.bin"), 0)
	writeAt(t, mbrDisk, fsImg, 8<<20)

	// GPT: the ext4 in partition 2
	gptDisk := filepath.Join(dir, "gpt.raw")
	run(t, "truncate", "-s", "40M", gptDisk)
	run(t, "sgdisk", "-n", "1:2048:+4M", "-t", "1:ef00", "-n", "2:12288:+16M", gptDisk)
	writeAt(t, gptDisk, fsImg, 12288*512)

	qcow := filepath.Join(dir, "disk.qcow2")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", mbrDisk, qcow)

	// a live ISO: live/vmlinuz and live/initrd.img, an older pair elsewhere
	isoTree := filepath.Join(dir, "iso")
	for p, c := range map[string]string{
		"live/vmlinuz": files["boot/vmlinuz-6.1.0-10-amd64"], "live/initrd.img": files["boot/initrd.img-6.1.0-10-amd64"],
		"isolinux/isolinux.cfg": "default live\n", "live/filesystem.squashfs": "squash",
	} {
		os.MkdirAll(filepath.Join(isoTree, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(isoTree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "live.iso")
	run(t, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "IMPRINT_TEST", "-o", iso, isoTree)

	for _, tt := range []struct {
		name, image string
		kind        ImageKind
	}{
		{"filesystem", fsImg, KindFS}, {"mbr disk", mbrDisk, KindDisk}, {"gpt disk", gptDisk, KindDisk},
		{"qcow2", qcow, KindQcow2}, {"iso", iso, KindISO},
	} {
		t.Run(tt.name, func(t *testing.T) {
			head := make([]byte, 36<<10)
			f, _ := os.Open(tt.image)
			n, _ := f.ReadAt(head, 0)
			f.Close()
			if got := DetectImage(head[:n]); got != tt.kind {
				t.Errorf("DetectImage = %s, want %s", got, tt.kind)
			}
			out := filepath.Join(t.TempDir(), "does", "not", "exist")
			k, i, err := GetKernel(context.Background(), &sys.Exec{}, tt.image, out, "node")
			if err != nil {
				t.Fatalf("GetKernel: %v", err)
			}
			if k != filepath.Join(out, "node-vmlinuz") || i != filepath.Join(out, "node-initrd") {
				t.Errorf("outputs %s %s", k, i)
			}
			for p, want := range map[string]string{k: files["boot/vmlinuz-6.1.0-10-amd64"], i: files["boot/initrd.img-6.1.0-10-amd64"]} {
				if got, _ := os.ReadFile(p); string(got) != want {
					t.Errorf("%s = %.20q..., want %.20q...", filepath.Base(p), got, want)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(out, ".get-kernel-*")); len(left) > 0 {
				t.Errorf("scratch left: %v", left)
			}
		})
	}
	// a disk without any kernel names what it tried
	empty := filepath.Join(dir, "empty.raw")
	run(t, "truncate", "-s", "32M", empty)
	writeAt(t, empty, filepath.Join(dir, "mbr.bin"), 0)
	if _, _, err := GetKernel(context.Background(), &sys.Exec{}, empty, t.TempDir(), "x"); err == nil || !strings.Contains(err.Error(), "no partition of 2 holds a kernel (partition 1:") {
		t.Errorf("GetKernel(no kernel) = %v", err)
	}
}
