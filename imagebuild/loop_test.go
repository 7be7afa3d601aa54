//go:build loop

package imagebuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.yaml.in/yaml/v3"

	"github.com/imprint-dev/imprint/internal/logtest"
	"github.com/imprint-dev/imprint/internal/sys"
	"github.com/imprint-dev/imprint/internal/testenv"
)

func TestLoopBuildImage(t *testing.T) {
	loopPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	out, work, elem := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "testelem")
	t.Cleanup(func() {
		if l := leftovers(t, work); len(l) > 0 {
			t.Errorf("left behind: %v", l)
		}
	})
	writeHook(t, elem, "extra-data.d", "10-data", `echo "from the host" > "$TMP_HOOKS_PATH/extra-data"; test -d "$TARGET_ROOT/etc"`)
	writeHook(t, elem, "pre-install.d", "10-pre", `echo "pre-install.d/10-pre $DIB_RELEASE $DISTRO_NAME" >> /etc/imprint-order`)
	writeHook(t, elem, "install.d", "20-second", `echo install.d/20-second >> /etc/imprint-order; test -x /usr/bin/less`)
	writeHook(t, elem, "install.d", "10-first", `echo install.d/10-first >> /etc/imprint-order; cp /tmp/in_target.d/extra-data /etc/imprint-extra`)
	writeHook(t, elem, "post-install.d", "10-post", `echo post-install.d/10-post >> /etc/imprint-order`)
	writeHook(t, elem, "block-device.d", "10-dev", `test -b "$IMAGE_BLOCK_DEVICE"; echo "block-device.d/10-dev" >> "$TARGET_ROOT/etc/imprint-order"`)
	writeHook(t, elem, "finalise.d", "90-final", `echo finalise.d/90-final >> /etc/imprint-order`)
	writeHook(t, elem, "cleanup.d", "10-clean", `grep -q finalise "$TARGET_ROOT/etc/imprint-order"`)
	if err := os.WriteFile(filepath.Join(elem, "install.d", "README.md"), []byte("not a hook"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := loopConfig(t, out)
	log, logs := logtest.Capture(t)
	t0 := time.Now()
	res, err := Build(ctx, cfg, loopOptions(t, work, elem), SystemDeps(log))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Logf("build took %s (%d steps)", time.Since(t0).Round(time.Second), len(res.Plan.Steps))
	for _, line := range []string{"--- Building image (do_build_image) ---", "Running deboostrap completed", "Running apt-get install completed", "--- Building image END (do_build_image) ---"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q", line)
		}
	}

	// the outputs
	gz := filepath.Join(out, "loop-test.img.gz")
	if b, err := exec.Command("gzip", "-t", gz).CombinedOutput(); err != nil {
		t.Fatalf("gzip -t %s: %v %s", gz, err, b)
	}
	metaData, err := os.ReadFile(filepath.Join(out, "loop-test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := yaml.Unmarshal(metaData, &meta); err != nil {
		t.Fatal(err)
	}
	if got := keys(meta); strings.Join(got, ",") != "images,os,packages,repos" {
		t.Errorf("metadata keys = %v", got)
	}
	img := meta["images"].([]any)[0].(map[string]any)
	if got := keys(img); strings.Join(got, ",") != "container,container_md5,container_name,container_size,format,raw_md5,raw_name,raw_size" {
		t.Errorf("image keys = %v", got)
	}
	osm := meta["os"].(map[string]any)
	if osm["name"] != "Debian" || osm["major"] != 12 {
		t.Errorf("os = %v", osm)
	}
	repo := meta["repos"].([]any)[0].(map[string]any)
	if got := keys(repo); strings.Join(got, ",") != "meta,name,priority,section,suite,type,uri" {
		t.Errorf("repo keys = %v", got)
	}
	gzData, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	if img["container_size"] != len(gzData) || img["container_md5"] != md5hex(gzData) {
		t.Errorf("container size/md5 in metadata %v/%v, file %d/%s", img["container_size"], img["container_md5"], len(gzData), md5hex(gzData))
	}
	// decode with Go and count the members
	raw := filepath.Join(t.TempDir(), "root.img")
	rawF, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gzData))
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(rawF, h), zr)
	rawF.Close()
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if n != int64(img["raw_size"].(int)) || hex.EncodeToString(h.Sum(nil)) != img["raw_md5"] {
		t.Errorf("raw size/md5: metadata %v/%v, decoded %d/%x", img["raw_size"], img["raw_md5"], n, h.Sum(nil))
	}
	if members := gzipMembers(t, gzData); members < 2 {
		t.Errorf("gzip members = %d, want several (one per 8 MiB)", members)
	} else {
		t.Logf("raw %d MiB, gzip %d MiB in %d members", n>>20, len(gzData)>>20, members)
	}
	// filesystem clean, shrunk, with the packages and the hooks' effect
	if b, err := exec.Command("e2fsck", "-fn", raw).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, b)
	}
	if n > 1<<30 {
		t.Errorf("image not shrunk: %d bytes", n)
	}
	order := debugfsCat(t, raw, "/etc/imprint-order")
	wantOrder := "pre-install.d/10-pre bookworm debian\ninstall.d/10-first\ninstall.d/20-second\npost-install.d/10-post\nblock-device.d/10-dev\nfinalise.d/90-final\n"
	if order != wantOrder {
		t.Errorf("hooks ran as\n%s\nwant\n%s", order, wantOrder)
	}
	if got := debugfsCat(t, raw, "/etc/imprint-extra"); got != "from the host\n" {
		t.Errorf("extra-data = %q", got)
	}
	for _, f := range []string{"/usr/bin/less", "/etc/services", "/usr/bin/eatmydata"} {
		if !debugfsExists(t, raw, f) {
			t.Errorf("%s missing from the image", f)
		}
	}
	for _, f := range []string{"/usr/sbin/policy-rc.d", "/etc/apt/sources.list.d/fuel-image-debian.list", "/etc/apt/preferences.d/fuel-image-debian.pref", "/etc/resolv.conf"} {
		if debugfsExists(t, raw, f) {
			t.Errorf("%s left in the image", f)
		}
	}

	// again: nothing to do
	log2, logs2 := logtest.Capture(t)
	res2, err := Build(ctx, cfg, loopOptions(t, work, elem), SystemDeps(log2))
	if err != nil || !res2.Skipped {
		t.Errorf("second Build = %+v, %v; want skipped", res2, err)
	}
	if !strings.Contains(logs2.String(), "All necessary images are available. Nothing needs to be done.") {
		t.Errorf("second build log: %s", logs2.String())
	}
}

