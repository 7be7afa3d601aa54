package imagebuild

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ISOInput is what ISOPlan assembles a live ISO from.
type ISOInput struct {
	// Tarball is the root tree (the builder's rootfs tar).
	Tarball string
	// KernelVersion names /boot/vmlinuz-<v> and /boot/initrd.img-<v> in it.
	KernelVersion string
	// WorkDir is scratch space (absolute): the unpacked tree and the ISO tree.
	WorkDir string
	// Output is the ISO file.
	Output string
	// Label is the ISO9660 volume id (at most 32 characters).
	Label string
	// Title is the boot menu entry.
	Title string
}

// ISO layout: live-boot looks for /live/*.squashfs on every CD and disk.
const (
	ISOKernel   = "live/vmlinuz"
	ISOInitrd   = "live/initrd.img"
	ISOSquashfs = "live/filesystem.squashfs"
	ISOGrubCfg  = "boot/grub/grub.cfg"
)

// ISOKernelCmdline is the live system's kernel command line: live-boot
// mounts the squashfs under a tmpfs overlay; nonetworking keeps it from
// replacing /etc/network/interfaces with DHCP on every NIC (its file has
// no "source interfaces.d", so the seed's network-config, which
// cloud-init renders there, would be ignored); the console is the serial
// port as well as the screen.
const ISOKernelCmdline = "boot=live nonetworking console=tty0 console=ttyS0,115200n8"

// ISOPlan returns the steps that turn the root tarball into a live ISO
// that boots BIOS and UEFI: the tree unpacked, its kernel and initramfs
// (live-boot's) and a squashfs of it under /live, a grub.cfg, and
// grub-mkrescue (El Torito images for i386-pc and x86_64-efi, an EFI
// system partition image, xorriso) writing Output. Pure. The squashfs is
// zstd (Debian's kernels read it): several times faster to make than xz
// on a loaded builder for a few percent more size.
func ISOPlan(in ISOInput) (Plan, error) {
	var errs []string
	if !filepath.IsAbs(in.WorkDir) {
		errs = append(errs, fmt.Sprintf("work dir %q: must be absolute", in.WorkDir))
	}
	if in.KernelVersion == "" || strings.ContainsAny(in.KernelVersion, "/ \n") {
		errs = append(errs, fmt.Sprintf("kernel version %q: the root tree has no /boot/vmlinuz-VERSION", in.KernelVersion))
	}
	if in.Label == "" || len(in.Label) > 32 {
		errs = append(errs, fmt.Sprintf("volume id %q: must be 1-32 characters", in.Label))
	}
	if in.Tarball == "" || in.Output == "" {
		errs = append(errs, "tarball and output must be set")
	}
	if len(errs) > 0 {
		return Plan{}, fmt.Errorf("iso: %s", strings.Join(errs, "; "))
	}
	root := filepath.Join(in.WorkDir, "iso-root")
	tree := filepath.Join(in.WorkDir, "iso-tree")
	part := in.Output + ".part"
	title := in.Title
	if title == "" {
		title = "live"
	}
	steps := []Step{
		{Name: "iso: clean", Op: OpRemoveAll, Path: root},
		{Name: "iso: clean tree", Op: OpRemoveAll, Path: tree},
		{Name: "iso: mkdir root", Op: OpMkdir, Path: root, Mode: 0o755},
		{Name: "iso: mkdir live", Op: OpMkdir, Path: filepath.Join(tree, "live"), Mode: 0o755},
		{Name: "iso: unpack root", Op: OpRun, Argv: []string{"tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", in.Tarball, "-C", root}},
		{Name: "iso: kernel", Op: OpCopy, Source: filepath.Join(root, "boot", "vmlinuz-"+in.KernelVersion), Path: filepath.Join(tree, ISOKernel), Mode: 0o644},
		{Name: "iso: initramfs", Op: OpCopy, Source: filepath.Join(root, "boot", "initrd.img-"+in.KernelVersion), Path: filepath.Join(tree, ISOInitrd), Mode: 0o644},
		{Name: "iso: squashfs", Op: OpRun, Argv: []string{"mksquashfs", root, filepath.Join(tree, ISOSquashfs),
			"-noappend", "-no-progress", "-comp", "zstd", "-b", "1M", "-e", "lost+found"}},
		{Name: "iso: remove root", Op: OpRemoveAll, Path: root},
		{Name: "iso: grub.cfg", Op: OpWrite, Path: filepath.Join(tree, ISOGrubCfg), Mode: 0o644, Data: ISOGrubConfig(title)},
		{Name: "iso: grub-mkrescue", Op: OpRun, Argv: []string{"grub-mkrescue", "-o", part, tree, "--", "-volid", in.Label}},
		{Name: "iso: rename", Op: OpRename, Source: part, Path: in.Output},
		{Name: "iso: remove tree", Op: OpRemoveAll, Path: tree},
	}
	return Plan{Steps: steps, Outputs: []string{in.Output}}, nil
}

// ISOGrubConfig is the live ISO's boot menu, the same for BIOS and UEFI.
func ISOGrubConfig(title string) string {
	return fmt.Sprintf(`# written by imprint build-image (build-iso)
set timeout=1
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry %q {
	linux /%s %s
	initrd /%s
}
`, title, ISOKernel, ISOKernelCmdline, ISOInitrd)
}

// isoLabel makes an ISO9660 volume id of a name: upper case, [A-Z0-9_].
func isoLabel(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() == 32 {
			break
		}
	}
	return b.String()
}
