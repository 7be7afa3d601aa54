package partition

import (
	"fmt"
	"strings"

	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/provision"
)

const planMiB = 1 << 20

// DevicesFromInventory turns the inventory's disks into the planner's
// devices: size in whole MiB (rounded down), links = by-id then by-path,
// legacy links = the older udev by-id then by-path names.
// Read-only disks are left out (nothing can be written to them).
func DevicesFromInventory(inv *inventory.Inventory) []Device {
	if inv == nil {
		return nil
	}
	out := make([]Device, 0, len(inv.Disks))
	for _, d := range inv.Disks {
		if d.ReadOnly {
			continue
		}
		path := d.Path
		if path == "" && d.Name != "" {
			path = "/dev/" + d.Name
		}
		name := d.Name
		if name == "" {
			name = strings.TrimPrefix(path, "/dev/")
		}
		links := make([]string, 0, len(d.ByID)+len(d.ByPath))
		links = append(links, d.ByID...)
		links = append(links, d.ByPath...)
		var legacy []string
		if len(d.LegacyByID)+len(d.LegacyByPath) > 0 {
			legacy = append(append(legacy, d.LegacyByID...), d.LegacyByPath...)
		}
		out = append(out, Device{
			Name:              name,
			Path:              path,
			SizeMiB:           d.SizeBytes / planMiB,
			LogicalSectorSize: d.LogicalSectorSize,
			Links:             links,
			LegacyLinks:       legacy,
			Paths:             multipathPaths(d),
		})
	}
	return out
}

// matchDisk finds the device of one ks_spaces disk the way fuel-agent's
// Nailgun._disk_dev does (docs/fuel-agent.md §4), except that ids given and
// matching nothing are not silently replaced by the kernel name:
//
//  1. extra non-empty: a device matches when one of "/dev/"+extra[i] that
//     starts with /dev/disk/by-id is among its links (id is then ignored);
//  2. extra empty: a device matches when "/dev/"+id is among its links
//     (the by-path link);
//  3. when no device matches by its current links, 1 and 2 again with the
//     names older udev gave the devices (LegacyLinks): the document may
//     come from a Nailgun that inventoried the node with an old bootstrap;
//  4. when the disk gives no ids (no by-id extra, an id that is a kernel
//     name such as "vda"), the device named "/dev/"+name, as fuel-agent
//     did; when it gives ids and none matches, nothing: the disk the
//     document means is not this machine's sdX, whatever its kernel name
//     (fuel-agent took /dev/<name> here and wiped a stranger's disk);
//  5. several matched by links and exactly one by name: that one (NVMe
//     disks reporting the same WWN).
//
// It returns the indexes into inv of the candidates found (exactly one is a
// match, none or several is an error) and the ids it tried.
func matchDisk(s *provision.Space, inv []Device) (found []int, ids []string) {
	ids = diskIDs(s)
	var byLink, byLegacy, byName []int
	for i, d := range inv {
		if planLinkMatch(s, d.Links) {
			byLink = append(byLink, i)
		}
		if planLinkMatch(s, d.LegacyLinks) {
			byLegacy = append(byLegacy, i)
		}
		if "/dev/"+s.Name == d.Path {
			byName = append(byName, i)
		}
	}
	if len(byLink) == 0 {
		byLink = byLegacy
	}
	if len(byLink) > 1 && len(byName) == 1 {
		return byName, ids
	}
	if len(byLink) > 0 {
		return byLink, ids
	}
	if len(ids) > 0 {
		return nil, ids
	}
	return byName, ids
}

// diskIDs are the links a ks_spaces disk names itself by, absolute: its
// by-id extra entries (fuel-agent's rule 1); when extra holds none, its
// other /dev/disk/ entries (a by-path name: fuel-agent ignored them and
// took the kernel name, imprint matches them); with no extra, an id that
// is a link (by-path) rather than a kernel name.
func diskIDs(s *provision.Space) []string {
	var ids, other []string
	if len(s.Extra) > 0 {
		for _, e := range s.Extra {
			switch l := "/dev/" + e; {
			case strings.HasPrefix(l, "/dev/disk/by-id/"):
				ids = append(ids, l)
			case strings.HasPrefix(l, "/dev/disk/"):
				other = append(other, l)
			}
		}
		if len(ids) == 0 {
			return other
		}
		return ids
	}
	if strings.HasPrefix(s.ID, "disk/") {
		ids = append(ids, "/dev/"+s.ID)
	}
	return ids
}

