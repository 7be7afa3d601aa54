package partition

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/imprint-dev/imprint/provision"
)

// GPT partition type GUIDs the planner assigns by purpose. A volume's
// partition_guid always wins over these.
const (
	GUIDBIOSBoot    = "21686148-6449-6E6F-744E-656564454649"
	GUIDLinuxFS     = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	GUIDLinuxLVM    = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
	GUIDLinuxRAID   = "A19D880F-05FC-4D3B-A006-743F0F84911E"
	GUIDLinuxSwap   = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
	GUIDCephJournal = "45B0969E-9B03-4F30-B4C6-B4B80CEFF106"
	GUIDCephOSD     = "4FBD7E29-9D25-41B8-AFD0-062C0CEFF05D"

	// GUIDUEFIPlaceholder is the type of the 200 MiB "UEFI" placeholder:
	// Linux filesystem data, not EFI System. fuel-agent creates it with a
	// bare `parted mkpart` (which yields Linux filesystem data) and never
	// formats it; marking an unformatted partition as an ESP would make
	// firmware and installers take an empty partition for the system
	// partition.
	GUIDUEFIPlaceholder = GUIDLinuxFS
)

// Fixed sizes of fuel-agent's layout, MiB.
const (
	planFirstBeginMiB   = 1
	planBiosGrubMiB     = 24
	planUEFIMiB         = 200
	planConfigdriveMiB  = 20
	planGapMiB          = 1 // begin = previous end + 1
	planBackupGPTMiB    = 1 // room left at the end of the disk for the backup GPT
	planJournalCapMiB   = 10240
	planMaxMD           = 127
	planFSLabelMax      = 12
	planDefaultMetaSize = 64
)

// Known error classes of planning.
var (
	// ErrDiskNotFound: a ks_spaces disk matches no inventory device, or
	// several.
	ErrDiskNotFound = errors.New("disk not found")
	// ErrDoesNotFit: a disk's layout is larger than the real disk.
	ErrDoesNotFit = errors.New("layout does not fit the disk")
	// ErrLayout: the document describes a layout fuel-agent's algorithm
	// cannot build (no disk for /boot or the configdrive, a VG without PV,
	// bad lvm_meta_size, ...).
	ErrLayout = errors.New("impossible layout")
)

// PlanOptions tune NewPlan. The zero value is NOT fuel-agent's default: use
// DefaultPlanOptions() and change what you need.
type PlanOptions struct {
	// PrepareConfigdrive reserves the 20 MiB configdrive partition at the
	// end of the first disk holding "/" or a PV of VG "os" (fuel-agent's
	// prepare_configdrive, default true). Without it no configdrive
	// partition is planned and Plan.Configdrive is empty.
	PrepareConfigdrive bool
	// GrubVersion is 1 (grub-legacy: md metadata 0.90) or 2 (md metadata
	// 1.2, "default"). 0 derives it from the document's profile as
	// fuel-agent does: a CentOS profile without "7" means grub 1.
	GrubVersion int
	// BootMode is the resolved boot mode: bios (or ""), uefi or both
	// (provision.ResolveBootMode). uefi and both make the "UEFI"
	// placeholder of every bootable disk an ESP (esp.go).
	BootMode string
}

// DefaultPlanOptions are fuel-agent's defaults: a configdrive partition, the
// grub version guessed from the profile.
func DefaultPlanOptions() PlanOptions {
	return PlanOptions{PrepareConfigdrive: true}
}

