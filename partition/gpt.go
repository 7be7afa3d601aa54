package partition

import (
	"fmt"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// GPT partition type GUIDs used when a planned partition has none.
const (
	gptTypeBIOSBoot   = string(gpt.BIOSBoot)
	gptTypeLinuxFS    = string(gpt.LinuxFilesystem)
	gptTypeLinuxRAID  = "A19D880F-05FC-4D3B-A006-743F0F84911E"
	gptTypeLinuxLVM   = string(gpt.LinuxLVM)
	gptTypeEFISystem  = string(gpt.EFISystemPartition)
	gptAttrLegacyBoot = uint64(1) << 2 // "legacy BIOS bootable" (parted's legacy_boot)
)

// gptEntrySectors is how many sectors the 128 entries of 128 bytes take;
// the backup header and array sit in the last gptEntrySectors+1 sectors.
func gptEntrySectors(sectorSize int) uint64 { return uint64(128*128) / uint64(sectorSize) }

// partitionTypeGUID is the type GUID written for p: the plan's, else one
// derived from its flags and purpose (bios_grub → BIOS boot, as parted's
// "set N bios_grub on" does).
func partitionTypeGUID(p Partition) string {
	if p.TypeGUID != "" {
		return strings.ToUpper(p.TypeGUID)
	}
	for _, f := range p.Flags {
		switch f {
		case "bios_grub":
			return gptTypeBIOSBoot
		case "esp", "boot":
			return gptTypeEFISystem
		}
	}
	switch p.Purpose {
	case PurposeBiosGrub:
		return gptTypeBIOSBoot
	case PurposeRaid:
		return gptTypeLinuxRAID
	case PurposePV:
		return gptTypeLinuxLVM
	}
	for _, f := range p.Flags {
		switch f {
		case "raid":
			return gptTypeLinuxRAID
		case "lvm":
			return gptTypeLinuxLVM
		}
	}
	return gptTypeLinuxFS
}

// GPTTable is the go-diskfs table Apply writes for disk d on a device of
// sizeBytes with the given logical sector size: every partition at its
// exact MiB boundaries (start sector = BeginMiB·1MiB/sector, end sector =
// EndMiB·1MiB/sector − 1), type GUID, name ("primary" when unnamed, as
// parted's mkpart primary) and the legacy BIOS bootable attribute for
// legacy_boot.
func GPTTable(d Disk, sizeBytes int64, sectorSize int) (*gpt.Table, error) {
	if sectorSize == 0 {
		sectorSize = 512
	}
	if sectorSize != 512 && sectorSize != 4096 {
		return nil, fmt.Errorf("unsupported logical sector size %d", sectorSize)
	}
	if d.Label != "" && d.Label != "gpt" {
		return nil, fmt.Errorf("unsupported partition table %q: only gpt is written", d.Label)
	}
	ss := int64(sectorSize)
	totalSectors := uint64(sizeBytes / ss)
	firstUsable := 2 + gptEntrySectors(sectorSize)
	if totalSectors < 2*firstUsable {
		return nil, fmt.Errorf("disk of %d bytes is too small for a GPT", sizeBytes)
	}
	lastUsable := totalSectors - 1 - gptEntrySectors(sectorSize) - 1
	t := &gpt.Table{LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: true}
	seen := map[int]bool{}
	var prevEnd uint64
	for _, p := range d.Partitions {
		if p.Number < 1 || p.Number > 128 {
			return nil, fmt.Errorf("partition %q: number %d out of 1..128", p.Device, p.Number)
		}
		if seen[p.Number] {
			return nil, fmt.Errorf("partition %q: number %d used twice", p.Device, p.Number)
		}
		seen[p.Number] = true
		if p.EndMiB <= p.BeginMiB || p.BeginMiB < 0 {
			return nil, fmt.Errorf("partition %q: [%d, %d) MiB is empty", p.Device, p.BeginMiB, p.EndMiB)
		}
		start := uint64(p.BeginMiB * applyMiB / ss)
		end := uint64(p.EndMiB*applyMiB/ss) - 1
		if start < firstUsable {
			return nil, fmt.Errorf("partition %q: starts at sector %d, before the first usable sector %d", p.Device, start, firstUsable)
		}
		if end > lastUsable {
			return nil, fmt.Errorf("partition %q: ends at sector %d, after the last usable sector %d of a %d-byte disk", p.Device, end, lastUsable, sizeBytes)
		}
		if start <= prevEnd && prevEnd != 0 {
			return nil, fmt.Errorf("partition %q: starts at sector %d, inside the previous partition (ends at %d)", p.Device, start, prevEnd)
		}
		prevEnd = end
		typ := partitionTypeGUID(p)
		if !planIsGUID(typ) {
			return nil, fmt.Errorf("partition %q: type GUID %q is not a GUID (8-4-4-4-12 hex digits)", p.Device, p.TypeGUID)
		}
		name := p.Name
		if name == "" {
			name = "primary"
		}
		var attrs uint64
		for _, f := range p.Flags {
			if f == "legacy_boot" {
				attrs |= gptAttrLegacyBoot
			}
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index:      p.Number,
			Start:      start,
			End:        end,
			Type:       gpt.Type(typ),
			Name:       name,
			Attributes: attrs,
		})
	}
	return t, nil
}

// writeGPT writes disk d's table through the device node dev.
func (a *applier) writeGPT(dev string, d Disk) (err error) {
	info, err := a.deps.Devices.Stat(dev)
	if err != nil {
		return err
	}
	t, err := GPTTable(d, info.SizeBytes, info.LogicalSectorSize)
	if err != nil {
		return err
	}
	f, err := a.deps.Devices.OpenDisk(dev)
	if err != nil {
		return fmt.Errorf("open for writing: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	if err := t.Write(f, info.SizeBytes); err != nil {
		return fmt.Errorf("write gpt: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}
