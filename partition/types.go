// Package partition turns a provision document and a disk inventory into a
// deterministic storage plan (Plan, pure), and applies a plan to real block
// devices (Apply, through small consumer-declared interfaces).
//
// All sizes and boundaries are integer MiB, as in Nailgun and fuel-agent.
package partition

// Device is what the planner needs to know of one real disk.
type Device struct {
	Name              string   `json:"name"`                          // kernel name relative to /dev: sda, nvme0n1, mapper/mpatha
	Path              string   `json:"path"`                          // /dev/sda
	SizeMiB           int64    `json:"size_mib"`                      // whole disk
	LogicalSectorSize int      `json:"logical_sector_size,omitempty"` // 512 or 4096
	Links             []string `json:"links,omitempty"`               // /dev/disk/by-id/..., /dev/disk/by-path/... (absolute)
	// LegacyLinks are the names older udev gave the disk (scsi-SATA_...
	// by-id, ...-scsi-H:B:T:L by-path for an ATA disk), which a Nailgun
	// database filled from an old bootstrap may hold; matched only when no
	// disk matches by Links.
	LegacyLinks []string `json:"legacy_links,omitempty"`
	// Paths are the path devices of a multipath disk (/dev/sda, /dev/sdb):
	// the same disk under other names.
	Paths []string `json:"paths,omitempty"`
}

// Partition purposes.
const (
	PurposeBiosGrub    = "bios_grub"
	PurposeUEFI        = "uefi" // the 200 MiB placeholder fuel-agent reserves
	PurposeFS          = "fs"   // a filesystem directly on the partition
	PurposePV          = "pv"
	PurposeRaid        = "raid" // an md member
	PurposeCephJournal = "cephjournal"
	PurposeConfigdrive = "configdrive"
	PurposeNone        = "none" // partition with nothing on it (file_system and mount "none")
)

// Plan is the whole storage layout of a node, in creation order.
type Plan struct {
	Disks       []Disk  `json:"disks"`
	MDs         []MD    `json:"mds"`
	PVs         []PV    `json:"pvs"`
	VGs         []VG    `json:"vgs"`
	LVs         []LV    `json:"lvs"`
	FSs         []FS    `json:"fss"`
	Images      []Image `json:"images"`
	Configdrive string  `json:"configdrive,omitempty"` // partition device of the configdrive
	// Bootloader lists the disk devices that get grub's stage 1.
	Bootloader []string `json:"bootloader"`
	// BootMode is the resolved boot mode (bios, uefi, both; "" as bios):
	// uefi and both give every Bootloader disk an ESP (esp.go).
	BootMode string `json:"boot_mode,omitempty"`
	// KeepData: some volume is preserved, so nothing is wiped, relabelled or
	// recreated; only non-kept, non-image filesystems are made (fuel-agent's
	// skip_partitioning).
	KeepData bool `json:"keep_data"`
	// Warnings are things worth a look that do not stop the plan (a layout
	// larger than a disk's declared size when planning without inventory,
	// a type GUID that is not a GUID, no bootloader disk in a pre-computed
	// scheme).
	Warnings []string `json:"warnings,omitempty"`
}

// Disk is one disk the plan touches, with its GPT.
type Disk struct {
	Device            string      `json:"device"` // /dev/sda
	Name              string      `json:"name"`   // sda
	SizeMiB           int64       `json:"size_mib"`
	LogicalSectorSize int         `json:"logical_sector_size,omitempty"`
	Label             string      `json:"label"` // gpt
	Partitions        []Partition `json:"partitions"`
	Bootloader        bool        `json:"bootloader"`
	// Paths: the disk's multipath paths (Device.Paths); written only as
	// this disk (devguard: the same disk).
	Paths []string `json:"paths,omitempty"`
}

// Partition is one GPT partition.
type Partition struct {
	Number      int      `json:"number"`
	Device      string   `json:"device"` // /dev/sda3, /dev/nvme0n1p3, /dev/mapper/mpatha-part3
	Disk        string   `json:"disk"`   // /dev/sda
	BeginMiB    int64    `json:"begin_mib"`
	EndMiB      int64    `json:"end_mib"` // exclusive, as fuel-agent's parted "mkpart BEGIN END"
	Flags       []string `json:"flags"`
	TypeGUID    string   `json:"type_guid"`
	Name        string   `json:"name,omitempty"` // GPT partition name
	Purpose     string   `json:"purpose"`
	Configdrive bool     `json:"configdrive"`
	KeepData    bool     `json:"keep_data"`
	// What it holds, for reading the plan: the VG, md device or mount.
	VG    string `json:"vg,omitempty"`
	MD    string `json:"md,omitempty"`
	Mount string `json:"mount,omitempty"`
}

// SizeMiB is the partition's size.
func (p Partition) SizeMiB() int64 { return p.EndMiB - p.BeginMiB }

// MD is an md RAID array.
type MD struct {
	Device   string   `json:"device"` // /dev/md0
	Level    string   `json:"level"`  // mirror
	Metadata string   `json:"metadata"`
	Members  []string `json:"members"`
	Spares   []string `json:"spares"`
	Mount    string   `json:"mount,omitempty"`
	KeepData bool     `json:"keep_data"`
}

// PV is an LVM physical volume.
type PV struct {
	Device          string `json:"device"`
	VG              string `json:"vg"`
	MetadataSizeMiB int64  `json:"metadatasize_mib"` // pvcreate --metadatasize
	MetadataCopies  int    `json:"metadatacopies"`
	KeepData        bool   `json:"keep_data"`
}

// VG is an LVM volume group.
type VG struct {
	Name     string   `json:"name"`
	PVs      []string `json:"pvs"`
	KeepData bool     `json:"keep_data"`
}

// LV is an LVM logical volume.
type LV struct {
	Name     string `json:"name"`
	VG       string `json:"vg"`
	SizeMiB  int64  `json:"size_mib"`
	Device   string `json:"device"` // /dev/mapper/<vg>-<lv>, dashes doubled
	KeepData bool   `json:"keep_data"`
}

// FS is a filesystem on a partition, md or LV.
type FS struct {
	Device   string `json:"device"`
	Mount    string `json:"mount,omitempty"` // absolute path, "swap", or empty
	Type     string `json:"type"`            // ext2|ext3|ext4|xfs|swap|vfat
	Label    string `json:"label,omitempty"`
	Options  string `json:"options,omitempty"`
	Image    bool   `json:"image"` // an image fills it: never mkfs'd
	KeepData bool   `json:"keep_data"`
}

// Image is one ks_meta.image_data entry assigned to its target device.
type Image struct {
	Mount     string `json:"mount"`
	URI       string `json:"uri"`
	Format    string `json:"format"`
	Container string `json:"container"`
	Device    string `json:"device"`
}