func TestLoopBuildImageFailureCleansUp(t *testing.T) {
	loopPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out, work, elem := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "failing")
	// a daemon left running in the chroot, then a failure
	writeHook(t, elem, "pre-install.d", "50-fail", `setsid sleep 600 </dev/null >/dev/null 2>&1 &
echo "hook says no" >&2
exit 3`)
	log, _ := logtest.Capture(t)
	_, err := Build(ctx, loopConfig(t, out), loopOptions(t, work, elem), SystemDeps(log))
	var se *StepError
	if !errors.As(err, &se) || se.Step != "hook pre-install.d/50-fail (element failing)" {
		t.Fatalf("Build = %v, want a StepError of the hook", err)
	}
	if !strings.Contains(err.Error(), "hook says no") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error lacks the hook's stderr and status: %v", err)
	}
	if l := leftovers(t, work); len(l) > 0 {
		t.Errorf("left behind after failure: %v", l)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("work dir not removed: %v", entries)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("outputs after a failure: %v", entries)
	}

	// cancelled (SIGTERM) while a hook runs
	elem2 := filepath.Join(t.TempDir(), "slow")
	writeHook(t, elem2, "install.d", "10-slow", `touch /tmp/in_target.d/started; sleep 600`)
	ctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			m, _ := filepath.Glob(filepath.Join(work, "*", "hooks", "started"))
			if len(m) > 0 {
				cancel2()
				return
			}
		}
	}()
	t0 := time.Now()
	_, err = Build(ctx2, loopConfig(t, out), loopOptions(t, work, elem2), SystemDeps(log))
	if !errors.As(err, &se) || se.Step != "hook install.d/10-slow (element slow)" || !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "signal") {
		t.Errorf("cancelled Build = %v", err)
	}
	t.Logf("cancelled build returned after %s", time.Since(t0).Round(time.Second))
	if l := leftovers(t, work); len(l) > 0 {
		t.Errorf("left behind after cancel: %v", l)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func gzipMembers(t *testing.T, data []byte) int {
	br := bytes.NewReader(data)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func debugfsCat(t *testing.T, img, path string) string {
	out, err := exec.Command("debugfs", "-R", "cat "+path, img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}

func debugfsExists(t *testing.T, img, path string) bool {
	out, _ := exec.Command("debugfs", "-R", "stat "+path, img).CombinedOutput()
	return strings.Contains(string(out), "Inode:") && !strings.Contains(string(out), "File not found")
}

// TestLoopBuildDefaultImage builds the image of `make image` (minbase plus
// the default package set: kernel, grub-pc, cloud-init, lvm2, mdadm, ssh)
// with a whole-disk qcow2 and a rootfs tarball, and checks them with host
// tools.
func TestLoopBuildDefaultImage(t *testing.T) {
	loopPrereqs(t)
	testenv.RequireTool(t, "qemu-img", "tar")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, work := t.TempDir(), t.TempDir()
	t.Cleanup(func() {
		if l := leftovers(t, work); len(l) > 0 {
			t.Errorf("left behind: %v", l)
		}
	})
	cfg := loopConfig(t, out)
	cfg.Packages = nil // the default set
	cfg.Repos[0].Priority = nil
	cfg.HashedRootPassword = ptr("$6$imprint$KPq3rCKbXdcz4x7Ck2xEa0Nuu0NmT5a2o5kU0k8ZfgkJ8c2sS0YvJ0VNrcD4Yn3pd5e2E0pAUQk0BTx5NQ7y8/")
	bo := loopOptions(t, work)
	bo.Options.DiskImage, bo.Options.DiskFormat = filepath.Join(out, "disk.qcow2"), "qcow2"
	bo.Options.Tarball = filepath.Join(out, "rootfs.tar")
	log, _ := logtest.Capture(t)
	t0 := time.Now()
	res, err := Build(ctx, cfg, bo, SystemDeps(log))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Logf("default image built in %s", time.Since(t0).Round(time.Second))
	gz := filepath.Join(out, "loop-test.img.gz")
	raw := filepath.Join(t.TempDir(), "root.img")
	if b, err := exec.Command("sh", "-c", "gzip -dc "+gz+" > "+raw).CombinedOutput(); err != nil {
		t.Fatalf("gunzip: %v %s", err, b)
	}
	if b, err := exec.Command("e2fsck", "-fn", raw).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, b)
	}
	fi, _ := os.Stat(raw)
	if fi.Size() != res.Sums["/"].RawSize {
		t.Errorf("raw size %d, metadata %d", fi.Size(), res.Sums["/"].RawSize)
	}
	t.Logf("root image: raw %d MiB, gzip %d MiB", res.Sums["/"].RawSize>>20, res.Sums["/"].ContainerSize>>20)
	for _, f := range []string{
		"/usr/sbin/grub-install", "/usr/lib/grub/i386-pc/boot.img", "/usr/bin/cloud-init", "/usr/sbin/lvm", "/sbin/mdadm",
		"/usr/sbin/sshd", "/usr/bin/growpart", "/etc/cloud/cloud.cfg.d/90_imprint.cfg", "/boot/grub/grub.cfg",
		"/etc/systemd/system/ssh.service.d/10-imprint-host-keys.conf", "/usr/bin/dbus-daemon",
	} {
		if !debugfsExists(t, raw, f) {
			t.Errorf("%s missing from the image", f)
		}
	}
	ls, _ := exec.Command("debugfs", "-R", "ls -p /boot", raw).Output()
	if !strings.Contains(string(ls), "vmlinuz-") || !strings.Contains(string(ls), "initrd.img-") {
		t.Errorf("no kernel/initrd in /boot:\n%s", ls)
	}
	if shadow := debugfsCat(t, raw, "/etc/shadow"); !strings.HasPrefix(shadow, "root:$6$imprint$") {
		t.Errorf("root password not set: %.40q", shadow)
	}
	if debugfsExists(t, raw, "/etc/ssh/ssh_host_ed25519_key") {
		t.Errorf("ssh host keys left in the image")
	}
	// the initramfs assembles md and activates LVM
	k, i, err := GetKernel(ctx, &sys.Exec{}, gz, t.TempDir(), "node")
	if err != nil {
		t.Fatalf("GetKernel: %v", err)
	}
	names, err := initramfsNames(i)
	if err != nil {
		t.Fatalf("read initramfs %s: %v", i, err)
	}
	for _, w := range []string{"usr/sbin/mdadm", "usr/sbin/lvm"} {
		if !names[w] && !names[strings.TrimPrefix(w, "usr/")] {
			t.Errorf("initramfs lacks %s (%d entries)", w, len(names))
		}
	}
	// md: a boot script (bookworm: scripts/local-block/, older: local-top/)
	if !names["scripts/local-block/mdadm"] && !names["scripts/local-top/mdadm"] {
		t.Errorf("initramfs lacks the mdadm boot script (scripts/local-block or local-top)")
	}
	// LVM: bookworm's lvm2 hook ships no boot script; the initramfs's udev
	// activates VGs through lvm2's rules (69-lvm.rules runs pvscan -aay).
	if !names["scripts/local-top/lvm2"] && !names["usr/lib/udev/rules.d/69-lvm.rules"] && !names["lib/udev/rules.d/69-lvm.rules"] {
		t.Errorf("initramfs has neither lvm2's boot script nor its udev activation rule 69-lvm.rules")
	}
	// and imprint's activation script, written before the kernel, so the
	// agent need not rebuild this initramfs (bootloader.InitramfsLVMPaths)
	if !names["scripts/local-top/imprint-lvm"] || !names["scripts/local-block/imprint-lvm"] {
		t.Errorf("initramfs lacks imprint-lvm in scripts/local-top and scripts/local-block")
	}
	if b, _ := os.ReadFile(k); !bytes.Contains(b[:min(len(b), 1024)], []byte("HdrS")) {
		t.Errorf("%s is not a bzImage", k)
	}
	// whole-disk image and tarball
	info, err := exec.Command("qemu-img", "check", bo.Options.DiskImage).CombinedOutput()
	if err != nil {
		t.Errorf("qemu-img check: %v %s", err, info)
	}
	tl, err := exec.Command("tar", "-tf", bo.Options.Tarball, "./etc/os-release", "./usr/bin/cloud-init").CombinedOutput()
	if err != nil {
		t.Errorf("tar -t: %v %s", err, tl)
	}
}

// initramfsNames lists the files of an initramfs: concatenated newc cpio
// archives, each uncompressed, gzip or zstd.
func initramfsNames(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for len(data) > 0 {
		for len(data) > 0 && data[0] == 0 {
			data = data[1:]
		}
		if len(data) < 6 {
			break
		}
		switch {
		case bytes.HasPrefix(data, []byte("070701")):
			rest, err := cpioNames(data, names)
			if err != nil {
				return nil, err
			}
			data = rest
		case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zr, err := zstd.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			dec, err := io.ReadAll(zr)
			zr.Close()
			if err != nil {
				return nil, err
			}
			_, err = cpioNames(dec, names)
			return names, err
		case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			dec, err := io.ReadAll(zr)
			if err != nil {
				return nil, err
			}
			_, err = cpioNames(dec, names)
			return names, err
		default:
			return names, fmt.Errorf("unknown initramfs segment %x", data[:6])
		}
	}
	return names, nil
}

// cpioNames reads one newc archive, returns what follows its trailer.
func cpioNames(d []byte, names map[string]bool) ([]byte, error) {
	pad := func(n int) int { return (n + 3) &^ 3 }
	off := 0
	for {
		if off+110 > len(d) || string(d[off:off+6]) != "070701" {
			return nil, fmt.Errorf("bad cpio header at %d", off)
		}
		fsize, _ := strconv.ParseUint(string(d[off+54:off+62]), 16, 32)
		nsize, _ := strconv.ParseUint(string(d[off+94:off+102]), 16, 32)
		name := string(d[off+110 : off+110+int(nsize)-1])
		off = pad(off + 110 + int(nsize))
		off = pad(off + int(fsize))
		if name == "TRAILER!!!" {
			return d[min(off, len(d)):], nil
		}
		names[strings.TrimPrefix(name, "./")] = true
	}
}
