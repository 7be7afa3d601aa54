package imagebuild

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/imprint-dev/imprint/bootloader"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func goldenOptions() Options {
	return Options{
		Chroot: "/work/b/root.fuel-agent-image", TmpDir: "/work/b/tmp", HooksDir: "/work/b/hooks",
		Variant: "minbase", Cache: "/var/cache/imprint", ImageSize: 2 << 30,
		FSUUIDs: map[string]string{"/": "11111111-1111-4111-8111-111111111111", "/boot": "22222222-2222-4222-8222-222222222222"},
		Hooks: map[string][]Hook{
			"extra-data.d":   {{Element: "keys", Phase: "extra-data.d", Name: "10-keys", Path: "/els/keys/extra-data.d/10-keys"}},
			"install.d":      {{Element: "base", Phase: "install.d", Name: "10-a", Path: "/els/base/install.d/10-a"}, {Element: "keys", Phase: "install.d", Name: "20-b", Path: "/els/keys/install.d/20-b"}},
			"block-device.d": {{Element: "base", Phase: "block-device.d", Name: "10-dev", Path: "/els/base/block-device.d/10-dev"}},
			"finalise.d":     {{Element: "base", Phase: "finalise.d", Name: "99-z", Path: "/els/base/finalise.d/99-z"}},
		},
		ElementNames: []string{"base", "keys"},
		DiskImage:    "/out/disk.qcow2", DiskFormat: "qcow2",
		Tarball: "/out/rootfs.tar",
	}
}

func TestBuildPlanGolden(t *testing.T) {
	cfg := loadFixture(t).WithDefaults("", KernelCloud)
	p, err := BuildPlan(cfg, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	got := p.String()
	if strings.Contains(got, "hashhashhash") {
		t.Error("the root password hash is shown in the plan")
	}
	const golden = "testdata/plan.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("BuildPlan (-golden +got):\n%s", diff)
	}
	wantOut := []string{
		"/var/www/nailgun/targetimages/env_1_debian_12_amd64.img.gz",
		"/var/www/nailgun/targetimages/env_1_debian_12_amd64-boot.img.gz",
		"/var/www/nailgun/targetimages/env_1_debian_12_amd64.yaml",
		"/out/disk.qcow2", "/out/rootfs.tar",
	}
	if diff := cmp.Diff(wantOut, p.Outputs); diff != "" {
		t.Errorf("Outputs (-want +got):\n%s", diff)
	}
}

