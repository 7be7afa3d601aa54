package inventory

// Inventory is the node's hardware, as `imprint inventory` prints it and the
// agent serves it at /v1/inventory and posts it to the controller.
type Inventory struct {
	Disks  []Disk `json:"disks"`
	NICs   []NIC  `json:"nics"`
	CPU    CPU    `json:"cpu"`
	Memory Memory `json:"memory"`
	DMI    DMI    `json:"dmi"`
	// Firmware: boot mode, Secure Boot and NVRAM boot entries (firmware.go).
	Firmware Firmware `json:"firmware"`
}

// Disk is one whole disk.
type Disk struct {
	Name               string      `json:"name"` // kernel name relative to /dev: sda, nvme0n1, mapper/mpatha
	Path               string      `json:"path"` // /dev/sda
	SizeBytes          int64       `json:"size_bytes"`
	LogicalSectorSize  int         `json:"logical_sector_size"`
	PhysicalSectorSize int         `json:"physical_sector_size"`
	Rotational         bool        `json:"rotational"`
	Removable          bool        `json:"removable"`
	ReadOnly           bool        `json:"read_only"`
	Vendor             string      `json:"vendor,omitempty"`
	Model              string      `json:"model,omitempty"`
	Serial             string      `json:"serial,omitempty"`
	WWN                string      `json:"wwn,omitempty"`
	ByID               []string    `json:"by_id,omitempty"`   // absolute /dev/disk/by-id/... names, computed as udev would
	ByPath             []string    `json:"by_path,omitempty"` // absolute /dev/disk/by-path/... names
	Partitions         []Partition `json:"partitions,omitempty"`
	Holders            []string    `json:"holders,omitempty"`    // md*, dm-* holding the disk or its partitions
	Signatures         []string    `json:"signatures,omitempty"` // gpt, mbr, ext4, xfs, LVM2_member, linux_raid_member ...

	// LegacyByID and LegacyByPath are names older udev releases gave the
	// same disk (scsi-SATA_<model>_<serial>, pci-...-scsi-H:B:T:L for an
	// ATA disk) that a Nailgun database filled from an old bootstrap may
	// hold; match them after ByID and ByPath.
	LegacyByID   []string `json:"legacy_by_id,omitempty"`
	LegacyByPath []string `json:"legacy_by_path,omitempty"`
	// ProbeError says why Signatures could not be read (node missing, I/O error).
	ProbeError string `json:"probe_error,omitempty"`
	// Bus is how the disk is attached, as udev's ID_BUS names it where it
	// has a name: ata, scsi, usb, nvme, virtio ("" when unknown).
	Bus string `json:"bus,omitempty"`
	// Kind is "" for a plain disk, "multipath" for a dm-multipath map
	// (Name mapper/<name>, WWN its WWID, Slaves its paths: sda, sdb) or
	// "md" for an md array (Slaves its members).
	Kind   string   `json:"kind,omitempty"`
	Slaves []string `json:"slaves,omitempty"`
	// MultipathOf names the multipath disk a path belongs to (DescribeDisk
	// of a path); paths are not listed by CollectDisks.
	MultipathOf string `json:"multipath_of,omitempty"`
}

// Partition is an existing partition of a disk.
type Partition struct {
	Name       string   `json:"name"` // sda1
	Number     int      `json:"number"`
	StartBytes int64    `json:"start_bytes"`
	SizeBytes  int64    `json:"size_bytes"`
	Holders    []string `json:"holders,omitempty"`
	Signatures []string `json:"signatures,omitempty"`
}

// NIC is one network interface.
type NIC struct {
	Name      string `json:"name"`
	MAC       string `json:"mac"`
	Link      bool   `json:"link"`
	SpeedMbps int    `json:"speed_mbps,omitempty"`
	Driver    string `json:"driver,omitempty"`
}

// CPU summarizes the processors.
type CPU struct {
	Model   string `json:"model,omitempty"`
	Count   int    `json:"count"` // logical CPUs
	Sockets int    `json:"sockets,omitempty"`
	Arch    string `json:"arch"`
}

// Memory is the installed RAM.
type Memory struct {
	TotalBytes int64 `json:"total_bytes"`
}

// DMI is the system's identity from /sys/class/dmi/id.
type DMI struct {
	Vendor  string `json:"vendor,omitempty"`
	Product string `json:"product,omitempty"`
	Serial  string `json:"serial,omitempty"`
	UUID    string `json:"uuid,omitempty"`
}
