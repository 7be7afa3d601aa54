package partition

import (
	"fmt"
	"strings"

	"github.com/imprint-dev/imprint/provision"
)

// Scheme renders the plan in the field names of fuel-agent's
// PartitionScheme (what `imprint plan -o json` prints and what the
// nailgun_simple driver reads from "partitioning"). Partition guid is the
// type GUID the plan sets (fuel-agent leaves it null unless the volume gave
// one); label is truncated as it will be written.
func (p *Plan) Scheme() provision.PartitionScheme {
	s := provision.PartitionScheme{
		Parteds: []provision.Parted{},
		MDs:     []provision.MultipleDevice{},
		PVs:     []provision.PhysicalVolume{},
		VGs:     []provision.VolumeGroup{},
		LVs:     []provision.LogicalVolume{},
		FSs:     []provision.FileSystem{},
	}
	for _, d := range p.Disks {
		pd := provision.Parted{Name: d.Device, Label: d.Label, Partitions: []provision.Partition{}, InstallBootloader: d.Bootloader}
		for _, part := range d.Partitions {
			flags := append([]string{}, part.Flags...)
			var guid *string
			if part.TypeGUID != "" {
				g := part.TypeGUID
				guid = &g
			}
			pd.Partitions = append(pd.Partitions, provision.Partition{
				Name: part.Device, Count: part.Number, Device: d.Device,
				Begin: part.BeginMiB, End: part.EndMiB, PartitionType: "primary",
				Flags: flags, GUID: guid, Configdrive: part.Configdrive, KeepData: part.KeepData,
			})
		}
		s.Parteds = append(s.Parteds, pd)
	}
	for _, md := range p.MDs {
		s.MDs = append(s.MDs, provision.MultipleDevice{
			Name: md.Device, Level: md.Level, Metadata: md.Metadata, KeepData: md.KeepData,
			Devices: append([]string{}, md.Members...), Spares: append([]string{}, md.Spares...),
		})
	}
	for _, pv := range p.PVs {
		s.PVs = append(s.PVs, provision.PhysicalVolume{Name: pv.Device, MetadataSize: pv.MetadataSizeMiB, MetadataCopies: pv.MetadataCopies, KeepData: pv.KeepData})
	}
	for _, vg := range p.VGs {
		s.VGs = append(s.VGs, provision.VolumeGroup{Name: vg.Name, PVNames: append([]string{}, vg.PVs...), KeepData: vg.KeepData})
	}
	for _, lv := range p.LVs {
		s.LVs = append(s.LVs, provision.LogicalVolume{Name: lv.Name, VGName: lv.VG, Size: lv.SizeMiB, KeepData: lv.KeepData})
	}
	for _, fs := range p.FSs {
		s.FSs = append(s.FSs, provision.FileSystem{Device: fs.Device, Mount: fs.Mount, FSType: fs.Type, FSOptions: fs.Options, FSLabel: fs.Label, KeepData: fs.KeepData})
	}
	return s
}

const partitioningPath = "partitioning"

