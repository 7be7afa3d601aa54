package provision

import (
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Limits and vocabularies of the rules (fuel-agent.md §1-§2).
const (
	// MinLVMMetaSizeMiB is the smallest lvm_meta_size fuel-agent accepts.
	MinLVMMetaSizeMiB = 10
	// MaxRootSizeMiB is the largest root file system: 16 TiB in MiB.
	MaxRootSizeMiB = 16777216
	// ExtentMiB is the LVM physical extent size (vgcreate's default, which
	// fuel-agent keeps).
	ExtentMiB = 4
)

// FileSystems are the file_system values accepted on volumes.
var FileSystems = []string{"ext2", "ext3", "ext4", "xfs", "swap", "vfat", "none"}

// ImageContainers are the image_data container values accepted: fuel-agent's
// gzip and raw, and imprint's zstd and xz.
var ImageContainers = []string{"gzip", "raw", "zstd", "xz"}

// ImageFormats are the image_data format values: the file system inside the
// image.
var ImageFormats = []string{"ext2", "ext3", "ext4", "xfs"}

// ImageSchemes are the URL schemes an image may be fetched from.
var ImageSchemes = []string{"http", "https", "file"}

// MDLevels are the md levels fuel-agent's mdadm wrapper accepts.
var MDLevels = []string{"mirror", "stripe", "raid0", "raid1", "0", "1"}

// Validate applies every rule that can be known before touching a disk
// (fuel-agent.md §2) and returns nil or a *ValidationError holding every
// problem with its path.
//
// The rules, beyond the ks_spaces JSON schema Parse checks:
//   - hostname present and a valid host name; every interface has a valid
//     mac_address, ip_address and netmask are addresses when given;
//     kernel_options["netcfg/choose_interface"], when set, is the MAC of an
//     interface that has ip_address and netmask; kernel_options.udevrules
//     entries are MAC_NAME with valid MACs.
//   - ks_spaces (disks of size > 0, volumes of size > 0; zero means absent):
//     space and volume types known; at most one bootable disk; no disk name
//     twice; pv lvm_meta_size >= 10 and its vg declared; mount absolute,
//     "swap" or "none"; file_system known; a "/" volume at most 16 TiB;
//     partition, raid and pv volumes fit in the disk; a VG with LVs has a
//     PV; its LVs, rounded up to 4 MiB extents, fit in its PVs after
//     pvcreate's metadata (PVUsableMiB); LV names unique and valid; no
//     mount point twice (/boot on several disks is created once; raid
//     volumes sharing a mount form one md).
//   - ks_meta.image_data holds "/", each key is a mount point some volume
//     (or, with "partitioning", some fss entry) provides, uri is http,
//     https or file, container gzip, raw, zstd or xz, format ext2-4 or xfs.
//   - user_accounts: a valid, unique name each.
//   - ks_meta.phone_home_url (imprint's extension), when set: an absolute
//     http or https URL with a host.
//   - partitioning (nailgun_simple): parted names unique, label gpt or
//     msdos; partitions numbered >= 1 without repeats, begin < end, no
//     overlap, on their table's disk; md levels known; vgs use pvs, lvs use
//     vgs, sizes > 0; fs types known, no mount twice.
//
// On a parsed Document it leaves out what Parse already reported (and
// follow-ons of values Parse had to leave zero); use ParseAndValidate to
// get both in one list.
func (d *Document) Validate() error {
	f := d.check()
	if len(f.errs) == 0 {
		return nil
	}
	return &ValidationError{Problems: f.errs}
}

// Warnings returns what fuel-agent tolerates but looks wrong: accounting
// that does not add up, a type GUID that is not a GUID, a pre-computed
// scheme that uses devices it does not create. They never fail validation.
func (d *Document) Warnings() []FieldError {
	return d.check().warns
}

type findings struct {
	errs, warns problems
	// partial: Parse found ks_spaces broken (a value left zero), so the
	// rules that cross-reference entries would only report follow-ons.
	partial bool
}

func (f *findings) err(path, format string, args ...any)  { f.errs.add(path, format, args...) }
func (f *findings) warn(path, format string, args ...any) { f.warns.add(path, format, args...) }

func (d *Document) check() findings {
	var f findings
	var pos map[string]int64
	if d.src != nil {
		f.partial = d.src.partial
		f.warns = append(f.warns, d.src.warns...)
		pos = d.src.pos
	}
	d.checkTop(&f)
	mounts := d.checkSpaces(&f)
	if d.Partitioning != nil {
		mounts = d.checkPartitioning(&f, mounts)
	}
	d.checkImages(&f, mounts)
	d.checkAccounts(&f)
	if d.src != nil {
		kept := f.errs[:0]
		for _, p := range f.errs {
			if !underAny(p.Path, d.src.hidden) {
				kept = append(kept, p)
			}
		}
		f.errs = kept
	}
	f.errs = dedupe(f.errs)
	f.warns = dedupe(f.warns)
	sortProblems(f.errs, pos)
	sortProblems(f.warns, pos)
	return f
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func list(set []string) string {
	if len(set) == 1 {
		return set[0]
	}
	return strings.Join(set[:len(set)-1], ", ") + " or " + set[len(set)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// --- top level: host, interfaces, kernel options ---

const chooseInterface = "netcfg/choose_interface"

func (d *Document) checkTop(f *findings) {
	if strings.TrimSpace(d.Hostname) == "" {
		f.err("hostname", "required")
	} else if !validHostname(d.Hostname) {
		f.err("hostname", "%q is not a valid host name", d.Hostname)
	}
	for _, name := range sortedKeys(d.Interfaces) {
		ifc := d.Interfaces[name]
		p := field("interfaces", name)
		switch {
		case ifc.MACAddress == "":
			f.err(field(p, "mac_address"), "required")
		case !validMAC(ifc.MACAddress):
			f.err(field(p, "mac_address"), "invalid MAC address %q", ifc.MACAddress)
		}
		if ifc.IPAddress != "" && net.ParseIP(ifc.IPAddress) == nil {
			f.err(field(p, "ip_address"), "%q is not an IP address", ifc.IPAddress)
		}
		if ifc.Netmask != "" && !validNetmask(ifc.Netmask) {
			f.err(field(p, "netmask"), "%q is not a netmask", ifc.Netmask)
		}
	}
	ko := field("kernel_options", chooseInterface)
	if mac := d.KernelOptions.ChooseInterface; mac != "" {
		if !validMAC(mac) {
			f.err(ko, "invalid MAC address %q", mac)
		} else if name, ok := d.AdminInterface(); !ok {
			f.err(ko, "no interface has MAC address %q (the admin interface)", mac)
		} else {
			ifc := d.Interfaces[name]
			p := field("interfaces", name)
			if ifc.IPAddress == "" {
				f.err(field(p, "ip_address"), "required on the admin interface (MAC %s, %s)", mac, ko)
			}
			if ifc.Netmask == "" {
				f.err(field(p, "netmask"), "required on the admin interface (MAC %s, %s)", mac, ko)
			}
		}
	} else {
		f.warn(ko, "not set: no admin interface, the provisioned node's network cannot be configured")
	}
	if r := d.KernelOptions.UdevRules; strings.TrimSpace(r) != "" {
		for i, e := range strings.Split(r, ",") {
			e = strings.TrimSpace(e)
			mac, name, ok := strings.Cut(e, "_")
			switch {
			case !ok || name == "":
				f.err(field("kernel_options", "udevrules"), "entry %d %q: want MAC_NAME", i+1, e)
			case !validMAC(mac):
				f.err(field("kernel_options", "udevrules"), "entry %d %q: invalid MAC address %q", i+1, e, mac)
			}
		}
	}
	if u := d.KsMeta.PhoneHomeURL; u != "" {
		if err := checkPhoneHomeURL(u); err != "" {
			f.err(field(pathKsMeta, "phone_home_url"), "%q %s", u, err)
		}
	}
	d.checkBootMode(f)
	for _, ns := range strings.FieldsFunc(d.NameServers, func(r rune) bool { return r == ',' || r == ' ' }) {
		if net.ParseIP(ns) == nil {
			f.warn("name_servers", "%q is not an IP address", ns)
		}
	}
}

// AdminInterface returns the name of the interface whose MAC is
// kernel_options["netcfg/choose_interface"] (compared case-insensitively).
func (d *Document) AdminInterface() (string, bool) {
	mac := strings.ToLower(strings.TrimSpace(d.KernelOptions.ChooseInterface))
	if mac == "" {
		return "", false
	}
	for _, name := range sortedKeys(d.Interfaces) {
		if strings.ToLower(strings.TrimSpace(d.Interfaces[name].MACAddress)) == mac {
			return name, true
		}
	}
	return "", false
}

var macRE = regexp.MustCompile(`^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$`)

func validMAC(s string) bool {
	s = strings.TrimSpace(s)
	if !macRE.MatchString(s) {
		return false
	}
	return !strings.Contains(s, ":") || !strings.Contains(s, "-") // one separator
}

func validNetmask(s string) bool {
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		return n >= 0 && n <= 128
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return false
	}
	ones, bits := net.IPMask(ip).Size()
	return bits == 32 && ones >= 0
}

var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if len(h) > 253 || h == "" {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// --- ks_spaces ---

// mountSite is where a mount point is provided.
type mountSite struct {
	path string // field path of the volume
	disk bool   // a partition or raid volume on a disk
	raid bool   // a raid volume: others with the same mount join its md
	fs   string // the file system declared for it, "" if none
}

func (d *Document) checkSpaces(f *findings) map[string]mountSite {
	sp := d.KsMeta.PmData.KsSpaces
	mounts := map[string]mountSite{}

	vgIndex := map[string]int{}
	for i, s := range sp {
		if s.Type == SpaceVG && s.ID != "" {
			if j, ok := vgIndex[s.ID]; ok {
				f.err(field(index(pathKsSpaces, i), "id"), "volume group %q is already declared by ks_spaces[%d]", s.ID, j)
				continue
			}
			vgIndex[s.ID] = i
		}
	}

	type pvRef struct {
		size, meta int64
	}
	pvsOf := map[string][]pvRef{}
	diskNames := map[string]int{}
	bootable := -1
	for i, s := range sp {
		p := index(pathKsSpaces, i)
		switch s.Type {
		case SpaceDisk:
		case SpaceVG:
			continue
		default:
			f.err(field(p, "type"), "must be \"disk\" or \"vg\", got %q", s.Type)
			continue
		}
		for j, v := range s.Volumes {
			if !oneOf(v.Type, []string{VolPV, VolRaid, VolPartition, VolBoot, VolLVMMetaPool}) {
				f.err(field(index(field(p, "volumes"), j), "type"), "%s", unknownVolumeType(strconv.Quote(v.Type)))
			}
		}
		if s.Size <= 0 {
			continue // fuel-agent ignores disks of size <= 0
		}
		if s.Name != "" {
			if j, ok := diskNames[s.Name]; ok {
				f.err(field(p, "name"), "disk %q is already declared by ks_spaces[%d]", s.Name, j)
			} else {
				diskNames[s.Name] = i
			}
		}
		if s.Bootable {
			if bootable >= 0 {
				f.err(field(p, "bootable"), "only one disk may be bootable, ks_spaces[%d] is bootable too", bootable)
			} else {
				bootable = i
			}
		}
		var real, all int64
		for j, v := range s.Volumes {
			if v.Size <= 0 {
				continue // Nailgun's way of saying "absent"
			}
			vp := index(field(p, "volumes"), j)
			all += v.Size
			switch v.Type {
			case VolPV:
				real += v.Size
				if v.LVMMetaSize < MinLVMMetaSizeMiB {
					f.err(field(vp, "lvm_meta_size"), "must be >= %d, got %d", MinLVMMetaSizeMiB, v.LVMMetaSize)
				}
				switch _, ok := vgIndex[v.VG]; {
				case v.VG == "":
					f.err(field(vp, "vg"), "required")
				case !ok:
					if !f.partial {
						f.err(field(vp, "vg"), "no volume group %q is declared in ks_spaces", v.VG)
					}
				default:
					pvsOf[v.VG] = append(pvsOf[v.VG], pvRef{v.Size, v.LVMMetaSize})
				}
				checkRoot(f, vp, v)
			case VolPartition, VolRaid:
				real += v.Size
				checkFS(f, vp, v.Mount, v.FileSystem)
				checkRoot(f, vp, v)
				if v.PartitionGUID != "" && !validGUID(v.PartitionGUID) {
					f.warn(field(vp, "partition_guid"), "%q is not a GUID (sgdisk --typecode will refuse it)", v.PartitionGUID)
				}
				addMount(f, mounts, vp, v.Mount, mountSite{disk: true, raid: v.Type == VolRaid, fs: v.FileSystem})
			}
		}
		if real > s.Size {
			f.err(field(p, "size"), "the disk has %d MiB but its partition, raid and pv volumes need %d MiB", s.Size, real)
		} else if all > s.Size {
			f.warn(field(p, "size"), "the disk has %d MiB but its volumes, with Nailgun's boot and lvm_meta_pool reservations, add up to %d MiB", s.Size, all)
		}
	}

	for i, s := range sp {
		if s.Type != SpaceVG {
			continue
		}
		p := index(pathKsSpaces, i)
		if s.ID == "" {
			f.err(field(p, "id"), "required")
		} else if !validLVMName(s.ID) {
			f.err(field(p, "id"), "%q is not a valid volume group name", s.ID)
		}
		if s.ID != "" && vgIndex[s.ID] != i {
			continue // a second declaration, reported above
		}
		lvNames := map[string]int{}
		var need, asked int64
		for j, v := range s.Volumes {
			vp := index(field(p, "volumes"), j)
			if v.Type != VolLV {
				f.err(field(vp, "type"), "%s", notLV(strconv.Quote(v.Type)))
				continue
			}
			if v.Size <= 0 {
				continue
			}
			switch k, dup := lvNames[v.Name]; {
			case v.Name == "":
				f.err(field(vp, "name"), "required")
			case dup:
				f.err(field(vp, "name"), "logical volume %q is already declared by %s", v.Name, index(field(p, "volumes"), k))
			case !validLVMName(v.Name):
				f.err(field(vp, "name"), "%q is not a valid logical volume name", v.Name)
			default:
				lvNames[v.Name] = j
			}
			checkFS(f, vp, v.Mount, v.FileSystem)
			checkRoot(f, vp, v)
			addMount(f, mounts, vp, v.Mount, mountSite{fs: v.FileSystem})
			asked += v.Size
			need += (v.Size + ExtentMiB - 1) / ExtentMiB * ExtentMiB
		}
		if asked == 0 || s.ID == "" || f.partial {
			continue
		}
		pvs := pvsOf[s.ID]
		if len(pvs) == 0 {
			f.err(field(p, "id"), "volume group %q has logical volumes but no physical volume (a pv volume with size > 0 on a disk) references it", s.ID)
			continue
		}
		var have int64
		for _, pv := range pvs {
			have += PVUsableMiB(pv.size, pv.meta)
		}
		if need > have {
			f.err(field(p, "volumes"), "logical volumes need %d MiB (%d MiB asked, rounded up to %d MiB extents) but volume group %q has %d MiB after PV metadata", need, asked, ExtentMiB, s.ID, have)
		}
	}
	return mounts
}

// PVMetadataSizeMiB is what fuel-agent passes to pvcreate --metadatasize for
// a pv volume's lvm_meta_size (two copies are kept, plus 8 MiB of slack):
// 64 → 28.
func PVMetadataSizeMiB(lvmMetaSize int64) int64 {
	if lvmMetaSize < 8 {
		return 0
	}
	return (lvmMetaSize - 8) / 2
}

// PVUsableMiB is the space a PV of size MiB made by fuel-agent's pvcreate
// (--metadatacopies 2 --metadatasize PVMetadataSizeMiB) offers to LVs: the
// first metadata area ends at the next MiB boundary after the label, the
// second takes the same size at the end, and the rest is cut to whole 4 MiB
// extents. A 1000 MiB PV with lvm_meta_size 64 gives 940 MiB, as measured
// with real LVM (fuel-agent.md §3.2).
func PVUsableMiB(size, lvmMetaSize int64) int64 {
	ms := PVMetadataSizeMiB(lvmMetaSize)
	u := size - (ms + 1) - ms
	if u <= 0 {
		return 0
	}
	return u / ExtentMiB * ExtentMiB
}

func checkFS(f *findings, vp, mount, fs string) {
	if mount != "" && mount != "swap" && mount != "none" && !strings.HasPrefix(mount, "/") {
		f.err(field(vp, "mount"), "must be an absolute path, \"swap\" or \"none\", got %q", mount)
	}
	if fs != "" && !oneOf(fs, FileSystems) {
		f.err(field(vp, "file_system"), "unknown file system %q (want %s)", fs, list(FileSystems))
	}
}

func checkRoot(f *findings, vp string, v Volume) {
	if v.Mount == "/" && v.Size > MaxRootSizeMiB {
		f.err(field(vp, "size"), "the root file system must be at most %d MiB (16 TiB), got %d", MaxRootSizeMiB, v.Size)
	}
}

// addMount records a mount point. A /boot disk volume is created once, on
// one disk, however many disks carry one; raid volumes with the same mount
// form one md array. Anything else mounted twice is a duplicate.
func addMount(f *findings, mounts map[string]mountSite, vp, mount string, site mountSite) {
	if !strings.HasPrefix(mount, "/") {
		return
	}
	site.path = vp
	prev, ok := mounts[mount]
	switch {
	case !ok:
		mounts[mount] = site
	case mount == "/boot" && site.disk && prev.disk:
	case site.raid && prev.raid:
	default:
		f.err(field(vp, "mount"), "%q is already mounted by %s", mount, prev.path)
	}
}

var guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

func validGUID(s string) bool { return guidRE.MatchString(s) }

var lvmNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$`)

func validLVMName(s string) bool {
	return len(s) <= 127 && lvmNameRE.MatchString(s) && s != "." && s != ".." && !strings.HasPrefix(s, "-")
}

// --- images ---

func (d *Document) checkImages(f *findings, mounts map[string]mountSite) {
	p := field(pathKsMeta, "image_data")
	if len(d.KsMeta.ImageData) == 0 {
		f.err(p, "required, with an image for \"/\"")
		return
	}
	if _, ok := d.KsMeta.ImageData["/"]; !ok {
		f.err(p, "must contain an image for \"/\"")
	}
	for _, mnt := range sortedKeys(d.KsMeta.ImageData) {
		img := d.KsMeta.ImageData[mnt]
		ip := field(p, mnt)
		if !strings.HasPrefix(mnt, "/") {
			f.err(ip, "the key must be the absolute mount point the image is written to")
		} else if site, ok := mounts[mnt]; !ok && !f.partial {
			f.err(ip, "no volume is mounted at %q to write this image to", mnt)
		} else if ok && site.fs != "" && img.Format != "" && site.fs != img.Format {
			f.warn(field(ip, "format"), "the image holds %s but %s declares %s; the image's file system is what the node gets", img.Format, site.path, site.fs)
		}
		switch u, err := url.Parse(img.URI); {
		case img.URI == "":
			f.err(field(ip, "uri"), "required")
		case err != nil:
			f.err(field(ip, "uri"), "invalid URL %q: %v", img.URI, err)
		case !oneOf(strings.ToLower(u.Scheme), ImageSchemes):
			f.err(field(ip, "uri"), "scheme must be %s, got %q", list(ImageSchemes), u.Scheme)
		case strings.EqualFold(u.Scheme, "file") && u.Path == "":
			f.err(field(ip, "uri"), "file URL %q has no path", img.URI)
		case !strings.EqualFold(u.Scheme, "file") && u.Host == "":
			f.err(field(ip, "uri"), "URL %q has no host", img.URI)
		}
		switch {
		case img.Container == "":
			f.err(field(ip, "container"), "required (%s)", list(ImageContainers))
		case !oneOf(img.Container, ImageContainers):
			f.err(field(ip, "container"), "must be %s, got %q", list(ImageContainers), img.Container)
		}
		switch {
		case img.Format == "":
			f.err(field(ip, "format"), "required (%s)", list(ImageFormats))
		case !oneOf(img.Format, ImageFormats):
			f.err(field(ip, "format"), "must be %s, got %q", list(ImageFormats), img.Format)
		}
	}
}

// --- accounts ---

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)

func (d *Document) checkAccounts(f *findings) {
	seen := map[string]int{}
	for i, u := range d.KsMeta.UserAccounts {
		p := field(index(field(pathKsMeta, "user_accounts"), i), "name")
		switch j, dup := seen[u.Name]; {
		case u.Name == "":
			f.err(p, "required")
		case len(u.Name) > 32 || !userRE.MatchString(u.Name):
			f.err(p, "%q is not a valid user name", u.Name)
		case dup:
			f.err(p, "user %q is already declared by user_accounts[%d]", u.Name, j)
		default:
			seen[u.Name] = i
		}
	}
}

// --- the nailgun_simple pre-computed scheme ---

func (d *Document) checkPartitioning(f *findings, mounts map[string]mountSite) map[string]mountSite {
	ps := d.Partitioning
	const pp = "partitioning"
	created := map[string]string{} // device → what creates it
	disks := map[string]int{}
	for i, pd := range ps.Parteds {
		p := index(field(pp, "parteds"), i)
		switch j, dup := disks[pd.Name]; {
		case pd.Name == "":
			f.err(field(p, "name"), "required")
		case dup:
			f.err(field(p, "name"), "disk %q already has a partition table in parteds[%d]", pd.Name, j)
		default:
			disks[pd.Name] = i
			created[pd.Name] = p
		}
		if pd.Label != "" && pd.Label != "gpt" && pd.Label != "msdos" {
			f.err(field(p, "label"), "must be gpt or msdos, got %q", pd.Label)
		}
		counts := map[int]int{}
		type span struct {
			begin, end int64
			j          int
		}
		var spans []span
		for j, pt := range pd.Partitions {
			tp := index(field(p, "partitions"), j)
			if pt.Count < 1 {
				f.err(field(tp, "count"), "must be >= 1, got %d", pt.Count)
			} else if k, dup := counts[pt.Count]; dup {
				f.err(field(tp, "count"), "partition number %d is already used by partitions[%d]", pt.Count, k)
			} else {
				counts[pt.Count] = j
			}
			if pt.Begin < 0 {
				f.err(field(tp, "begin"), "must be >= 0, got %d", pt.Begin)
			}
			if pt.End <= pt.Begin {
				f.err(field(tp, "end"), "must be greater than begin (%d), got %d", pt.Begin, pt.End)
			} else if pt.PartitionType != "extended" {
				spans = append(spans, span{pt.Begin, pt.End, j})
			}
			if pt.Device != "" && pd.Name != "" && pt.Device != pd.Name {
				f.err(field(tp, "device"), "%q is not this table's disk %q", pt.Device, pd.Name)
			}
			if pt.Name == "" {
				f.err(field(tp, "name"), "required")
			} else if prev, dup := created[pt.Name]; dup {
				f.err(field(tp, "name"), "%q is already created by %s", pt.Name, prev)
			} else {
				created[pt.Name] = tp
			}
			if pt.GUID != nil && *pt.GUID != "" && !validGUID(*pt.GUID) {
				f.warn(field(tp, "guid"), "%q is not a GUID (sgdisk --typecode will refuse it)", *pt.GUID)
			}
		}
		sort.SliceStable(spans, func(a, b int) bool { return spans[a].begin < spans[b].begin })
		for k := 1; k < len(spans); k++ {
			if spans[k].begin < spans[k-1].end {
				f.err(field(index(field(p, "partitions"), spans[k].j), "begin"), "%d overlaps partitions[%d], which ends at %d", spans[k].begin, spans[k-1].j, spans[k-1].end)
			}
		}
	}
	uses := func(path, dev string) {
		if _, ok := created[dev]; !ok {
			f.warn(path, "%q is not created by this scheme; it must already exist", dev)
		}
	}
	for i, md := range ps.MDs {
		p := index(field(pp, "mds"), i)
		if md.Name == "" {
			f.err(field(p, "name"), "required")
		} else {
			created[md.Name] = p
		}
		if md.Level != "" && !oneOf(md.Level, MDLevels) {
			f.err(field(p, "level"), "must be %s, got %q", list(MDLevels), md.Level)
		}
		if len(md.Devices) == 0 {
			f.err(field(p, "devices"), "must list at least one device")
		}
		for j, dev := range md.Devices {
			uses(index(field(p, "devices"), j), dev)
		}
		for j, dev := range md.Spares {
			uses(index(field(p, "spares"), j), dev)
		}
	}
	pvs := map[string]bool{}
	for i, pv := range ps.PVs {
		p := index(field(pp, "pvs"), i)
		if pv.Name == "" {
			f.err(field(p, "name"), "required")
			continue
		}
		pvs[pv.Name] = true
		uses(field(p, "name"), pv.Name)
		if pv.MetadataSize < 0 {
			f.err(field(p, "metadatasize"), "must be >= 0, got %d", pv.MetadataSize)
		}
		if pv.MetadataCopies < 0 || pv.MetadataCopies > 2 {
			f.err(field(p, "metadatacopies"), "must be 0, 1 or 2, got %d", pv.MetadataCopies)
		}
	}
	vgs := map[string]bool{}
	for i, vg := range ps.VGs {
		p := index(field(pp, "vgs"), i)
		switch {
		case vg.Name == "":
			f.err(field(p, "name"), "required")
		case vgs[vg.Name]:
			f.err(field(p, "name"), "volume group %q is declared twice", vg.Name)
		case !validLVMName(vg.Name):
			f.err(field(p, "name"), "%q is not a valid volume group name", vg.Name)
		}
		vgs[vg.Name] = true
		if len(vg.PVNames) == 0 {
			f.err(field(p, "pvnames"), "must list at least one physical volume")
		}
		for j, pv := range vg.PVNames {
			if !pvs[pv] {
				f.err(index(field(p, "pvnames"), j), "%q is not in partitioning.pvs", pv)
			}
		}
	}
	for i, lv := range ps.LVs {
		p := index(field(pp, "lvs"), i)
		if lv.Name == "" {
			f.err(field(p, "name"), "required")
		} else if !validLVMName(lv.Name) {
			f.err(field(p, "name"), "%q is not a valid logical volume name", lv.Name)
		}
		if !vgs[lv.VGName] {
			f.err(field(p, "vgname"), "%q is not in partitioning.vgs", lv.VGName)
		}
		if lv.Size <= 0 {
			f.err(field(p, "size"), "must be > 0, got %d", lv.Size)
		}
		if lv.Name != "" && lv.VGName != "" {
			created[LVDevicePath(lv.VGName, lv.Name)] = p
			created["/dev/"+lv.VGName+"/"+lv.Name] = p
		}
	}
	fsMounts := map[string]mountSite{}
	for i, fs := range ps.FSs {
		p := index(field(pp, "fss"), i)
		if fs.Device == "" {
			f.err(field(p, "device"), "required")
		} else {
			uses(field(p, "device"), fs.Device)
		}
		checkFS(f, p, fs.Mount, "")
		if fs.FSType != "" && !oneOf(fs.FSType, FileSystems) {
			f.err(field(p, "fs_type"), "unknown file system %q (want %s)", fs.FSType, list(FileSystems))
		}
		if strings.HasPrefix(fs.Mount, "/") {
			if prev, dup := fsMounts[fs.Mount]; dup {
				f.err(field(p, "mount"), "%q is already mounted by %s", fs.Mount, prev.path)
			} else {
				fsMounts[fs.Mount] = mountSite{path: p, fs: fs.FSType}
			}
		}
	}
	// The nailgun_simple driver takes its file systems from here, not from
	// ks_spaces.
	return fsMounts
}

// LVDevicePath is the device-mapper path of an LV: /dev/mapper/VG-LV with
// the dashes in both names doubled.
func LVDevicePath(vg, lv string) string {
	return "/dev/mapper/" + strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}

// checkPhoneHomeURL returns what is wrong with a phone_home_url, or "".
func checkPhoneHomeURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL"
	case u.Host == "":
		return "has no host"
	}
	return ""
}