// NewPlan computes the storage plan of a provision document against the
// node's disks. It is pure: it reads nothing but its arguments.
//
// When doc.Partitioning (the nailgun_simple driver's pre-computed scheme) is
// present it is converted into a Plan; otherwise the layout is computed from
// ks_meta.pm_data.ks_spaces exactly as fuel-agent's Nailgun driver does:
//
//   - Disks are taken in ks_spaces order; entries with size <= 0, and disks
//     whose volumes other than boot, lvm_meta_pool and /boot are all of size
//     0, are left untouched (no label, no bootloader). Every other disk gets
//     a GPT and grub's stage 1.
//   - Partition 1 is bios_grub, 24 MiB at 1 MiB; partition 2 the empty
//     200 MiB UEFI placeholder; then the volumes in listed order, each
//     beginning 1 MiB after the previous end. Zero-size volumes, boot and
//     lvm_meta_pool are skipped.
//   - /boot (partition or raid volume) is created once, as a plain
//     partition (ext2 by default), on the first disk of fuel-agent's
//     boot_disks: non-NVMe disks with a /boot volume, narrowed to fake-RAID
//     md disks holding the os PV if any, and to the bootable disk if one is
//     marked (two is an error).
//   - raid volumes of other mounts become members of /dev/mdN (the first
//     free N) keyed by mount, level mirror, metadata 0.90 for grub 1 else
//     default; pv volumes become LVM PVs with metadatasize
//     floor((lvm_meta_size-8)/2) MiB and 2 metadata copies; VGs exist only
//     through their PVs; LVs come from the vg entries (device
//     /dev/mapper/<vg>-<lv>, dashes doubled).
//   - Volumes named "cephjournal" are split in ceil(#ceph/#cephjournal)
//     partitions of size/ratio MiB, at most 10240, with the Ceph journal
//     type GUID.
//   - The 20 MiB configdrive partition goes last on the first disk that
//     holds "/" (partition or raid) or a PV of VG "os".
//   - Filesystems default to xfs (ext2 for /boot); labels are cut to 12
//     bytes; a filesystem an image_data entry targets is marked Image and
//     never mkfs'd.
//   - Type GUIDs follow the purpose: BIOS boot (bios_grub), Linux LVM
//     (pv), Linux RAID (md member), Linux swap (swap filesystem), Ceph
//     journal, Ceph OSD (a partition named "ceph"), Linux filesystem data
//     for everything else (filesystems, the UEFI placeholder, the
//     configdrive, empty partitions). A volume's partition_guid wins.
//   - keep_data is elevated (PV partition → VG → LVs → filesystem;
//     partition → filesystem) and Plan.KeepData set if any flag remains.
//
// With inv == nil every ks_spaces disk is taken as declared (/dev/<name>,
// the declared size, no fit check: a layout larger than the declared size
// only yields a warning). With an inventory each ks_spaces disk is matched
// to one device (extra by-id links, then id, then name) and the layout must
// fit the real disk, leaving 1 MiB for the backup GPT.
//
// All problems found are returned together in one *provision.ValidationError,
// each with its document path, provision's own wording for the document's
// rules, and its class in FieldError.Err (ErrDiskNotFound, ErrDoesNotFit or
// ErrLayout), which errors.Is finds.
func NewPlan(doc *provision.Document, inv []Device, opts PlanOptions) (*Plan, error) {
	if doc == nil {
		return nil, fmt.Errorf("plan: no document: %w", ErrLayout)
	}
	pl := &planner{doc: doc, inv: inv, opts: opts}
	// The document's own rules are provision's: the planner reports them,
	// with provision's paths and wording, and plans only a layout that
	// passes them. The disks are still looked up in the inventory so that
	// a missing disk is reported with the rest.
	if probs := doc.LayoutProblems(); len(probs) > 0 {
		for _, p := range probs {
			pl.fail(ErrLayout, p.Path, "%s", p.Msg)
		}
		pl.plan = newEmptyPlan()
		if doc.Partitioning != nil {
			for i, pd := range doc.Partitioning.Parteds {
				pl.lookupParted(i, pd.Name)
			}
		} else if pl.inv != nil {
			pl.matchAll(pl.ksDisks())
		}
		return pl.finish()
	}
	if doc.Partitioning != nil {
		return pl.fromScheme(doc.Partitioning)
	}
	return pl.compute()
}

// ksDisks are the ks_spaces disk entries of size > 0.
func (pl *planner) ksDisks() []ksDisk {
	spaces := pl.doc.KsMeta.PmData.KsSpaces
	var disks []ksDisk
	for i := range spaces {
		s := &spaces[i]
		if s.Type == provision.SpaceDisk && s.Size > 0 {
			disks = append(disks, ksDisk{idx: i, space: s})
		}
	}
	return disks
}

// planner holds the state of one NewPlan call.
type planner struct {
	doc  *provision.Document
	inv  []Device
	opts PlanOptions

	plan  *Plan
	errs  []provision.FieldError
	warns []string
	// unmatched: ks_spaces indexes of disks no inventory device matched
	// (already reported).
	unmatched map[int]bool
}

