package provision

import (
	"net"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Limits and vocabularies of the rules (docs/fuel-agent.md §2-§5).
const (
	// MinLVMMetaSizeMiB is the smallest lvm_meta_size fuel-agent accepts.
	MinLVMMetaSizeMiB = 10
	// MaxRootSizeMiB is the largest root file system: 16 TiB in MiB.
	MaxRootSizeMiB = 16777216
	// ExtentMiB is the LVM physical extent size (vgcreate's default, which
	// fuel-agent keeps).
	ExtentMiB = 4
	// MaxSizeMiB bounds every size and boundary a document may give (1 EiB
	// in MiB), so that no sum of them can overflow int64.
	MaxSizeMiB = int64(1) << 40
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
// (docs/fuel-agent.md §5) and returns nil or a *ValidationError holding every
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
//   - partitioning (nailgun_simple): parted names unique device paths,
//     label gpt or msdos; partitions numbered >= 1 without repeats, named
//     as partition N of their table's disk, begin < end, no overlap; md
//     names md devices, levels known; every pv, md member and fs device a
//     partition of a listed parted or an md/LV the scheme creates; vgs use
//     pvs (each in one vg), lvs use vgs, sizes > 0; fs types known, no
//     mount twice, fs_options within the mkfs allowlist.
//
// Beyond fuel-agent (issue 15): the grammars of grammar.go for every value
// rendered into a file or passed to a command (mount points, labels, VG/LV,
// user, host and interface names, kernel_params), the mkfs options of
// mkfsopts.go, the ks_meta values the configdrive renders (ksmeta.go:
// timezone, master_ip, gw, name servers, ...), and in a partitioning scheme
// no device that is not a partition of a listed parted or an md/LV the
// scheme creates.
//
// On a parsed Document it leaves out what Parse already reported and the
// follow-ons of values Parse had to leave zero, and nothing else: the
// other fields of a disk whose size was not an integer are still checked.
// Use ParseAndValidate to get both in one list.
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
	// unknown: the paths whose values Parse could not take (a type error:
	// the value was left zero). Rules on the rest still run; a rule that
	// would need an unknown value is skipped, so a type error hides
	// nothing but its own follow-ons.
	unknown map[string]bool
	// badMounts: absolute mounts refused, cleaned: an image finding no
	// volume at one of them (or at the start of one) is a follow-on.
	badMounts []string
	// mountsUnknown: some volume's mount (or the volume) is unknown, so an
	// image finding no volume at its mount point may be a follow-on.
	mountsUnknown bool
}

// followsBadMount: no volume at mnt because a mount like it was refused.
func (f *findings) followsBadMount(mnt string) bool {
	for _, b := range f.badMounts {
		if b == mnt {
			return true
		}
		// "/boot\nUUID=...": the mount meant, then something that is no
		// part of a path.
		if mnt != "/" && strings.HasPrefix(b, mnt) {
			if c := b[len(mnt)]; c != '/' && CheckMountPoint("/"+string(c)) != nil {
				return true
			}
		}
	}
	return false
}

func (f *findings) err(path, format string, args ...any) { f.errs.add(path, format, args...) }

// unk: Parse could not take the value at path (or its parent object).
func (f *findings) unk(path string) bool                  { return f.unknown != nil && underAny(path, f.unknown) }
func (f *findings) warn(path, format string, args ...any) { f.warns.add(path, format, args...) }

func (d *Document) check() findings {
	var f findings
	var pos map[string]int64
	if d.src != nil {
		f.unknown = d.src.hidden
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
	d.checkTemplates(&f)
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
	} else if err := CheckHostname(d.Hostname); err != nil {
		f.err("hostname", "%v", err)
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
	for _, err := range CheckUdevRules(d.KernelOptions.UdevRules) {
		f.err(field("kernel_options", "udevrules"), "%v", err)
	}
	if err := CheckKernelParams(d.KsMeta.PmData.KernelParams); err != nil {
		f.err(field(pathPmData, "kernel_params"), "%v", err)
	}
	if u := d.KsMeta.PhoneHomeURL; u != "" {
		if err := checkPhoneHomeURL(u); err != "" {
			f.err(field(pathKsMeta, "phone_home_url"), "%q %s", u, err)
		}
	}
	d.checkKsMeta(f)
	d.checkBootMode(f)
	d.checkOSNetwork(f)
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

	// What a type error left unknown, for the cross-reference rules.
	broken := d.src != nil && d.src.spacesBroken
	vgIDsUnknown := broken // some entry may be a VG whose name is unknown
	pvVGUnknown := broken  // some PV may belong to any VG
	if broken {
		f.mountsUnknown = true
	}
	capUnknown := map[string]bool{} // VG → a PV or LV size of it is unknown
	for i, s := range sp {
		p := index(pathKsSpaces, i)
		if f.unk(p) || f.unk(field(p, "type")) || s.Type == SpaceVG && f.unk(field(p, "id")) {
			vgIDsUnknown = true
		}
		for j, v := range s.Volumes {
			vp := index(field(p, "volumes"), j)
			if f.unk(vp) || f.unk(field(vp, "type")) || f.unk(field(vp, "vg")) {
				pvVGUnknown = true
			}
			if v.Type == VolPV && (f.unk(field(vp, "size")) || f.unk(field(vp, "lvm_meta_size"))) {
				capUnknown[v.VG] = true
			}
			if s.Type == SpaceVG && f.unk(field(vp, "size")) {
				capUnknown[s.ID] = true
			}
			if f.unk(vp) || f.unk(field(vp, "mount")) || f.unk(field(vp, "type")) {
				f.mountsUnknown = true
			}
		}
		if f.unk(p) || f.unk(field(p, "type")) || f.unk(field(p, "volumes")) {
			f.mountsUnknown = true
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
			vp := index(field(p, "volumes"), j)
			if !oneOf(v.Type, []string{VolPV, VolRaid, VolPartition, VolBoot, VolLVMMetaPool}) {
				f.err(field(vp, "type"), "%s", unknownVolumeType(strconv.Quote(v.Type)))
			}
			if v.Size > MaxSizeMiB {
				f.err(field(vp, "size"), "%d MiB is beyond any disk (at most %d)", v.Size, MaxSizeMiB)
			}
		}
		if s.Size > MaxSizeMiB {
			f.err(field(p, "size"), "%d MiB is beyond any disk (at most %d)", s.Size, MaxSizeMiB)
		}
		sizeUnknown := f.unk(field(p, "size"))
		if s.Size <= 0 && !sizeUnknown {
			continue // fuel-agent ignores disks of size <= 0
		}
		if !validKernelName(s.Name) {
			f.err(field(p, "name"), "must be a kernel device name relative to /dev (sda, nvme0n1, mapper/mpatha), got %q", s.Name)
		} else {
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
		sumsUnknown := sizeUnknown
		for j, v := range s.Volumes {
			vp := index(field(p, "volumes"), j)
			if f.unk(field(vp, "size")) {
				sumsUnknown = true // checked as present, not added up
			} else if v.Size <= 0 {
				continue // Nailgun's way of saying "absent"
			}
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
					if !vgIDsUnknown {
						f.err(field(vp, "vg"), "no volume group %q is declared in ks_spaces", v.VG)
					}
				default:
					pvsOf[v.VG] = append(pvsOf[v.VG], pvRef{v.Size, v.LVMMetaSize})
				}
				checkRoot(f, vp, v)
			case VolPartition, VolRaid:
				real += v.Size
				checkFS(f, vp, v.Mount, v.FileSystem)
				checkLabel(f, field(vp, "disk_label"), v.DiskLabel)
				checkRoot(f, vp, v)
				if v.PartitionGUID != "" && !validGUID(v.PartitionGUID) {
					f.warn(field(vp, "partition_guid"), "%q is not a GUID (sgdisk --typecode will refuse it)", v.PartitionGUID)
				}
				addMount(f, mounts, vp, v.Mount, mountSite{disk: true, raid: v.Type == VolRaid, fs: v.FileSystem})
			}
		}
		if sumsUnknown {
			continue
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
		if err := CheckVGName(s.ID); err != nil {
			f.err(field(p, "id"), "%v", err)
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
			if v.Size > MaxSizeMiB {
				f.err(field(vp, "size"), "%d MiB is beyond any disk (at most %d)", v.Size, MaxSizeMiB)
			}
			if v.Size <= 0 && !f.unk(field(vp, "size")) {
				continue
			}
			switch k, dup := lvNames[v.Name]; {
			case v.Name == "":
				f.err(field(vp, "name"), "required")
			case dup:
				f.err(field(vp, "name"), "logical volume %q is already declared by %s", v.Name, index(field(p, "volumes"), k))
			default:
				if err := CheckLVName(v.Name); err != nil {
					f.err(field(vp, "name"), "%v", err)
				}
				lvNames[v.Name] = j
			}
			checkFS(f, vp, v.Mount, v.FileSystem)
			checkLabel(f, field(vp, "disk_label"), v.DiskLabel)
			checkRoot(f, vp, v)
			addMount(f, mounts, vp, v.Mount, mountSite{fs: v.FileSystem})
			asked += v.Size
			need += (v.Size + ExtentMiB - 1) / ExtentMiB * ExtentMiB
		}
		if asked == 0 && !capUnknown[s.ID] || s.ID == "" || pvVGUnknown {
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
		if need > have && !capUnknown[s.ID] {
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
// with real LVM (docs/fuel-agent.md §6).
func PVUsableMiB(size, lvmMetaSize int64) int64 {
	ms := PVMetadataSizeMiB(lvmMetaSize)
	u := size - (ms + 1) - ms
	if u <= 0 {
		return 0
	}
	return u / ExtentMiB * ExtentMiB
}

func checkFS(f *findings, vp, mount, fs string) {
	if err := checkMount(mount); err != nil {
		f.err(field(vp, "mount"), "%v", err)
		// "boot" or "/boot/" meant /boot: an image for it would only
		// repeat this problem.
		f.badMounts = append(f.badMounts, path.Clean("/"+mount))
	}
	if fs != "" && !oneOf(fs, FileSystems) {
		f.err(field(vp, "file_system"), "unknown file system %q (want %s)", fs, list(FileSystems))
	}
}

func checkLabel(f *findings, path, label string) {
	if err := CheckFSLabel(label); err != nil {
		f.err(path, "%v", err)
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
	if !strings.HasPrefix(mount, "/") || CheckMountPoint(mount) != nil {
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

// IsGUID tells whether s is a GUID (8-4-4-4-12 hex digits), as a GPT type
// GUID must be.
func IsGUID(s string) bool { return validGUID(s) }

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
		} else if err := CheckMountPoint(mnt); err != nil {
			f.err(ip, "the key %q %v", mnt, err)
		} else if site, ok := mounts[mnt]; !ok && !f.mountsUnknown && !f.followsBadMount(mnt) {
			f.err(ip, "no volume is mounted at %q to write this image to", mnt)
		} else if ok && site.fs != "" && img.Format != "" && site.fs != img.Format {
			f.warn(field(ip, "format"), "the image holds %s but %s declares %s; the image's file system is what the node gets", img.Format, site.path, site.fs)
		}
		if img.URI == "" {
			f.err(field(ip, "uri"), "required")
		} else {
			checkImageURL(f, field(ip, "uri"), img.URI)
		}
		for i, m := range img.Mirrors {
			checkImageURL(f, index(field(ip, "mirrors"), i), m)
		}
		checkImageDigests(f, ip, img)
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

// checkImageURL checks one image URL (image_data uri or a mirror) at path p.
func checkImageURL(f *findings, p, raw string) {
	switch u, err := url.Parse(raw); {
	case raw == "":
		f.err(p, "empty URL")
	case err != nil:
		f.err(p, "invalid URL %q: %v", raw, err)
	case !oneOf(strings.ToLower(u.Scheme), ImageSchemes):
		f.err(p, "scheme must be %s, got %q", list(ImageSchemes), u.Scheme)
	case strings.EqualFold(u.Scheme, "file") && u.Path == "":
		f.err(p, "file URL %q has no path", raw)
	case !strings.EqualFold(u.Scheme, "file") && u.Host == "":
		f.err(p, "URL %q has no host", raw)
	}
}

// --- accounts ---

func (d *Document) checkAccounts(f *findings) {
	seen := map[string]int{}
	for i, u := range d.KsMeta.UserAccounts {
		p := field(index(field(pathKsMeta, "user_accounts"), i), "name")
		switch j, dup := seen[u.Name]; {
		case CheckUserName(u.Name) != nil:
			f.err(p, "%v", CheckUserName(u.Name))
		case dup:
			f.err(p, "user %q is already declared by user_accounts[%d]", u.Name, j)
		default:
			seen[u.Name] = i
		}
		up := index(field(pathKsMeta, "user_accounts"), i)
		for _, kv := range [][2]string{{"homedir", u.Homedir}, {"shell", u.Shell}} {
			if v := strings.TrimSpace(kv[1]); v != "" {
				if err := CheckMountPoint(v); err != nil {
					f.err(field(up, kv[0]), "%q %v", v, err)
				}
			}
		}
		for j, x := range u.Sudo {
			if strings.ContainsAny(x, "\n\r") {
				f.err(index(field(up, "sudo"), j), "contains a line break")
			}
		}
		for j, x := range u.SSHKeys {
			if strings.ContainsAny(x, "\n\r") {
				f.err(index(field(up, "ssh_keys"), j), "contains a line break")
			}
		}
	}
}

// --- the nailgun_simple pre-computed scheme ---

func (d *Document) checkPartitioning(f *findings, mounts map[string]mountSite) map[string]mountSite {
	ps := d.Partitioning
	const pp = "partitioning"
	// What the scheme itself creates, device → the field that creates it:
	// partitions of the listed parteds, its md arrays and its LVs. Every
	// device a pv, md member or file system names must be one of these;
	// anything else is a disk (or a partition of a disk) the document does
	// not list, which nothing may write.
	created := map[string]string{}
	disks := map[string]int{}
	for i, pd := range ps.Parteds {
		p := index(field(pp, "parteds"), i)
		switch j, dup := disks[pd.Name]; {
		case pd.Name == "":
			f.err(field(p, "name"), "required")
		case !validDevicePath(pd.Name):
			f.err(field(p, "name"), "must be a device path under /dev (/dev/sda, /dev/nvme0n1), got %q", pd.Name)
		case dup:
			f.err(field(p, "name"), "disk %q already has a partition table in parteds[%d]", pd.Name, j)
		default:
			disks[pd.Name] = i
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
			countOK := false
			if pt.Count < 1 {
				f.err(field(tp, "count"), "must be >= 1, got %d", pt.Count)
			} else if k, dup := counts[pt.Count]; dup {
				f.err(field(tp, "count"), "partition number %d is already used by partitions[%d]", pt.Count, k)
			} else {
				counts[pt.Count] = j
				countOK = true
			}
			if pt.Begin < 0 {
				f.err(field(tp, "begin"), "must be >= 0, got %d", pt.Begin)
			}
			switch {
			case pt.End > MaxSizeMiB:
				f.err(field(tp, "end"), "%d MiB is beyond any disk (at most %d)", pt.End, MaxSizeMiB)
			case pt.End <= pt.Begin:
				f.err(field(tp, "end"), "must be greater than begin (%d), got %d", pt.Begin, pt.End)
			case pt.PartitionType != "extended":
				spans = append(spans, span{pt.Begin, pt.End, j})
			}
			if pt.Device != "" && pd.Name != "" && pt.Device != pd.Name {
				f.err(field(tp, "device"), "%q is not this table's disk %q", pt.Device, pd.Name)
			}
			switch prev, dup := created[pt.Name]; {
			case pt.Name == "":
				f.err(field(tp, "name"), "required")
			case !validDevicePath(pd.Name):
				// the parted's name is reported
			case countOK && !IsPartitionOf(pd.Name, pt.Name, pt.Count):
				f.err(field(tp, "name"), "%q is not partition %d of this table's disk %q (want %s)", pt.Name, pt.Count, pd.Name, PartitionDevice(pd.Name, pt.Count))
			case dup:
				f.err(field(tp, "name"), "%q is already created by %s", pt.Name, prev)
			default:
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
	for i, pd := range ps.Parteds {
		if prev, ok := created[pd.Name]; ok {
			f.err(field(index(field(pp, "parteds"), i), "name"), "%q is a partition %s creates, not a disk", pd.Name, prev)
		}
	}
	for i, md := range ps.MDs {
		p := index(field(pp, "mds"), i)
		switch prev, dup := created[md.Name]; {
		case md.Name == "":
			f.err(field(p, "name"), "required")
		case !validMDName(md.Name):
			f.err(field(p, "name"), "must be an md device (/dev/md0, /dev/md/NAME), got %q", md.Name)
		case dup:
			f.err(field(p, "name"), "%q is already created by %s", md.Name, prev)
		default:
			created[md.Name] = p
		}
	}
	for i, lv := range ps.LVs {
		if lv.Name != "" && lv.VGName != "" && validLVMName(lv.Name) && validLVMName(lv.VGName) {
			p := index(field(pp, "lvs"), i)
			created[LVDevicePath(lv.VGName, lv.Name)] = p
			created["/dev/"+lv.VGName+"/"+lv.Name] = p
		}
	}
	uses := func(path, dev string) {
		if _, ok := created[dev]; ok {
			return
		}
		if _, ok := disks[dev]; ok {
			f.err(path, "%q is a whole disk; name one of its partitions in partitioning.parteds", dev)
			return
		}
		f.err(path, "%q is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates", dev)
	}
	for i, md := range ps.MDs {
		p := index(field(pp, "mds"), i)
		if md.Level != "" && !oneOf(md.Level, MDLevels) {
			f.err(field(p, "level"), "must be %s, got %q", list(MDLevels), md.Level)
		}
		if len(md.Devices) == 0 {
			f.err(field(p, "devices"), "must list at least one device")
		}
		for j, dev := range md.Devices {
			if dev == md.Name {
				f.err(index(field(p, "devices"), j), "an md array cannot be its own member")
				continue
			}
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
	pvVG := map[string]string{}
	for i, vg := range ps.VGs {
		p := index(field(pp, "vgs"), i)
		switch {
		case vg.Name == "":
			f.err(field(p, "name"), "required")
		case vgs[vg.Name]:
			f.err(field(p, "name"), "volume group %q is declared twice", vg.Name)
		case CheckVGName(vg.Name) != nil:
			f.err(field(p, "name"), "%v", CheckVGName(vg.Name))
		}
		vgs[vg.Name] = true
		if len(vg.PVNames) == 0 {
			f.err(field(p, "pvnames"), "must list at least one physical volume")
		}
		for j, pv := range vg.PVNames {
			switch prev, dup := pvVG[pv]; {
			case !pvs[pv]:
				f.err(index(field(p, "pvnames"), j), "%q is not in partitioning.pvs", pv)
			case dup && prev != vg.Name:
				f.err(index(field(p, "pvnames"), j), "%q is already in volume group %q", pv, prev)
			default:
				pvVG[pv] = vg.Name
			}
		}
	}
	for i, lv := range ps.LVs {
		p := index(field(pp, "lvs"), i)
		if err := CheckLVName(lv.Name); err != nil {
			f.err(field(p, "name"), "%v", err)
		}
		if !vgs[lv.VGName] {
			f.err(field(p, "vgname"), "%q is not in partitioning.vgs", lv.VGName)
		}
		checkSize(f, field(p, "size"), lv.Size)
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
		checkLabel(f, field(p, "fs_label"), fs.FSLabel)
		if fs.FSType != "" && !oneOf(fs.FSType, FileSystems) {
			f.err(field(p, "fs_type"), "unknown file system %q (want %s)", fs.FSType, list(FileSystems))
		} else if err := CheckMkfsOptions(fs.FSType, fs.FSOptions); err != nil {
			f.err(field(p, "fs_options"), "%v", err)
		}
		if strings.HasPrefix(fs.Mount, "/") && CheckMountPoint(fs.Mount) == nil {
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

// checkSize: a size that must be given (> 0) and within MaxSizeMiB.
func checkSize(f *findings, path string, size int64) {
	switch {
	case size <= 0:
		f.err(path, "must be > 0, got %d", size)
	case size > MaxSizeMiB:
		f.err(path, "%d MiB is beyond any disk (at most %d)", size, MaxSizeMiB)
	}
}

// validKernelName: a disk's kernel name relative to /dev, as Nailgun gives
// it (sda, nvme0n1, cciss/c0d0, mapper/mpatha, md123).
func validKernelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "/") || path.Clean(s) != s || strings.HasPrefix(s, "..") {
		return false
	}
	return validDevicePath("/dev/" + s)
}

// validDevicePath: an absolute, clean path under /dev naming a device
// (/dev/sda, /dev/nvme0n1, /dev/mapper/mpatha, /dev/disk/by-id/...).
func validDevicePath(s string) bool {
	rest, ok := strings.CutPrefix(s, "/dev/")
	if !ok || rest == "" || path.Clean(s) != s {
		return false
	}
	for _, r := range rest {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("/_.:+@-", r):
		default:
			return false
		}
	}
	return true
}

var mdNameRE = regexp.MustCompile(`^/dev/(md[0-9]+|md/[A-Za-z0-9_.:-]+)$`)

func validMDName(s string) bool { return mdNameRE.MatchString(s) && path.Clean(s) == s }

// PartitionDevice names partition n of disk the way the kernel and udev do
// (fuel-agent's Parted.next_name): "p" before the number for cciss, nvme,
// loop and md devices, "-part" for device-mapper (multipath) devices,
// nothing otherwise.
func PartitionDevice(disk string, n int) string {
	sep := ""
	switch {
	case strings.Contains(disk, "cciss"), strings.Contains(disk, "nvme"),
		strings.Contains(disk, "loop"), strings.Contains(disk, "md"):
		sep = "p"
	case strings.Contains(disk, "/dev/mapper"):
		sep = "-part"
	}
	return disk + sep + strconv.Itoa(n)
}

// IsPartitionOf tells whether name is partition n of disk: the disk's
// name, the kernel's separator ("", "p" or "-part") and the number n.
func IsPartitionOf(disk, name string, n int) bool {
	rest, ok := strings.CutPrefix(name, disk)
	if !ok || n < 1 {
		return false
	}
	num := strconv.Itoa(n)
	for _, sep := range []string{"", "p", "-part"} {
		if rest == sep+num {
			// "sda" + "1" must not be read as "sda1" + "": a disk whose
			// name ends in a digit takes a separator.
			if sep == "" && disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
				return false
			}
			return true
		}
	}
	return false
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

// Layout problems are those of the fields the storage planner reads:
// ks_spaces, partitioning and the image_data entries (which file system
// each image fills).
var layoutPrefixes = []string{pathKsSpaces, "partitioning", field(pathKsMeta, "image_data") + "["}

// LayoutProblems returns the problems Validate finds in the storage layout
// (ks_meta.pm_data.ks_spaces, partitioning, and which volume each
// ks_meta.image_data entry fills), with their paths. The planner reports
// these instead of checking the same rules again; on a parsed Document it
// leaves out what Parse already reported, as Validate does.
//
// Unlike Validate, it includes Parse's own problems of those fields (a size
// that was not an integer): their values were left zero, and a planner
// must not lay out a disk it read as "size 0".
func (d *Document) LayoutProblems() []FieldError {
	var all []FieldError
	if d.src != nil {
		all = append(all, d.src.problems...)
	}
	all = append(all, d.check().errs...)
	var out []FieldError
	for _, p := range all {
		if isLayoutPath(p.Path) {
			out = append(out, p)
		}
	}
	out = dedupe(out)
	if d.src != nil {
		sortProblems(out, d.src.pos)
	}
	return out
}