// fromScheme converts the nailgun_simple driver's pre-computed scheme into
// a Plan. provision's rules have passed (NewPlan checks them first): every
// partition is one of its parted's disk, every pv, md member and file system
// is a partition of a listed parted or an md or LV the scheme creates.
// Boundaries, numbers, names and flags are taken verbatim; each
// partition's purpose is inferred from what refers to it (PV, md member,
// filesystem, configdrive, bios_grub flag); a null guid gets the type GUID
// of that purpose. Bootloader disks are the parteds with
// install_bootloader true, as in fuel-agent.
func (pl *planner) fromScheme(s *provision.PartitionScheme) (*Plan, error) {
	pl.plan = newEmptyPlan()
	p := pl.plan

	pvVG := map[string]string{}
	for _, vg := range s.VGs {
		for _, pv := range vg.PVNames {
			pvVG[pv] = vg.Name
		}
	}
	isPV := map[string]bool{}
	for _, pv := range s.PVs {
		isPV[pv.Name] = true
	}
	mdOf := map[string]string{}
	for _, md := range s.MDs {
		for _, d := range md.Devices {
			mdOf[d] = md.Name
		}
		for _, d := range md.Spares {
			mdOf[d] = md.Name
		}
	}
	fsOf := map[string]provision.FileSystem{}
	for _, fs := range s.FSs {
		if _, ok := fsOf[fs.Device]; !ok {
			fsOf[fs.Device] = fs
		}
	}

	claimed := map[string]int{} // inventory device → parteds index
	for i, pd := range s.Parteds {
		dpath := fmt.Sprintf("%s.parteds[%d]", partitioningPath, i)
		dev, ok := pl.lookupParted(i, pd.Name)
		if !ok {
			continue
		}
		if j, dup := claimed[dev.Path]; dup {
			pl.fail(ErrDiskNotFound, dpath+".name", "%s is disk %s, which parteds[%d] (%s) already lays out", pd.Name, dev.Path, j, s.Parteds[j].Name)
			continue
		}
		claimed[dev.Path] = i
		label := pd.Label
		if label == "" {
			label = "gpt"
		}
		disk := Disk{Device: dev.Path, Name: dev.Name, SizeMiB: dev.SizeMiB, LogicalSectorSize: dev.LogicalSectorSize,
			Label: label, Partitions: []Partition{}, Bootloader: pd.InstallBootloader, Paths: dev.Paths}
		for j, sp := range pd.Partitions {
			name := sp.Name
			part := Partition{
				Number: sp.Count, Device: name, Disk: dev.Path, BeginMiB: sp.Begin, EndMiB: sp.End,
				Flags: append([]string{}, sp.Flags...), Configdrive: sp.Configdrive, KeepData: sp.KeepData,
				Purpose: PurposeNone,
			}
			hasFlag := func(f string) bool {
				for _, x := range sp.Flags {
					if x == f {
						return true
					}
				}
				return false
			}
			fs, hasFS := fsOf[name]
			switch {
			case sp.Configdrive:
				part.Purpose, part.TypeGUID = PurposeConfigdrive, GUIDLinuxFS
				if p.Configdrive == "" {
					p.Configdrive = name
				}
			case hasFlag("bios_grub"):
				part.Purpose, part.TypeGUID = PurposeBiosGrub, GUIDBIOSBoot
			case isPV[name]:
				part.Purpose, part.VG, part.TypeGUID = PurposePV, pvVG[name], GUIDLinuxLVM
			case mdOf[name] != "":
				part.Purpose, part.MD, part.TypeGUID = PurposeRaid, mdOf[name], GUIDLinuxRAID
			case hasFS:
				part.Purpose, part.Mount, part.TypeGUID = PurposeFS, fs.Mount, planGUIDForFS(fs.FSType)
			case sp.GUID != nil && strings.EqualFold(*sp.GUID, GUIDCephJournal):
				part.Purpose = PurposeCephJournal
			case j == 1 && len(disk.Partitions) == 1 && disk.Partitions[0].Purpose == PurposeBiosGrub:
				part.Purpose, part.TypeGUID = PurposeUEFI, GUIDUEFIPlaceholder
			default:
				part.TypeGUID = GUIDLinuxFS
			}
			if sp.GUID != nil && *sp.GUID != "" {
				part.TypeGUID = *sp.GUID
			}
			disk.Partitions = append(disk.Partitions, part)
		}
		p.Disks = append(p.Disks, disk)
		if disk.Bootloader {
			p.Bootloader = append(p.Bootloader, disk.Device)
		}
		if pl.inv != nil {
			pl.checkFitScheme(dpath, &p.Disks[len(p.Disks)-1])
		}
	}
	if len(s.Parteds) > 0 && len(p.Bootloader) == 0 {
		pl.warn(partitioningPath+".parteds", "no parted has install_bootloader: true, so grub is installed on no disk")
	}

	for _, md := range s.MDs {
		m := MD{Device: md.Name, Level: md.Level, Metadata: md.Metadata, Members: append([]string{}, md.Devices...),
			Spares: append([]string{}, md.Spares...), KeepData: md.KeepData}
		if m.Level == "" {
			m.Level = "mirror"
		}
		if m.Metadata == "" {
			m.Metadata = "default"
		}
		if fs, ok := fsOf[md.Name]; ok {
			m.Mount = fs.Mount
		}
		p.MDs = append(p.MDs, m)
	}
	for _, pv := range s.PVs {
		p.PVs = append(p.PVs, PV{Device: pv.Name, VG: pvVG[pv.Name], MetadataSizeMiB: pv.MetadataSize, MetadataCopies: pv.MetadataCopies, KeepData: pv.KeepData})
	}
	for _, vg := range s.VGs {
		p.VGs = append(p.VGs, VG{Name: vg.Name, PVs: append([]string{}, vg.PVNames...), KeepData: vg.KeepData})
	}
	for _, lv := range s.LVs {
		p.LVs = append(p.LVs, LV{Name: lv.Name, VG: lv.VGName, SizeMiB: lv.Size, Device: LVDevice(lv.VGName, lv.Name), KeepData: lv.KeepData})
	}
	for _, fs := range s.FSs {
		t := fs.FSType
		if t == "" {
			t = "xfs"
		}
		p.FSs = append(p.FSs, FS{Device: fs.Device, Mount: fs.Mount, Type: t, Options: fs.FSOptions, Label: planTruncLabel(fs.FSLabel), KeepData: fs.KeepData})
	}
	if pl.opts.PrepareConfigdrive && p.Configdrive == "" {
		pl.fail(ErrLayout, partitioningPath+".parteds", "no partition has configdrive: true, but a configdrive is to be written")
	}
	pl.planESPs()
	pl.planImages()
	p.KeepData = planAnyKeep(p)
	pl.checkGUIDs()
	return pl.finish()
}

// lookupParted finds the disk of partitioning.parteds[i] (named name) in
// the inventory, by path or by one of its links. Without an inventory the
// disk is taken as named.
func (pl *planner) lookupParted(i int, name string) (Device, bool) {
	dev := Device{Name: strings.TrimPrefix(name, "/dev/"), Path: name}
	if pl.inv == nil {
		return dev, true
	}
	for _, d := range pl.inv {
		if d.Path == name {
			return d, true
		}
		for _, l := range d.Links {
			if l == name {
				return d, true
			}
		}
	}
	pl.fail(ErrDiskNotFound, fmt.Sprintf("%s.parteds[%d].name", partitioningPath, i), "disk %s not found; inventory has %s", name, planDescribeInv(pl.inv, nil))
	return Device{}, false
}

func (pl *planner) checkFitScheme(path string, d *Disk) {
	var end int64
	for _, part := range d.Partitions {
		end = max(end, part.EndMiB)
	}
	if need := end + planBackupGPTMiB; need > d.SizeMiB {
		pl.fail(ErrDoesNotFit, path, "disk %s: layout needs %d MiB (last partition ends at %d MiB, plus %d MiB for the backup GPT), the disk has %d MiB", d.Device, need, end, planBackupGPTMiB, d.SizeMiB)
	}
}