// stepNames is the plan as step names only, for order assertions.
func stepNames(p Plan) []string {
	var n []string
	for _, s := range p.Steps {
		n = append(n, s.Name)
	}
	return n
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestBuildPlanOrder(t *testing.T) {
	cfg := loadFixture(t)
	p, err := BuildPlan(cfg, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	n := stepNames(p)
	// DIB's order around the package install, the mounts by depth, the
	// unmounts in reverse
	order := []string{
		"mkfs /", "mkfs /boot", "mount /", "mkdir /boot", "mount /boot", "debootstrap", "mount /proc",
		"hook extra-data.d/10-keys (element keys)", "apt-get update", "apt pin mos", "apt-get dist-upgrade", "apt-get install",
		"hook install.d/10-a (element base)", "hook install.d/20-b (element keys)", "root password",
		"hook block-device.d/10-dev (element base)", "hook finalise.d/99-z (element base)", "grub core.img", "grub.cfg",
		"apt-get clean", "kill chroot processes", "umount /tmp/in_target.d", "umount /proc", "rootfs tarball",
		"umount /boot", "umount /", "detach loop /", "e2fsck /", "resize2fs /", "fit file /", "e2fsck /boot",
		"compress /", "compress /boot", "metadata", "disk image",
	}
	last := -1
	for _, s := range order {
		i := indexOf(n, s)
		if i < 0 {
			t.Fatalf("no step %q in %v", s, n)
		}
		if i < last {
			t.Errorf("step %q comes before %q", s, n[last])
		}
		last = i
	}
	// the hooks run where DIB runs them
	for _, s := range p.Steps {
		switch {
		case strings.HasPrefix(s.Name, "hook extra-data.d"), strings.HasPrefix(s.Name, "hook block-device.d"):
			if s.Op != OpRun || !strings.HasPrefix(s.Argv[0], "/work/b/hooks/") {
				t.Errorf("%s: want a host run from TMP_HOOKS_PATH, got %s", s.Name, s)
			}
		case strings.HasPrefix(s.Name, "hook "):
			if s.Op != OpChroot || !strings.HasPrefix(s.Argv[0], "/tmp/in_target.d/") {
				t.Errorf("%s: want a chroot run from /tmp/in_target.d, got %s", s.Name, s)
			}
		}
	}
	// pins only for repos with a priority
	if indexOf(n, "apt pin debian") >= 0 {
		t.Error("repo without priority pinned")
	}
}

func TestBuildPlanErrors(t *testing.T) {
	cfg := loadFixture(t)
	o := goldenOptions()
	o.Chroot, o.TmpDir, o.HooksDir, o.Container, o.DiskFormat = "rel", "", "", "lz4", "vmdk"
	o.FSUUIDs = nil
	cfg.Packages = []string{"bash"}
	_, err := BuildPlan(cfg, o)
	want := []string{
		`chroot "rel": must be an absolute directory`,
		`tmp dir "": must be an absolute directory`,
		`container "lz4": not one of gzip, zstd, raw`,
		`hooks dir "": must be an absolute directory`,
		`disk format "vmdk": must be raw or qcow2`,
		`disk image: packages must include grub-pc (its boot code goes into the MBR)`,
	}
	if err == nil {
		t.Fatal("BuildPlan accepted bad options")
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if indexOf(got, w) < 0 {
			t.Errorf("missing problem %q in:\n%s", w, err)
		}
	}
	if _, err := BuildPlan(Config{}, goldenOptions()); err == nil || !strings.Contains(err.Error(), "image_data: must list at least") {
		t.Errorf("BuildPlan(empty config) = %v", err)
	}
}

func TestBuildPlanMinimal(t *testing.T) {
	cfg := Config{ImageData: map[string]Image{"/": {Container: "zstd", Format: "xfs", URI: "/srv/img/x.img.zst"}}, Output: "/srv/img"}.WithDefaults("http://m.invalid/debian", KernelCloud)
	p, err := BuildPlan(cfg, Options{Chroot: "/w/root", TmpDir: "/w/tmp", NoEatmydata: true, AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	for _, w := range []string{
		"debootstrap: run debootstrap --verbose --arch=amd64 --include=ca-certificates --no-check-gpg bookworm /w/root http://m.invalid/debian\n",
		"mkfs /: run mkfs.xfs -f -q -L root {loop:/}",
		"apt conf allow_unsigned_packages: write",
		"apt-get install: chroot apt-get -y -q",
		"create image /: truncate path=/w/tmp/root.img mount=/ size=8589934592",
		`compress /: compress path=/srv/img/x.img.zst source=/w/tmp/root.img type=xfs mount=/ data="zstd"`,
		"UUID=", // none given: LABEL
	} {
		if w == "UUID=" {
			if strings.Contains(s, w) {
				t.Errorf("fstab uses UUIDs that were not given")
			}
			continue
		}
		if !strings.Contains(s, w) {
			t.Errorf("plan lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "e2fsck") || strings.Contains(s, "eatmydata") || strings.Contains(s, "in_target.d") {
		t.Errorf("xfs/no-eatmydata/no-hooks plan has ext steps, eatmydata or hooks:\n%s", s)
	}
}

// With locales installed, en_US.UTF-8 (the configdrive's locale) is
// generated after the packages; without, no step touches locales.
func TestBuildPlanLocales(t *testing.T) {
	cfg := loadFixture(t)
	p, err := BuildPlan(cfg, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if n := stepNames(p); indexOf(n, "locale.gen") >= 0 || indexOf(n, "locale-gen") >= 0 {
		t.Errorf("locale steps without the locales package: %v", n)
	}
	cfg.Packages = append(cfg.Packages, "locales")
	p, err = BuildPlan(cfg, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	n := stepNames(p)
	inst, gen, run := indexOf(n, "apt-get install"), indexOf(n, "locale.gen"), indexOf(n, "locale-gen")
	if inst < 0 || gen < inst || run < gen {
		t.Fatalf("apt-get install %d, locale.gen %d, locale-gen %d: want them in that order", inst, gen, run)
	}
	if s := p.Steps[gen]; s.Op != OpWrite || !strings.HasSuffix(s.Path, "/etc/locale.gen") || s.Data != "en_US.UTF-8 UTF-8\n" {
		t.Errorf("locale.gen step %s", s)
	}
	if s := p.Steps[run]; s.Op != OpChroot || strings.Join(s.Argv, " ") != "locale-gen" {
		t.Errorf("locale-gen step %s", s)
	}
}

// TestBuildPlanInitramfsLVM: with lvm2 and initramfs-tools among the
// packages, the image builder writes bootloader's VG activation script
// into both initramfs-tools phases before the kernel is installed (so the
// image's initramfs carries it and the agent need not rebuild it); without
// lvm2 it writes none.
func TestBuildPlanInitramfsLVM(t *testing.T) {
	cfg := loadFixture(t)
	cfg.Packages = DefaultPackages("")
	p, err := BuildPlan(cfg, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	n := stepNames(p)
	upgrade := indexOf(n, "apt-get dist-upgrade")
	for _, phase := range []string{"local-top", "local-block"} {
		name := "initramfs LVM activation etc/initramfs-tools/scripts/" + phase
		i := indexOf(n, name)
		if i < 0 || i > upgrade {
			t.Fatalf("step %q at %d, want before apt-get dist-upgrade (%d): %v", name, i, upgrade, n)
		}
		s := p.Steps[i]
		if s.Op != OpWrite || s.Mode != 0o755 || s.Data != string(bootloader.InitramfsLVMScript(nil)) ||
			!strings.HasSuffix(s.Path, "/etc/initramfs-tools/scripts/"+phase+"/imprint-lvm") {
			t.Errorf("step %q: %+v", name, s)
		}
	}
	if !strings.Contains(string(bootloader.InitramfsLVMScript(nil)), `"$LVM" vgchange -ay --sysinit >`) {
		t.Errorf("the image builder's script does not activate every VG:\n%s", bootloader.InitramfsLVMScript(nil))
	}
	cfg.Packages = slices.DeleteFunc(slices.Clone(cfg.Packages), func(s string) bool { return s == "lvm2" })
	p, err = BuildPlan(cfg, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stepNames(p) {
		if strings.HasPrefix(s, "initramfs LVM activation") {
			t.Errorf("without lvm2: step %q", s)
		}
	}
}
