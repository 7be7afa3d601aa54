// Package provision is the data model of a Nailgun provision.json document
// (the per-node dict Astute uploads as /tmp/provision.json), its parser and
// its validation. Field names follow the JSON keys Nailgun emits; every size is
// an integer number of MiB, as in Nailgun.
package provision

import "encoding/json"

// Document is one node's provisioning document.
type Document struct {
	Profile           string                       `json:"profile,omitempty"`
	Hostname          string                       `json:"hostname,omitempty"`
	Name              string                       `json:"name,omitempty"`
	SlaveName         string                       `json:"slave_name,omitempty"`
	UID               string                       `json:"uid,omitempty"`
	Interfaces        map[string]Interface         `json:"interfaces,omitempty"`
	InterfacesExtra   map[string]map[string]string `json:"interfaces_extra,omitempty"`
	KernelOptions     KernelOptions                `json:"kernel_options"`
	NameServers       string                       `json:"name_servers,omitempty"`        // Nailgun's literal quotes stripped
	NameServersSearch string                       `json:"name_servers_search,omitempty"` // Nailgun's literal quotes stripped
	PowerAddress      string                       `json:"power_address,omitempty"`
	PowerType         string                       `json:"power_type,omitempty"`
	PowerUser         string                       `json:"power_user,omitempty"`
	PowerPass         string                       `json:"power_pass,omitempty"`
	NetbootEnabled    string                       `json:"netboot_enabled,omitempty"`
	KsMeta            KsMeta                       `json:"ks_meta"`
	Partitioning      *PartitionScheme             `json:"partitioning,omitempty"` // nailgun_simple driver: pre-computed scheme
	Extra             map[string]json.RawMessage   `json:"-"`                      // unknown top-level keys, kept for diagnostics

	// src is what Parse learnt of the input: positions (problems are
	// reported in document order) and its own findings. Nil for a Document
	// built in Go. (Comparing Documents with go-cmp needs
	// cmpopts.IgnoreUnexported(Document{}).)
	src *source
}

// Interface is one entry of Document.Interfaces. Only the admin NIC carries
// an address.
type Interface struct {
	MACAddress string `json:"mac_address,omitempty"`
	IPAddress  string `json:"ip_address,omitempty"`
	Netmask    string `json:"netmask,omitempty"`
	DNSName    string `json:"dns_name,omitempty"`
	Static     string `json:"static,omitempty"`
}

// KernelOptions holds the keys of kernel_options the agent uses.
type KernelOptions struct {
	// ChooseInterface is "netcfg/choose_interface": the admin NIC's MAC.
	ChooseInterface string `json:"netcfg/choose_interface,omitempty"`
	// UdevRules is "mac1_eth0,mac2_eth1": persistent NIC names.
	UdevRules string `json:"udevrules,omitempty"`
}

// KsMeta is ks_meta.
type KsMeta struct {
	PmData             PmData               `json:"pm_data"`
	ImageData          map[string]ImageData `json:"image_data,omitempty"` // keyed by mount point; must hold "/"
	MasterIP           string               `json:"master_ip,omitempty"`
	Gw                 string               `json:"gw,omitempty"`
	AdminNet           string               `json:"admin_net,omitempty"`
	Timezone           string               `json:"timezone,omitempty"`
	AuthorizedKeys     []string             `json:"authorized_keys,omitempty"` // quotes stripped
	AuthKey            string               `json:"auth_key,omitempty"`        // quotes stripped
	UserAccounts       []UserAccount        `json:"user_accounts,omitempty"`
	RepoSetup          RepoSetup            `json:"repo_setup"`
	PuppetMaster       string               `json:"puppet_master,omitempty"`
	PuppetEnable       int                  `json:"puppet_enable,omitempty"`
	PuppetAutoSetup    int                  `json:"puppet_auto_setup,omitempty"`
	McoAutoSetup       int                  `json:"mco_auto_setup,omitempty"`
	InstallLog2Syslog  int                  `json:"install_log_2_syslog,omitempty"`
	McoPskey           string               `json:"mco_pskey,omitempty"`
	McoVhost           string               `json:"mco_vhost,omitempty"`
	McoHost            string               `json:"mco_host,omitempty"`
	McoUser            string               `json:"mco_user,omitempty"`
	McoPassword        string               `json:"mco_password,omitempty"`
	McoConnector       string               `json:"mco_connector,omitempty"` // rabbitmq or stomp
	McoEnable          int                  `json:"mco_enable,omitempty"`
	McoIdentity        int                  `json:"mco_identity,omitempty"`
	CloudInitTemplates map[string]string    `json:"cloud_init_templates,omitempty"` // boothook, cloud_config, meta_data
	KernelLt           int                  `json:"kernel_lt,omitempty"`
	FuelVersion        string               `json:"fuel_version,omitempty"`
	// PhoneHomeURL is an imprint extension (Nailgun has no such key): an
	// http(s) URL the provisioned OS's cloud-init POSTs to once it is up
	// (cloud-config phone_home: instance id, hostname, fqdn, host keys).
	PhoneHomeURL string `json:"phone_home_url,omitempty"`
	// BootMode is an imprint extension: uefi, bios or both (bootmode.go);
	// empty: the mode the ramdisk was booted in.
	BootMode string `json:"boot_mode,omitempty"`
	// ConfigdriveFormat is an imprint extension: the configdrive written
	// (config2-vfat, config2-iso, nocloud-vfat, nocloud-iso; checked by
	// package prepare against configdrive.Formats); empty: the agent's
	// configdrive-format setting.
	ConfigdriveFormat string `json:"configdrive_format,omitempty"`
	// OSNetwork is an imprint extension: ramdisk or document
	// (osnetwork.go); empty: the ramdisk's applied network when it has one.
	OSNetwork string `json:"os_network,omitempty"`
}

