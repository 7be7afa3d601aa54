//go:build loop

package imagebuild_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// TestLoopAirshipRoot builds testdata/airship/root.yaml (build-root, the
// body at the top level as airshipctl's executor documents have it) and
// checks the tarball without booting it: the output metadata matches the
// file, the NoCloud seed is in the tree byte for byte, the image's own
// cloud-init accepts the user-data (schema) and renders the
// network-config's static address for ifupdown (net-convert), and dpkg
// in the tree lists the packages the metadata does.
func TestLoopAirshipRoot(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 (make test-slow) to build the Airship root tarball (a whole image build; make test builds the ISO)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "root.yaml", false)
	md := checkAirshipMetadata(t, ab, "less")
	root := t.TempDir()
	if out, err := exec.Command("tar", "--numeric-owner", "-xpf", ab.Output, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	for _, f := range []string{"user-data", "network-config"} {
		want, _ := os.ReadFile(filepath.Join("testdata/airship", f))
		got, err := os.ReadFile(filepath.Join(root, "var/lib/cloud/seed/nocloud", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("seed %s: %v (%d bytes, want %d)", f, err, len(got), len(want))
		}
	}
	if md, _ := os.ReadFile(filepath.Join(root, "var/lib/cloud/seed/nocloud/meta-data")); !strings.HasPrefix(string(md), "instance-id: airship-root-") {
		t.Errorf("seed meta-data %q", md)
	}
	testenv.RequireTool(t, "chroot")
	chroot := func(argv ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "chroot", append([]string{root}, argv...)...).CombinedOutput()
		if err != nil {
			t.Errorf("chroot %v: %v\n%s", argv, err, out)
		}
		return string(out)
	}
	if out := chroot("cloud-init", "schema", "--config-file", "/var/lib/cloud/seed/nocloud/user-data"); !strings.Contains(out, "Valid cloud-config") {
		t.Errorf("cloud-init schema: %s", out)
	}
	chroot("cloud-init", "devel", "net-convert", "-p", "/var/lib/cloud/seed/nocloud/network-config", "-k", "yaml",
		"-d", "/tmp/netout", "-D", "debian", "-O", "eni")
	// Debian's eni renderer writes interfaces.d/50-cloud-init
	eni, err := os.ReadFile(filepath.Join(root, "tmp/netout/etc/network/interfaces.d/50-cloud-init"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"iface ens3 inet static", "address 10.0.2.50/24", "gateway 10.0.2.2"} {
		if !strings.Contains(string(eni), w) {
			t.Errorf("net-convert (eni) lacks %q:\n%s", w, eni)
		}
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(chroot("dpkg-query", "-W", "-f", "${db:Status-Status} ${Package}\n")), "\n") {
		if st, name, _ := strings.Cut(l, " "); st == "installed" {
			names = append(names, name)
		}
	}
	var mdNames []string
	for _, p := range md.Packages {
		mdNames = append(mdNames, p.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, mdNames) {
		t.Errorf("metadata lists %d packages, dpkg in the tree %d", len(mdNames), len(names))
	}
}

// TestLoopAirshipISO builds testdata/airship/image-configuration.yaml
// (build-iso) into the shared cache and checks it without booting: the
// output metadata matches the ISO, which holds the live kernel, initramfs,
// squashfs and boot menu and boots BIOS and UEFI (El Torito). The VM
// tier's TestVMAirshipISO boots this same build.
func TestLoopAirshipISO(t *testing.T) {
	testenv.RequireTool(t, "grub-mkrescue", "xorriso", "mksquashfs", "mformat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "image-configuration.yaml", true)
	checkAirshipMetadata(t, ab, "live-boot", "less")
	checkISO(t, ab.Output, "AIRSHIP_LIVE")
}

// TestLoopAirshipQcow builds testdata/airship/airship-image.yaml (the
// seed's AirshipImage CR, build-qcow) into the shared cache and checks the
// disk without booting it: the metadata matches the qcow2, the disk is the
// 3 GiB of params.storage.diskSize, its MBR has the 256 MiB /boot
// partition first and the root after it, and each holds an ext4
// filesystem grown to its partition. TestVMAirshipQcow boots this build.
func TestLoopAirshipQcow(t *testing.T) {
	if os.Getenv("IMPRINT_VM_SLOW") == "" {
		t.Skip("set IMPRINT_VM_SLOW=1 (make test-slow) to build the Airship qcow2 (a whole image build; make test builds the ISO)")
	}
	testenv.RequireTool(t, "qemu-img", "losetup", "dumpe2fs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	ab, _ := airshipBuild(t, ctx, "airship-image.yaml", true)
	checkAirshipMetadata(t, ab, "grub-pc", "less")
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "raw", ab.Output, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, out)
	}
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 3<<30 {
		t.Errorf("disk is %d bytes, want params.storage.diskSize 3G", fi.Size())
	}
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	mbr := make([]byte, 512)
	_, err = io.ReadFull(f, mbr)
	f.Close()
	if err != nil || mbr[510] != 0x55 || mbr[511] != 0xaa {
		t.Fatalf("no MBR: %v", err)
	}
	type part struct{ start, size int64 }
	var parts []part
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i:]
		if e[4] == 0 {
			continue
		}
		parts = append(parts, part{int64(binary.LittleEndian.Uint32(e[8:])) * 512, int64(binary.LittleEndian.Uint32(e[12:])) * 512})
	}
	if len(parts) != 2 || parts[0].size != 256<<20 || parts[1].start != parts[0].start+parts[0].size || parts[1].start+parts[1].size > 3<<30 {
		t.Fatalf("partitions %+v: want /boot of 256 MiB, then the root", parts)
	}
	for i, p := range parts {
		out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(p.start), "--sizelimit", fmt.Sprint(p.size), raw).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup: %v %s", err, out)
		}
		dev := strings.TrimSpace(string(out))
		h, err := exec.Command("dumpe2fs", "-h", dev).CombinedOutput()
		exec.Command("losetup", "-d", dev).Run()
		if err != nil {
			t.Fatalf("partition %d: dumpe2fs: %v %s", i+1, err, h)
		}
		var blocks, bsize int64
		for _, l := range strings.Split(string(h), "\n") {
			k, v, _ := strings.Cut(l, ":")
			switch k {
			case "Block count":
				blocks, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			case "Block size":
				bsize, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		if fs := blocks * bsize; fs < p.size-(4<<20) || fs > p.size {
			t.Errorf("partition %d: ext4 of %d bytes in a partition of %d: not grown to it", i+1, fs, p.size)
		}
	}
	t.Logf("qcow2 %s: /boot %d MiB, / %d MiB", ab.Output, parts[0].size>>20, parts[1].size>>20)
}