func (pl *planner) fail(sentinel error, path, format string, args ...any) {
	pl.errs = append(pl.errs, provision.FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

func (pl *planner) warn(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	pl.warns = append(pl.warns, msg)
}

func newEmptyPlan() *Plan {
	return &Plan{
		Disks:      []Disk{},
		MDs:        []MD{},
		PVs:        []PV{},
		VGs:        []VG{},
		LVs:        []LV{},
		FSs:        []FS{},
		Images:     []Image{},
		Bootloader: []string{},
	}
}

func (pl *planner) finish() (*Plan, error) {
	if len(pl.errs) > 0 {
		return nil, &provision.ValidationError{Problems: pl.errs}
	}
	if len(pl.warns) > 0 {
		pl.plan.Warnings = pl.warns
	}
	return pl.plan, nil
}

const ksSpacesPath = "ks_meta.pm_data.ks_spaces"

func spacePath(i int) string             { return fmt.Sprintf("%s[%d]", ksSpacesPath, i) }
func volumePath(i, j int) string         { return fmt.Sprintf("%s[%d].volumes[%d]", ksSpacesPath, i, j) }
func planIsNVMe(s *provision.Space) bool { return strings.Contains(s.Name, "nvme") }

// ksDisk is a ks_spaces disk entry with size > 0, with its index.
type ksDisk struct {
	idx   int
	space *provision.Space
}

func planIsBootDisk(s *provision.Space) bool {
	for _, v := range s.Volumes {
		if (v.Type == provision.VolPartition || v.Type == provision.VolRaid) && v.Mount == "/boot" {
			return true
		}
	}
	return false
}

func planIsRootDisk(s *provision.Space) bool {
	for _, v := range s.Volumes {
		if (v.Type == provision.VolPartition || v.Type == provision.VolRaid) && v.Mount == "/" {
			return true
		}
	}
	return false
}

func planIsOSDisk(s *provision.Space) bool {
	for _, v := range s.Volumes {
		if v.Size > 0 && v.Type == provision.VolPV && v.VG == "os" {
			return true
		}
	}
	return false
}

// planHasRealVolume: some volume other than boot, lvm_meta_pool and /boot has
// size > 0. Disks without one are left untouched.
func planHasRealVolume(s *provision.Space) bool {
	for _, v := range s.Volumes {
		if v.Type == provision.VolBoot || v.Type == provision.VolLVMMetaPool || v.Mount == "/boot" {
			continue
		}
		if v.Size > 0 {
			return true
		}
	}
	return false
}

// bootDisks is fuel-agent's boot_disks: the disks /boot may be placed on,
// as indexes into ks_spaces.
func (pl *planner) bootDisks(disks []ksDisk) []int {
	var suitable []ksDisk
	anyBoot := false
	for _, d := range disks {
		if planIsBootDisk(d.space) {
			anyBoot = true
			if !planIsNVMe(d.space) {
				suitable = append(suitable, d)
			}
		}
	}
	if len(suitable) == 0 && !anyBoot {
		// No /boot anywhere: grub goes where "/" lands (Ironic's case).
		var out []int
		for _, d := range disks {
			if planIsRootDisk(d.space) && !planIsNVMe(d.space) {
				out = append(out, d.idx)
			}
		}
		return out
	}
	// Root on fake RAID: /boot must land on it too.
	var md []ksDisk
	for _, d := range suitable {
		if strings.HasPrefix(d.space.Name, "md") && planIsOSDisk(d.space) {
			md = append(md, d)
		}
	}
	cands := suitable
	if len(md) > 0 {
		cands = md
	}
	var bootable []ksDisk
	for _, d := range cands {
		if d.space.Bootable {
			bootable = append(bootable, d)
		}
	}
	if len(bootable) >= 2 {
		var names []string
		for _, d := range bootable {
			names = append(names, fmt.Sprintf("%s (%s)", spacePath(d.idx), d.space.Name))
		}
		pl.fail(ErrLayout, ksSpacesPath, "more than one bootable disk: %s", strings.Join(names, ", "))
		return nil
	}
	if len(bootable) == 1 {
		return []int{bootable[0].idx}
	}
	out := make([]int, 0, len(cands))
	for _, d := range cands {
		out = append(out, d.idx)
	}
	return out
}

// planPartitionDevice names partition n of disk dev: provision's rule.
func planPartitionDevice(dev string, n int) string { return provision.PartitionDevice(dev, n) }

// LVDevice is the device-mapper path of LV lv in VG vg: /dev/mapper/<vg>-<lv>
// with every dash of either name doubled (provision.LVDevicePath).
func LVDevice(vg, lv string) string { return provision.LVDevicePath(vg, lv) }

// planTruncLabel truncates a filesystem label to 12 bytes (fuel-agent's
// limit, xfs's maximum) without splitting a UTF-8 sequence.
func planTruncLabel(s string) string {
	if len(s) <= planFSLabelMax {
		return s
	}
	s = s[:planFSLabelMax]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func planGUIDForFS(fsType string) string {
	if fsType == "swap" {
		return GUIDLinuxSwap
	}
	return GUIDLinuxFS
}

// planDisk is the disk being laid out.
type planDisk struct {
	d *Disk
}

func (pd *planDisk) nextBegin() int64 {
	if len(pd.d.Partitions) == 0 {
		return planFirstBeginMiB
	}
	return pd.d.Partitions[len(pd.d.Partitions)-1].EndMiB + planGapMiB
}

func (pd *planDisk) add(size int64, p Partition) *Partition {
	p.Number = len(pd.d.Partitions) + 1
	p.Disk = pd.d.Device
	p.Device = planPartitionDevice(pd.d.Device, p.Number)
	p.BeginMiB = pd.nextBegin()
	p.EndMiB = p.BeginMiB + size
	if p.Flags == nil {
		p.Flags = []string{}
	}
	pd.d.Partitions = append(pd.d.Partitions, p)
	return &pd.d.Partitions[len(pd.d.Partitions)-1]
}

func (pl *planner) grubVersion() int {
	if pl.opts.GrubVersion == 1 || pl.opts.GrubVersion == 2 {
		return pl.opts.GrubVersion
	}
	p := strings.ToLower(pl.doc.Profile)
	if strings.Contains(p, "centos") && !strings.Contains(p, "7") {
		return 1
	}
	return 2
}

// compute runs fuel-agent's Nailgun.parse_partition_scheme.
func (pl *planner) compute() (*Plan, error) {
	pl.plan = newEmptyPlan()
	disks := pl.ksDisks()
	if len(disks) == 0 {
		pl.fail(ErrLayout, ksSpacesPath, "no disk entry with size > 0: nothing to partition")
		return pl.finish()
	}
	st := pl.newLayoutState(disks)
	devs := pl.matchAll(disks)
	for di, d := range disks {
		if !planHasRealVolume(d.space) {
			continue // unallocated: no label, no bootloader
		}
		pl.layoutDisk(d, devs[di], st)
	}
	if st.needBoot && (!st.bootPartDone || !st.bootFSDone) {
		pl.failBoot(disks, st.bootDisks)
	}
	if pl.opts.PrepareConfigdrive && !st.configdriveDone {
		pl.fail(ErrLayout, ksSpacesPath, "no partitioned disk holds \"/\" (partition or raid volume) or a pv of vg \"os\": there is no disk for the 20 MiB configdrive partition")
	}

	pl.planLVs(pl.doc.KsMeta.PmData.KsSpaces)
	pl.planESPs()
	pl.planImages()
	pl.elevateKeepData()
	pl.checkGUIDs()
	return pl.finish()
}

// layoutState is what laying the disks out carries from one disk (and
// volume) to the next.
type layoutState struct {
	mdMeta string // md metadata version: "0.90" with grub 1
	// Ceph: one journal partition per OSD, spread over the journal volumes.
	cephOSDs, cephJournals, journalsLeft int
	needBoot                             bool  // some disk is bootable
	bootDisks                            []int // ks_spaces indexes that may hold /boot
	bootPartDone, bootFSDone             bool
	configdriveDone                      bool
}

func (pl *planner) newLayoutState(disks []ksDisk) *layoutState {
	st := &layoutState{mdMeta: "default"}
	if pl.grubVersion() == 1 {
		st.mdMeta = "0.90"
	}
	for _, d := range disks {
		if planIsBootDisk(d.space) {
			st.needBoot = true
		}
		for _, v := range d.space.Volumes {
			if v.Size <= 0 {
				continue
			}
			switch v.Name {
			case "ceph":
				st.cephOSDs++
			case "cephjournal":
				st.cephJournals++
			}
		}
	}
	st.journalsLeft = st.cephOSDs
	if st.needBoot {
		st.bootDisks = pl.bootDisks(disks)
	}
	return st
}

func (st *layoutState) inBoot(idx int) bool {
	for _, b := range st.bootDisks {
		if b == idx {
			return true
		}
	}
	return false
}

// layoutDisk lays out one ks_spaces disk on dev: bios_grub, the "UEFI"
// partition, its volumes in order, then the configdrive on the first root
// or os disk.
func (pl *planner) layoutDisk(d ksDisk, dev Device, st *layoutState) {
	p := pl.plan
	p.Disks = append(p.Disks, Disk{
		Device:            dev.Path,
		Name:              dev.Name,
		SizeMiB:           dev.SizeMiB,
		LogicalSectorSize: dev.LogicalSectorSize,
		Label:             "gpt",
		Partitions:        []Partition{},
		Bootloader:        true,
		Paths:             dev.Paths,
	})
	pd := &planDisk{d: &p.Disks[len(p.Disks)-1]}
	pd.add(planBiosGrubMiB, Partition{Purpose: PurposeBiosGrub, Flags: []string{"bios_grub"}, TypeGUID: GUIDBIOSBoot, Name: "bios_grub"})
	pd.add(planUEFIMiB, Partition{Purpose: PurposeUEFI, TypeGUID: GUIDUEFIPlaceholder, Name: "uefi"})

	for vj, v := range d.space.Volumes {
		if v.Size <= 0 {
			continue
		}
		vpath := volumePath(d.idx, vj)
		if v.Name == "cephjournal" {
			pl.layoutCephJournal(pd, vpath, v, st)
			continue
		}
		pl.layoutVolume(pd, d, vpath, v, st)
	}

	if !st.configdriveDone && pl.opts.PrepareConfigdrive && (planIsRootDisk(d.space) || planIsOSDisk(d.space)) {
		part := pd.add(planConfigdriveMiB, Partition{Purpose: PurposeConfigdrive, Configdrive: true, TypeGUID: GUIDLinuxFS, Name: "config-2"})
		p.Configdrive = part.Device
		st.configdriveDone = true
	}
	pl.checkFit(d.idx, pd.d)
	p.Bootloader = append(p.Bootloader, pd.d.Device)
}

// layoutCephJournal adds a cephjournal volume's share of journal
// partitions (fuel-agent: size / ratio each, capped at 10 GiB).
func (pl *planner) layoutCephJournal(pd *planDisk, vpath string, v provision.Volume, st *layoutState) {
	if st.cephOSDs == 0 {
		pl.fail(ErrLayout, vpath, "ceph journal volume but no ceph OSD volume (name \"ceph\") of size > 0 on any disk")
		return
	}
	ratio := (st.cephOSDs + st.cephJournals - 1) / st.cephJournals
	size := v.Size / int64(ratio)
	if size > planJournalCapMiB {
		size = planJournalCapMiB
	}
	n := min(ratio, st.journalsLeft)
	for range n {
		st.journalsLeft--
		if v.Type != provision.VolPartition {
			continue
		}
		if size <= 0 {
			pl.fail(ErrLayout, vpath+".size", "%d MiB split over %d journals leaves 0 MiB each", v.Size, ratio)
			break
		}
		guid := GUIDCephJournal
		if v.PartitionGUID != "" {
			guid = v.PartitionGUID
		}
		pd.add(size, Partition{Purpose: PurposeCephJournal, TypeGUID: guid, Name: v.Name})
	}
}

// layoutVolume adds one partition, pv or raid volume of disk d.
func (pl *planner) layoutVolume(pd *planDisk, d ksDisk, vpath string, v provision.Volume, st *layoutState) {
	p := pl.plan
	if v.Type != provision.VolPartition && v.Type != provision.VolPV && v.Type != provision.VolRaid {
		return // boot, lvm_meta_pool: Nailgun's accounting
	}
	if v.Mount == "/boot" {
		if st.bootPartDone || !st.inBoot(d.idx) {
			return // /boot lives on one disk only
		}
		st.bootPartDone = true
	}
	part := pd.add(v.Size, Partition{KeepData: v.KeepData, Name: v.Name, Purpose: PurposeNone, TypeGUID: GUIDLinuxFS})

	switch v.Type {
	case provision.VolPartition:
		fsType, mount := v.FileSystem, v.Mount
		if fsType == "none" {
			fsType = ""
		}
		if mount == "none" {
			mount = ""
		}
		if fsType != "" || mount != "" {
			if fsType == "" {
				fsType = "xfs"
				if mount == "/boot" {
					fsType = "ext2"
				}
			}
			p.FSs = append(p.FSs, FS{Device: part.Device, Mount: mount, Type: fsType, Label: planTruncLabel(v.DiskLabel)})
			part.Purpose, part.Mount, part.TypeGUID = PurposeFS, mount, planGUIDForFS(fsType)
			if mount == "/boot" {
				st.bootFSDone = true
			}
		}
		if v.Name == "ceph" {
			part.TypeGUID = GUIDCephOSD
		}
	case provision.VolPV:
		part.Purpose, part.VG, part.TypeGUID = PurposePV, v.VG, GUIDLinuxLVM
		pl.attachPV(part.Device, v.VG, provision.PVMetadataSizeMiB(v.LVMMetaSize))
	case provision.VolRaid:
		switch v.Mount {
		case "", "none":
		case "/boot":
			fsType := v.FileSystem
			if fsType == "" || fsType == "none" {
				fsType = "ext2"
			}
			p.FSs = append(p.FSs, FS{Device: part.Device, Mount: "/boot", Type: fsType, Label: planTruncLabel(v.DiskLabel)})
			part.Purpose, part.Mount, part.TypeGUID = PurposeFS, "/boot", planGUIDForFS(fsType)
			st.bootFSDone = true
		default:
			md := pl.attachMD(vpath, part.Device, v, st.mdMeta)
			if md != "" {
				part.Purpose, part.MD, part.TypeGUID = PurposeRaid, md, GUIDLinuxRAID
			}
		}
	}
	if v.PartitionGUID != "" {
		part.TypeGUID = v.PartitionGUID
	}
}

// failBoot explains why /boot could not be placed.
func (pl *planner) failBoot(disks []ksDisk, bootDisks []int) {
	var withBoot, nvme []string
	for _, d := range disks {
		if planIsBootDisk(d.space) {
			withBoot = append(withBoot, d.space.Name)
			if planIsNVMe(d.space) {
				nvme = append(nvme, d.space.Name)
			}
		}
	}
	switch {
	case len(nvme) == len(withBoot):
		pl.fail(ErrLayout, ksSpacesPath, "/boot partition has not been created: every disk with a /boot volume is NVMe (%s), and BIOS grub cannot boot from NVMe; put a /boot volume on a non-NVMe disk", strings.Join(nvme, ", "))
	case len(bootDisks) == 0:
		pl.fail(ErrLayout, ksSpacesPath, "/boot partition has not been created: no disk qualifies for /boot (disks with a /boot volume: %s)", strings.Join(withBoot, ", "))
	default:
		var names []string
		for _, i := range bootDisks {
			names = append(names, pl.doc.KsMeta.PmData.KsSpaces[i].Name)
		}
		pl.fail(ErrLayout, ksSpacesPath, "/boot partition has not been created: the disks chosen for /boot (%s) get no /boot partition of size > 0 (unallocated disk or zero-size /boot volume)", strings.Join(names, ", "))
	}
}

// attachPV is fuel-agent's vg_attach_by_name: the VG exists from its first PV.
func (pl *planner) attachPV(dev, vg string, metaSize int64) {
	p := pl.plan
	p.PVs = append(p.PVs, PV{Device: dev, VG: vg, MetadataSizeMiB: metaSize, MetadataCopies: 2})
	for i := range p.VGs {
		if p.VGs[i].Name == vg {
			p.VGs[i].PVs = append(p.VGs[i].PVs, dev)
			return
		}
	}
	p.VGs = append(p.VGs, VG{Name: vg, PVs: []string{dev}})
}

// attachMD is fuel-agent's md_attach_by_mount: the md for a mount point is
// created with its first member, /dev/mdN with the first free N.
func (pl *planner) attachMD(vpath, dev string, v provision.Volume, meta string) string {
	p := pl.plan
	for _, fs := range p.FSs {
		if fs.Mount != v.Mount {
			continue
		}
		for i := range p.MDs {
			if p.MDs[i].Device == fs.Device {
				p.MDs[i].Members = append(p.MDs[i].Members, dev)
				return p.MDs[i].Device
			}
		}
		break
	}
	name := ""
	for n := 0; n <= planMaxMD; n++ {
		cand := fmt.Sprintf("/dev/md%d", n)
		used := false
		for _, md := range p.MDs {
			if md.Device == cand {
				used = true
				break
			}
		}
		if !used {
			name = cand
			break
		}
	}
	if name == "" {
		pl.fail(ErrLayout, vpath, "no free md device: /dev/md0 to /dev/md%d are all planned", planMaxMD)
		return ""
	}
	fsType := v.FileSystem
	if fsType == "" || fsType == "none" {
		fsType = "xfs"
	}
	p.MDs = append(p.MDs, MD{Device: name, Level: "mirror", Metadata: meta, Members: []string{dev}, Spares: []string{}, Mount: v.Mount})
	p.FSs = append(p.FSs, FS{Device: name, Mount: v.Mount, Type: fsType, Label: planTruncLabel(v.DiskLabel)})
	return name
}

// planLVs adds the LVs of every vg entry (size > 0) and their filesystems.
// fuel-agent schedules LVs even for a VG no PV created (lvcreate then
// fails); the planner rejects that up front.
func (pl *planner) planLVs(spaces []provision.Space) {
	p := pl.plan
	for i := range spaces {
		s := &spaces[i]
		if s.Type != provision.SpaceVG {
			continue
		}
		hasPV := false
		for _, vg := range p.VGs {
			if vg.Name == s.ID {
				hasPV = true
			}
		}
		for j, v := range s.Volumes {
			vpath := volumePath(i, j)
			if v.Size <= 0 || v.Type != provision.VolLV {
				continue
			}
			if !hasPV {
				// provision reports a VG with LVs and no PV; this is
				// only reached for a Document it was not asked about.
				pl.fail(ErrLayout, vpath, "logical volume %q of vg %q has no physical volume: no partitioned disk carries a pv volume of vg %q with size > 0", v.Name, s.ID, s.ID)
				continue
			}
			dev := LVDevice(s.ID, v.Name)
			p.LVs = append(p.LVs, LV{Name: v.Name, VG: s.ID, SizeMiB: v.Size, Device: dev, KeepData: v.KeepData})
			if v.Mount != "" && v.Mount != "none" {
				fsType := v.FileSystem
				if fsType == "" || fsType == "none" {
					fsType = "xfs"
				}
				p.FSs = append(p.FSs, FS{Device: dev, Mount: v.Mount, Type: fsType, Label: planTruncLabel(v.DiskLabel)})
			}
		}
	}
}

// planImageMounts orders image_data mount points: shallow first, then by
// name ("/" before "/boot").
func planImageMounts(m map[string]provision.ImageData) []string {
	mounts := make([]string, 0, len(m))
	for k := range m {
		mounts = append(mounts, k)
	}
	sort.Slice(mounts, func(i, j int) bool {
		di := strings.Count(strings.TrimRight(mounts[i], "/"), "/")
		dj := strings.Count(strings.TrimRight(mounts[j], "/"), "/")
		if di != dj {
			return di < dj
		}
		return mounts[i] < mounts[j]
	})
	return mounts
}

// planImages assigns each image_data entry to the filesystem mounted at
// its key; that filesystem is then an image target, never mkfs'd.
func (pl *planner) planImages() {
	p := pl.plan
	for _, mount := range planImageMounts(pl.doc.KsMeta.ImageData) {
		img := pl.doc.KsMeta.ImageData[mount]
		found := false
		for i := range p.FSs {
			if p.FSs[i].Mount == mount {
				p.FSs[i].Image = true
				p.Images = append(p.Images, Image{Mount: mount, URI: img.URI, Format: img.Format, Container: img.Container, Device: p.FSs[i].Device})
				found = true
				break
			}
		}
		if !found {
			pl.fail(ErrLayout, fmt.Sprintf("ks_meta.image_data[%q]", mount), "no filesystem of the layout is mounted at %s", mount)
		}
	}
}

// elevateKeepData is fuel-agent's elevate_keep_data (docs/fuel-agent.md §7):
// keep flags move from PV partitions to their VG, from the VG to all its
// LVs, and from an LV or partition to the filesystem on it. Any flag left
// means the existing layout is reused: Plan.KeepData.
func (pl *planner) elevateKeepData() {
	p := pl.plan
	partByDev := map[string]*Partition{}
	for i := range p.Disks {
		for j := range p.Disks[i].Partitions {
			part := &p.Disks[i].Partitions[j]
			partByDev[part.Device] = part
		}
	}
	vgByName := map[string]*VG{}
	for i := range p.VGs {
		vgByName[p.VGs[i].Name] = &p.VGs[i]
	}
	for i := range p.VGs {
		for _, pv := range p.VGs[i].PVs {
			if part := partByDev[pv]; part != nil && part.KeepData {
				part.KeepData = false
				p.VGs[i].KeepData = true
			}
		}
	}
	for i := range p.LVs {
		if vg := vgByName[p.LVs[i].VG]; vg != nil && vg.KeepData {
			p.LVs[i].KeepData = true
		}
	}
	for i := range p.LVs {
		if vg := vgByName[p.LVs[i].VG]; vg != nil && vg.KeepData && p.LVs[i].KeepData {
			vg.KeepData = false
		}
	}
	lvByDev := map[string]*LV{}
	for i := range p.LVs {
		lvByDev[p.LVs[i].Device] = &p.LVs[i]
	}
	for i := range p.FSs {
		fs := &p.FSs[i]
		if lv := lvByDev[fs.Device]; lv != nil {
			if lv.KeepData {
				lv.KeepData = false
				fs.KeepData = true
			}
			continue
		}
		if part := partByDev[fs.Device]; part != nil && part.KeepData {
			part.KeepData = false
			fs.KeepData = true
		}
	}
	p.KeepData = planAnyKeep(p)
}

func planAnyKeep(p *Plan) bool {
	for _, fs := range p.FSs {
		if fs.KeepData {
			return true
		}
	}
	for _, lv := range p.LVs {
		if lv.KeepData {
			return true
		}
	}
	for _, vg := range p.VGs {
		if vg.KeepData {
			return true
		}
	}
	for _, md := range p.MDs {
		if md.KeepData {
			return true
		}
	}
	for _, d := range p.Disks {
		for _, part := range d.Partitions {
			if part.KeepData {
				return true
			}
		}
	}
	return false
}

// checkFit: the last partition must end at least 1 MiB before the end of
// the disk (the backup GPT). Against a real disk this is an error; against
// a declared size (no inventory) a warning.
func (pl *planner) checkFit(idx int, d *Disk) {
	if len(d.Partitions) == 0 || pl.unmatched[idx] {
		return
	}
	end := d.Partitions[len(d.Partitions)-1].EndMiB
	need := end + planBackupGPTMiB
	if need <= d.SizeMiB {
		return
	}
	if pl.inv != nil {
		pl.fail(ErrDoesNotFit, spacePath(idx), "disk %s: layout needs %d MiB (last partition ends at %d MiB, plus %d MiB for the backup GPT), the disk has %d MiB", d.Device, need, end, planBackupGPTMiB, d.SizeMiB)
		return
	}
	pl.warn(spacePath(idx), "disk %s: layout needs %d MiB (last partition ends at %d MiB, plus %d MiB for the backup GPT), more than the declared size %d MiB", d.Device, need, end, planBackupGPTMiB, d.SizeMiB)
}

// checkGUIDs reports type GUIDs that are not GUIDs. fuel-agent's test
// fixtures carry partition_guid "fake_guid": a placeholder for unit tests
// that mock sgdisk. The real sgdisk refuses it ("Could not change partition
// 4's type code to fake_guid!", exit 4) after parted already relabelled the
// disk, and a GPT entry can only hold 16 bytes of GUID. Planned as declared
// (no inventory) it is a warning, as the plan only describes the layout;
// against this machine's disks, the plan an apply runs, it is an error, so
// nothing is wiped before a table that cannot be written.
func (pl *planner) checkGUIDs() {
	for _, d := range pl.plan.Disks {
		for _, part := range d.Partitions {
			if planIsGUID(part.TypeGUID) {
				continue
			}
			const why = "partition %s: type GUID %q is not a GUID (8-4-4-4-12 hex digits): no GPT entry can hold it, and sgdisk --typecode refuses it"
			if pl.inv != nil {
				pl.fail(ErrLayout, "", why, part.Device, part.TypeGUID)
				continue
			}
			pl.warn("", why, part.Device, part.TypeGUID)
		}
	}
}

// planIsGUID is provision's GUID rule.
func planIsGUID(s string) bool { return provision.IsGUID(s) }