// PmData is ks_meta.pm_data.
type PmData struct {
	KsSpaces     []Space `json:"ks_spaces"`
	KernelParams string  `json:"kernel_params"`
}

// Space types.
const (
	SpaceDisk = "disk"
	SpaceVG   = "vg"
)

// Space is one ks_spaces entry: a disk (Type "disk") or a volume group
// (Type "vg"). Fields that belong to the other kind are zero.
type Space struct {
	Type string `json:"type"`
	ID   string `json:"id"` // disk: by-path link relative to /dev, or kernel name; vg: the VG name

	// disk
	Name      string   `json:"name,omitempty"`  // kernel name relative to /dev (sda, nvme0n1, mapper/mpatha)
	Extra     []string `json:"extra,omitempty"` // /dev/disk/by-id links relative to /dev
	Size      int64    `json:"size,omitempty"`  // MiB
	FreeSpace int64    `json:"free_space,omitempty"`
	Bootable  bool     `json:"bootable,omitempty"`

	// vg
	Label        string `json:"label,omitempty"`
	MinSize      int64  `json:"min_size,omitempty"`
	AllocateSize string `json:"_allocate_size,omitempty"`

	Volumes []Volume `json:"volumes"`
}

// Volume types.
const (
	VolBoot        = "boot"          // Nailgun accounting for bios_grub+UEFI+configdrive; ignored
	VolLVMMetaPool = "lvm_meta_pool" // Nailgun accounting; ignored
	VolPartition   = "partition"
	VolRaid        = "raid"
	VolPV          = "pv"
	VolLV          = "lv" // only inside a vg space
)

// Volume is one entry of a space's volumes.
type Volume struct {
	Type          string `json:"type"`
	Size          int64  `json:"size"`                  // MiB; <= 0 means absent
	Mount         string `json:"mount,omitempty"`       // absolute path, "swap" or "none"
	FileSystem    string `json:"file_system,omitempty"` // ext2|ext3|ext4|xfs|swap|none (also vfat)
	Name          string `json:"name,omitempty"`
	PartitionGUID string `json:"partition_guid,omitempty"` // GPT type GUID
	DiskLabel     string `json:"disk_label,omitempty"`
	KeepData      bool   `json:"keep_data,omitempty"`
	VG            string `json:"vg,omitempty"`            // pv
	LVMMetaSize   int64  `json:"lvm_meta_size,omitempty"` // pv, MiB
}

