package partition

import (
	"fmt"

	"github.com/imprint-dev/imprint/provision"
)

// GUIDEFISystem is the GPT type of an EFI System Partition.
const GUIDEFISystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// PurposeESP is an EFI System Partition: Fuel's 200 MiB "UEFI" placeholder
// made real in the uefi and both boot modes.
const PurposeESP = "esp"

// ESPMount is where the first ESP is mounted in the target (Debian's
// /boot/efi). The ESPs of the other bootable disks are not mounted by the
// installed system: the agent installs the same boot chain into each one.
const ESPMount = "/boot/efi"

// espLabelPrefix names ESP filesystems: ESP0, ESP1, ... by bootable disk.
const espLabelPrefix = "ESP"

// espFAT32MinSectors is the smallest partition, in logical sectors, that
// holds a FAT32 filesystem with one sector per cluster: FAT32 needs at
// least 65525 clusters, plus the reserved sectors and two FATs.
const espFAT32MinSectors = 65525 + 32 + 2*512

// planESPs turns the "UEFI" placeholder of every bootable disk into an EFI
// System Partition when the boot mode asks for one (uefi, both):
//
//   - the partition keeps its number, place and size (Fuel's 200 MiB at
//     partition 2), so device names and the offsets of every other volume
//     are the same in every boot mode, and a keep_data reprovision that
//     switches modes moves nothing;
//   - its type becomes the EFI System GUID and it gets parted's "boot" and
//     "esp" flags (a partition_guid of the document still wins elsewhere;
//     the placeholder has none);
//   - it gets a vfat filesystem, FAT32 (mkfs.vfat -F 32) where the
//     partition holds enough clusters, which a 4Kn disk's 200 MiB does not
//     (51200 sectors of 4 KiB): there FAT16 with a warning (UEFI firmware
//     reads both; some only FAT32 on fixed disks);
//   - the first bootable disk's ESP is mounted at /boot/efi; the others
//     (a mirrored /boot's second disk) get no mount point: each has its own
//     copy of the boot chain and NVRAM entry (independent ESPs, not an md
//     mirror: firmware writes to an ESP behind md's back, and fwupd and
//     bootctl refuse an md ESP).
//
// The bios_grub partition stays in every mode: in uefi mode it is unused
// (24 MiB), and it keeps the layout identical to Fuel's and lets the disk
// be switched to legacy boot with a grub-install alone. bios and the
// zero value leave the placeholder as it is.
//
// A bootable disk without a "UEFI" placeholder (a pre-computed scheme that
// did not reserve one) is an error in the uefi and both modes.
func (pl *planner) planESPs() {
	p := pl.plan
	p.BootMode = pl.opts.BootMode
	switch pl.opts.BootMode {
	case "", provision.BootModeBIOS, provision.BootModeUEFI, provision.BootModeBoth:
	default:
		pl.fail(ErrLayout, "", "boot mode %q: want bios, uefi or both", pl.opts.BootMode)
		return
	}
	if !provision.BootModeWantsESP(pl.opts.BootMode) {
		return
	}
	boot := map[string]bool{}
	for _, d := range p.BootDisks() {
		boot[d] = true
	}
	n := 0
	for i := range p.Disks {
		d := &p.Disks[i]
		if !boot[d.Device] {
			continue
		}
		var esp *Partition
		for j := range d.Partitions {
			if d.Partitions[j].Purpose == PurposeUEFI {
				esp = &d.Partitions[j]
				break
			}
		}
		if esp == nil && pl.schemeESP(d) {
			n++
			continue
		}
		if esp == nil {
			pl.fail(ErrLayout, "", "disk %s: boot mode %q needs an EFI System Partition on every bootable disk, and the layout reserves no \"UEFI\" partition there", d.Device, pl.opts.BootMode)
			continue
		}
		esp.Purpose, esp.TypeGUID, esp.Flags, esp.Name = PurposeESP, GUIDEFISystem, []string{"boot", "esp"}, "EFI System Partition"
		fs := FS{Device: esp.Device, Type: "vfat", Label: fmt.Sprintf("%s%d", espLabelPrefix, n)}
		if n == 0 {
			fs.Mount, esp.Mount = ESPMount, ESPMount
		}
		sector := int64(d.LogicalSectorSize)
		if sector == 0 {
			sector = 512
		}
		if esp.SizeMiB()*(1<<20)/sector >= espFAT32MinSectors {
			fs.Options = "-F 32"
		} else {
			pl.warn("", "disk %s: the %d MiB ESP %s holds too few %d-byte sectors for FAT32: made FAT16, which some firmware does not boot from a fixed disk", d.Device, esp.SizeMiB(), esp.Device, sector)
		}
		p.FSs = append(p.FSs, fs)
		n++
	}
}

// schemeESP handles a pre-computed scheme that already made the ESP: a
// vfat filesystem mounted at /boot/efi on one of d's partitions. It gets
// the ESP type and flags; its filesystem is the scheme's.
func (pl *planner) schemeESP(d *Disk) bool {
	for j := range d.Partitions {
		part := &d.Partitions[j]
		if part.Purpose != PurposeFS || part.Mount != ESPMount {
			continue
		}
		for _, fs := range pl.plan.FSs {
			if fs.Device == part.Device && fs.Type == "vfat" {
				part.Purpose, part.TypeGUID, part.Flags = PurposeESP, GUIDEFISystem, []string{"boot", "esp"}
				return true
			}
		}
	}
	return false
}

// BootDisks are the disks that get a boot loader (grub's stage 1 under
// BIOS): Plan.Bootloader, or the disks flagged Bootloader.
func (p *Plan) BootDisks() []string {
	if len(p.Bootloader) > 0 {
		return p.Bootloader
	}
	var out []string
	for _, d := range p.Disks {
		if d.Bootloader {
			out = append(out, d.Device)
		}
	}
	return out
}

// ESPs are the plan's EFI System Partitions, in disk order.
func (p *Plan) ESPs() []Partition {
	var out []Partition
	for _, d := range p.Disks {
		for _, part := range d.Partitions {
			if part.Purpose == PurposeESP {
				out = append(out, part)
			}
		}
	}
	return out
}
