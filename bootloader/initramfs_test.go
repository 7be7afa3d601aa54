package bootloader

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/partition"
)

// A target on initramfs-tools with LVM filesystems gets the activation
// script in local-top and local-block (executable) and a regenerated
// initramfs, before grub's config is made.
func TestInstallInitramfsLVM(t *testing.T) {
	dir := target(t, ubuntuGrub)
	os.MkdirAll(filepath.Join(dir, "etc/initramfs-tools/scripts"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/sbin/update-initramfs"), []byte("#!/bin/sh\n"), 0o755)
	plan := testPlan()
	plan.LVs = []partition.LV{{Name: "root", VG: "os", Device: "/dev/mapper/os-root"}, {Name: "var", VG: "os"}, {Name: "unused", VG: "spare"}}
	run := &fakeRunner{}
	in := &Installer{Runner: run, Mounter: &fakeMounter{}}
	if err := in.Install(context.Background(), Request{Plan: plan, Target: dir}); err != nil {
		t.Fatal(err)
	}
	var chroot []string
	for _, c := range run.calls {
		if strings.HasPrefix(c, "chroot ") {
			chroot = append(chroot, strings.TrimPrefix(c, "chroot "+dir+" "))
		}
	}
	want := []string{"update-initramfs -u -k all", "grub-mkconfig -o /boot/grub/grub.cfg", "grub-install --target=i386-pc /dev/vda", "grub-install --target=i386-pc /dev/vdb"}
	if d := cmp.Diff(want, chroot); d != "" {
		t.Errorf("chroot commands (-want +got):\n%s", d)
	}
	for _, phase := range []string{"local-top", "local-block"} {
		p := filepath.Join(dir, "etc/initramfs-tools/scripts", phase, "imprint-lvm")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755 (initramfs-tools runs only executable scripts)", p, fi.Mode())
		}
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), "for vg in 'os'; do") || !strings.Contains(string(b), `vgchange -ay --sysinit "$vg"`) {
			t.Errorf("%s:\n%s", p, b)
		}
	}
}

// A target whose image came with the image builder's script (every VG,
// both phases) keeps its initramfs: no update-initramfs, the scripts
// unchanged. A target with only one phase's copy, or another script, is
// rebuilt.
func TestInstallInitramfsLVMBaked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		paths   []string
		data    []byte
		rebuild bool
	}{
		{"baked", InitramfsLVMPaths, InitramfsLVMScript(nil), false},
		{"one phase only", InitramfsLVMPaths[:1], InitramfsLVMScript(nil), true},
		{"another script", InitramfsLVMPaths, []byte("#!/bin/sh\nexit 0\n"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := target(t, ubuntuGrub)
			os.MkdirAll(filepath.Join(dir, "etc/initramfs-tools/scripts"), 0o755)
			os.WriteFile(filepath.Join(dir, "usr/sbin/update-initramfs"), []byte("#!/bin/sh\n"), 0o755)
			for _, p := range tc.paths {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
				os.WriteFile(filepath.Join(dir, p), tc.data, 0o755)
			}
			plan := testPlan()
			plan.LVs = []partition.LV{{Name: "root", VG: "os", Device: "/dev/mapper/os-root"}}
			run := &fakeRunner{}
			in := &Installer{Runner: run, Mounter: &fakeMounter{}}
			if err := in.Install(context.Background(), Request{Plan: plan, Target: dir}); err != nil {
				t.Fatal(err)
			}
			ran := strings.Contains(strings.Join(run.calls, "\n"), "update-initramfs")
			if ran != tc.rebuild {
				t.Errorf("update-initramfs run %v, want %v: %q", ran, tc.rebuild, run.calls)
			}
			if !tc.rebuild {
				for _, p := range InitramfsLVMPaths {
					if b, _ := os.ReadFile(filepath.Join(dir, p)); string(b) != string(InitramfsLVMScript(nil)) {
						t.Errorf("%s rewritten:\n%s", p, b)
					}
				}
			}
		})
	}
}

// Without initramfs-tools in the target, nothing is written or run.
func TestInstallNoInitramfsTools(t *testing.T) {
	dir := target(t, ubuntuGrub)
	run := &fakeRunner{}
	in := &Installer{Runner: run, Mounter: &fakeMounter{}}
	if err := in.Install(context.Background(), Request{Plan: testPlan(), Target: dir}); err != nil {
		t.Fatal(err)
	}
	for _, c := range run.calls {
		if strings.Contains(c, "update-initramfs") {
			t.Errorf("ran %q", c)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/initramfs-tools")); err == nil {
		t.Error("created etc/initramfs-tools")
	}
}

// The script is valid sh and its prereqs answer is initramfs-tools'.
func TestInitramfsLVMScriptRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p := filepath.Join(t.TempDir(), "s")
	os.WriteFile(p, InitramfsLVMScript([]string{"os", "it's"}), 0o755)
	out, err := exec.Command(sh, "-n", p).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -n: %v %s", err, out)
	}
	out, err = exec.Command(sh, p, "prereqs").Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("prereqs: %q %v", out, err)
	}
	if !strings.Contains(string(InitramfsLVMScript([]string{"os", "it's"})), `for vg in 'os' 'it'\''s'; do`) {
		t.Errorf("quoting:\n%s", InitramfsLVMScript([]string{"os", "it's"}))
	}
}