// ImageData is one ks_meta.image_data entry.
type ImageData struct {
	URI       string `json:"uri"`
	Format    string `json:"format"`    // filesystem in the image: ext2|ext3|ext4|xfs
	Container string `json:"container"` // gzip|raw (imprint also accepts zstd|xz)
	// SHA256 / SHA512 are imprint's extension: the hex digest of the image
	// file as served (what sha256sum prints), verified while it is written.
	SHA256 string `json:"sha256,omitempty"`
	SHA512 string `json:"sha512,omitempty"`
	// Mirrors are imprint's extension: more URLs of the same image file
	// (a rack's nginx, the controller), tried in turn when a download
	// from the one in use fails (a multi-frame zstd image resumes at the
	// frame that broke on the next mirror).
	Mirrors []string `json:"mirrors,omitempty"`
}

// UserAccount is one ks_meta.user_accounts entry. Password is plaintext as
// Nailgun sends it; it is only ever stored hashed.
type UserAccount struct {
	Name     string   `json:"name"`
	Password string   `json:"password,omitempty"`
	Homedir  string   `json:"homedir,omitempty"`
	Shell    string   `json:"shell,omitempty"`
	Sudo     []string `json:"sudo,omitempty"`
	SSHKeys  []string `json:"ssh_keys,omitempty"`
}

// RepoSetup is ks_meta.repo_setup.
type RepoSetup struct {
	Repos []Repo `json:"repos,omitempty"`
}

// Repo is one apt repository.
type Repo struct {
	Name     string `json:"name"`
	Type     string `json:"type,omitempty"`
	URI      string `json:"uri"`
	Suite    string `json:"suite,omitempty"`
	Section  string `json:"section,omitempty"`
	Priority *int   `json:"priority,omitempty"`
}

// PartitionScheme is fuel-agent's object model serialized, as the
// nailgun_simple driver reads it from the top-level "partitioning" key and as
// `imprint plan -o json` prints it.
type PartitionScheme struct {
	Parteds []Parted         `json:"parteds"`
	MDs     []MultipleDevice `json:"mds"`
	PVs     []PhysicalVolume `json:"pvs"`
	VGs     []VolumeGroup    `json:"vgs"`
	LVs     []LogicalVolume  `json:"lvs"`
	FSs     []FileSystem     `json:"fss"`
}

// Parted is one disk's partition table.
type Parted struct {
	Name              string      `json:"name"`  // disk device, /dev/sda
	Label             string      `json:"label"` // gpt
	Partitions        []Partition `json:"partitions"`
	InstallBootloader bool        `json:"install_bootloader"`
}

// Partition is one partition, boundaries in MiB.
type Partition struct {
	Name          string   `json:"name"`   // /dev/sda3
	Count         int      `json:"count"`  // partition number
	Device        string   `json:"device"` // /dev/sda
	Begin         int64    `json:"begin"`
	End           int64    `json:"end"`
	PartitionType string   `json:"partition_type,omitempty"` // primary
	Flags         []string `json:"flags"`
	GUID          *string  `json:"guid"`
	Configdrive   bool     `json:"configdrive"`
	KeepData      bool     `json:"keep_data,omitempty"`
}

// MultipleDevice is an md array.
type MultipleDevice struct {
	Name     string   `json:"name"`  // /dev/md0
	Level    string   `json:"level"` // mirror
	Devices  []string `json:"devices"`
	Spares   []string `json:"spares"`
	Metadata string   `json:"metadata,omitempty"` // default (1.2) or 0.90
	KeepData bool     `json:"keep_data,omitempty"`
}

// PhysicalVolume is an LVM PV.
type PhysicalVolume struct {
	Name           string `json:"name"`
	MetadataSize   int64  `json:"metadatasize"` // MiB
	MetadataCopies int    `json:"metadatacopies"`
	KeepData       bool   `json:"keep_data,omitempty"`
}

// VolumeGroup is an LVM VG.
type VolumeGroup struct {
	Name     string   `json:"name"`
	PVNames  []string `json:"pvnames"`
	KeepData bool     `json:"keep_data,omitempty"`
}

// LogicalVolume is an LVM LV.
type LogicalVolume struct {
	Name     string `json:"name"`
	VGName   string `json:"vgname"`
	Size     int64  `json:"size"` // MiB
	KeepData bool   `json:"keep_data,omitempty"`
}

// FileSystem is a filesystem to create (or an image target).
type FileSystem struct {
	Device    string `json:"device"`
	Mount     string `json:"mount"` // path, "swap" or "" (none)
	FSType    string `json:"fs_type"`
	FSOptions string `json:"fs_options"`
	FSLabel   string `json:"fs_label"`
	KeepData  bool   `json:"keep_data,omitempty"`
}