func planLinkMatch(s *provision.Space, links []string) bool {
	has := func(l string) bool {
		for _, x := range links {
			if x == l {
				return true
			}
		}
		return false
	}
	for _, l := range diskIDs(s) {
		if has(l) {
			return true
		}
	}
	return false
}

// matchAll resolves every ks disk to a device. Without an inventory the
// disk is taken as declared. Problems are recorded on the planner; the
// declared disk stands in so that planning goes on and reports the rest.
func (pl *planner) matchAll(disks []ksDisk) []Device {
	out := make([]Device, len(disks))
	claimed := map[string]int{} // device path → ks_spaces index
	if pl.unmatched == nil {
		pl.unmatched = map[int]bool{}
	}
	for i, d := range disks {
		declared := Device{Name: d.space.Name, Path: "/dev/" + d.space.Name, SizeMiB: d.space.Size}
		out[i] = declared
		// Only disks the layout touches must exist.
		if !planHasRealVolume(d.space) {
			continue
		}
		if pl.inv == nil {
			if prev, ok := claimed[declared.Path]; ok {
				pl.fail(ErrDiskNotFound, spacePath(d.idx), "disk %q is also %s: one disk cannot be laid out twice", d.space.Name, spacePath(prev))
			}
			claimed[declared.Path] = d.idx
			continue
		}
		found, ids := matchDisk(d.space, pl.inv)
		if len(found) != 1 {
			pl.unmatched[d.idx] = true // no fit check against the declared size
		}
		switch len(found) {
		case 1:
			dev := pl.inv[found[0]]
			if prev, ok := claimed[dev.Path]; ok {
				pl.fail(ErrDiskNotFound, spacePath(d.idx), "disk %q matches %s, already matched by %s (%q)", d.space.Name, dev.Path, spacePath(prev), pl.doc.KsMeta.PmData.KsSpaces[prev].Name)
				continue
			}
			claimed[dev.Path] = d.idx
			if dev.Name == "" {
				dev.Name = strings.TrimPrefix(dev.Path, "/dev/")
			}
			out[i] = dev
		case 0:
			if len(ids) > 0 {
				where := ".extra"
				if len(d.space.Extra) == 0 {
					where = ".id"
				}
				pl.fail(ErrDiskNotFound, spacePath(d.idx)+where, "disk %q: none of its ids %s names a disk of this machine (its kernel name is not used when ids are given); inventory has %s", d.space.Name, planQuoteList(ids), planDescribeInv(pl.inv, nil))
				continue
			}
			pl.fail(ErrDiskNotFound, spacePath(d.idx), "disk %q not found: %s; inventory has %s", d.space.Name, planDescribeKey(d.space), planDescribeInv(pl.inv, nil))
		default:
			pl.fail(ErrDiskNotFound, spacePath(d.idx), "disk %q is ambiguous: %s matches %s", d.space.Name, planDescribeKey(d.space), planDescribeInv(pl.inv, found))
		}
	}
	return out
}

func planDescribeKey(s *provision.Space) string {
	var parts []string
	if len(s.Extra) > 0 {
		parts = append(parts, fmt.Sprintf("extra %s", planQuoteList(s.Extra)))
	} else if s.ID != "" {
		parts = append(parts, fmt.Sprintf("id %q", s.ID))
	}
	parts = append(parts, fmt.Sprintf("name %q", s.Name))
	return strings.Join(parts, ", ")
}

func planQuoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func planDescribeInv(inv []Device, only []int) string {
	if only == nil {
		only = make([]int, len(inv))
		for i := range inv {
			only[i] = i
		}
	}
	if len(only) == 0 {
		return "no disks"
	}
	var parts []string
	for _, i := range only {
		d := inv[i]
		s := d.Path
		if len(d.Links) > 0 || len(d.LegacyLinks) > 0 {
			names := append([]string(nil), d.Links...)
			if len(d.LegacyLinks) > 0 {
				names = append(names, "legacy: "+strings.Join(d.LegacyLinks, " "))
			}
			s += " (" + strings.Join(names, " ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// multipathPaths is the /dev paths of a multipath disk's path devices.
func multipathPaths(d inventory.Disk) []string {
	if d.Kind != inventory.KindMultipath {
		return nil
	}
	var out []string
	for _, s := range d.Slaves {
		out = append(out, "/dev/"+strings.ReplaceAll(s, "!", "/"))
	}
	return out
}
