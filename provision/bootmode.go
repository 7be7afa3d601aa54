package provision

import "strings"

// Boot modes of ks_meta.boot_mode, an imprint extension (Nailgun has no such
// key): how the provisioned node's firmware boots the disk.
const (
	// BootModeAuto ("" or absent): the mode the agent's ramdisk was booted
	// in (/sys/firmware/efi present: uefi, else bios).
	BootModeAuto = ""
	// BootModeBIOS: legacy BIOS only; Fuel's 200 MiB "UEFI" partition stays
	// an empty placeholder, grub-pc goes on every bootable disk.
	BootModeBIOS = "bios"
	// BootModeUEFI: the "UEFI" partition of every bootable disk becomes an
	// EFI System Partition with grub (through shim when the image carries
	// it) and one NVRAM entry per ESP.
	BootModeUEFI = "uefi"
	// BootModeBoth: an ESP and grub-pc's stage 1 on every bootable disk,
	// so the same disk boots either way.
	BootModeBoth = "both"
)

// BootModes are the values ks_meta.boot_mode accepts.
var BootModes = []string{BootModeBIOS, BootModeUEFI, BootModeBoth}

// ResolveBootMode is the boot mode to provision: the document's, else the
// one the ramdisk was booted in.
func ResolveBootMode(docMode string, bootedUEFI bool) string {
	if docMode != BootModeAuto {
		return docMode
	}
	if bootedUEFI {
		return BootModeUEFI
	}
	return BootModeBIOS
}

// BootModeWantsESP says whether mode (resolved) gives bootable disks an ESP.
func BootModeWantsESP(mode string) bool { return mode == BootModeUEFI || mode == BootModeBoth }

// BootModeWantsBIOS says whether mode (resolved) installs grub-pc's stage 1.
func BootModeWantsBIOS(mode string) bool { return mode == BootModeBIOS || mode == BootModeBoth }

// checkBootMode validates ks_meta.boot_mode.
func (d *Document) checkBootMode(f *findings) {
	m := d.KsMeta.BootMode
	if m == BootModeAuto {
		return
	}
	for _, ok := range BootModes {
		if m == ok {
			return
		}
	}
	f.err(field(pathKsMeta, "boot_mode"), "%q is not a boot mode: want %s, or leave it out to use the mode the ramdisk was booted in", m, strings.Join(BootModes, ", "))
}
