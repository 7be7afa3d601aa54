package bootloader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imprint-dev/imprint/partition"
)

// The first boot of an LVM root could hang in the target's initramfs
// (issue 22, problem 5): Debian bookworm's initramfs-tools has no LVM
// script any more; the only thing activating a VG there is lvm2's udev
// rule 69-lvm.rules, which runs `pvscan --cache --checkcomplete --vgonline`
// for each PV's add event and, once the VG looks complete, one
// `vgchange -aay --autoactivation event VG`. --vgonline marks the VG
// online before that vgchange has done anything, so the VG is activated at
// most once per boot: when that single attempt finds the VG incomplete
// (several disks probed in parallel, a PV whose udev record is not yet
// initialized) or fails, nothing tries again, and the initramfs loops over
// its local-block scripts (mdadm's only) until "Gave up waiting for root
// file system device ... /dev/mapper/os-root does not exist". Debian bugs
// #1082403 and #1089167; upstream lvm2 issue 174.
//
// imprint therefore installs in the target an initramfs-tools script,
// in local-top (once, before the wait) and local-block (run again on every
// iteration of the wait loop, as the old Debian lvm2 script was), that
// activates the plan's VGs explicitly, and regenerates the initramfs.

// initramfsLVMScript is the path of the script under
// /etc/initramfs-tools/scripts/<phase>/.
const initramfsLVMScript = "imprint-lvm"

// InitramfsLVMScript renders the script activating vgs.
func InitramfsLVMScript(vgs []string) []byte {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Written by imprint: activate the volume groups the provisioned layout
# needs, every time initramfs-tools runs this phase, instead of relying on
# one udev event (69-lvm.rules) per boot.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in
prereqs) prereqs; exit 0 ;;
esac
LVM=/sbin/lvm
[ -x "$LVM" ] || LVM=/usr/sbin/lvm
[ -x "$LVM" ] || exit 0
`)
	if len(vgs) == 0 {
		// The image builder's: every VG the initramfs can see.
		b.WriteString(`"$LVM" vgchange -ay --sysinit >/dev/null 2>&1 || true
exit 0
`)
		return []byte(b.String())
	}
	b.WriteString("for vg in")
	for _, vg := range vgs {
		b.WriteString(" " + shellQuote(vg))
	}
	b.WriteString(`; do
	"$LVM" vgchange -ay --sysinit "$vg" >/dev/null 2>&1 || true
done
exit 0
`)
	return []byte(b.String())
}

// InitramfsLVMPaths are where the activation script goes in a target's
// initramfs-tools configuration (relative to its root), one per phase.
var InitramfsLVMPaths = []string{
	"etc/initramfs-tools/scripts/local-top/" + initramfsLVMScript,
	"etc/initramfs-tools/scripts/local-block/" + initramfsLVMScript,
}

// initramfsLVMBaked reports whether the target came with the image
// builder's script (InitramfsLVMScript(nil), activating every VG) in both
// phases: `imprint build-image` writes it before the kernel is installed,
// so the image's initramfs already carries it and need not be rebuilt.
func initramfsLVMBaked(t string) bool {
	want := InitramfsLVMScript(nil)
	for _, p := range InitramfsLVMPaths {
		b, err := os.ReadFile(filepath.Join(t, p))
		if err != nil || string(b) != string(want) {
			return false
		}
	}
	return true
}

// shellQuote single-quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// planVGs lists the plan's volume groups holding a filesystem, sorted.
func planVGs(p *partition.Plan) []string {
	lvVG := map[string]string{}
	for _, lv := range p.LVs {
		dev := lv.Device
		if dev == "" {
			dev = partition.LVDevice(lv.VG, lv.Name)
		}
		lvVG[dev] = lv.VG
	}
	seen := map[string]bool{}
	var out []string
	for _, fs := range p.FSs {
		if vg := lvVG[fs.Device]; vg != "" && !seen[vg] {
			seen[vg] = true
			out = append(out, vg)
		}
	}
	sort.Strings(out)
	return out
}

// fixInitramfs is InitramfsLVM with the installer's runner.
func (in *Installer) fixInitramfs(ctx context.Context, t string, p *partition.Plan, log *slog.Logger) error {
	return InitramfsLVM(ctx, in.Runner, t, p, log)
}

// InitramfsLVM installs the LVM activation script in the target tree t
// (mounted, with /proc, /sys and /dev bound) when it is built on
// initramfs-tools and p has LVM filesystems, and regenerates its initramfs
// through runner. A target without initramfs-tools (dracut activates the
// LVs named by rd.lvm.lv itself) or without LVM is left alone.
func InitramfsLVM(ctx context.Context, runner Runner, t string, p *partition.Plan, log *slog.Logger) error {
	vgs := planVGs(p)
	if len(vgs) == 0 {
		return nil
	}
	if fi, err := os.Stat(filepath.Join(t, "etc/initramfs-tools")); err != nil || !fi.IsDir() {
		return nil
	}
	found := false
	for _, d := range chrootPath {
		if fi, err := os.Stat(filepath.Join(t, d, "update-initramfs")); err == nil && !fi.IsDir() {
			found = true
		}
	}
	if !found {
		return nil
	}
	if initramfsLVMBaked(t) {
		log.Info("the image's initramfs already activates every VG (imprint build-image's script): not regenerated", "vgs", vgs)
		return nil
	}
	script := InitramfsLVMScript(vgs)
	for _, phase := range []string{"local-top", "local-block"} {
		name := "/etc/initramfs-tools/scripts/" + phase + "/" + initramfsLVMScript
		if err := writeFile(t, name, script); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(t, name), 0o755); err != nil {
			return fmt.Errorf("bootloader: chmod %s: %w", name, err)
		}
	}
	if _, err := runner.RunChroot(ctx, t, "update-initramfs", "-u", "-k", "all"); err != nil {
		return fmt.Errorf("bootloader: regenerate the initramfs with the LVM activation script: %w", err)
	}
	log.Info("initramfs regenerated with explicit LVM activation", "vgs", vgs)
	return nil
}
