package inventory

import (
	"path/filepath"
	"sort"
	"strings"
)

// Disk kinds (Disk.Kind).
const (
	KindMultipath = "multipath" // a dm-multipath map over several paths: /dev/mapper/<name>
	KindMD        = "md"        // an md array (fake RAID, or a software array the layout goes onto)
)

// stacked describes the dm-* or md* entry sysname when it is a disk a
// layout may be laid onto: a dm-multipath map (dm/uuid "mpath-<wwid>")
// named as udev names it (mapper/<dm name>), or an md array that is not a
// container (IMSM/DDF containers are only their volumes' holders). ok is
// false for every other dm device (LVM LVs, crypt, partition maps).
func stacked(s sysfs, sysname string, d *Disk) (ok bool) {
	blk := s.path("block", sysname)
	switch {
	case strings.HasPrefix(sysname, "dm-"):
		uuid := s.attrTrim(blk, "dm/uuid")
		name := s.attrTrim(blk, "dm/name")
		wwid, isMpath := strings.CutPrefix(uuid, "mpath-")
		if !isMpath || name == "" {
			return false
		}
		d.Kind = KindMultipath
		d.Name = "mapper/" + name
		d.Path = filepath.Join(filepath.Dir(d.Path), "mapper", name)
		d.WWN = wwid
		d.ByID = sortedUnique(append(d.ByID, "/dev/disk/by-id/dm-name-"+name, "/dev/disk/by-id/dm-uuid-"+uuid))
	case strings.HasPrefix(sysname, "md"):
		level := s.attrTrim(blk, "md/level")
		if level == "" || level == "container" {
			return false
		}
		d.Kind = KindMD
		if uuid := s.attrTrim(blk, "md/uuid"); uuid != "" {
			d.WWN = uuid
		}
	default:
		return false
	}
	d.Slaves = listDir(filepath.Join(blk, "slaves"))
	sort.Strings(d.Slaves)
	return true
}

// multipathPaths maps each path device of a multipath disk to that disk's
// name: the paths are that disk, not disks of their own.
func multipathPaths(disks []Disk) map[string]string {
	out := map[string]string{}
	for _, d := range disks {
		if d.Kind != KindMultipath {
			continue
		}
		for _, p := range d.Slaves {
			out[p] = d.Name
		}
	}
	return out
}
