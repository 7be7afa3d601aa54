// Package inventory describes the node's hardware as the agent reports it
// (disks with stable names, NICs, CPU, memory, DMI) and collects it from sysfs
// and the devices themselves, without udev: the bootstrap ramdisk has none.
//
// # Disks
//
// CollectDisks lists /sys/block, leaving out what is not a disk to lay a
// layout onto: loop, ram, zram, nbd, md and dm devices (md and dm appear as
// Holders of the disks and partitions they sit on), CD/DVD drives (sr*, SCSI
// type 5), hidden NVMe multipath paths, read-only devices and devices without
// a medium. DescribeDisk describes one device by name whatever it is, so a
// document naming "loop3" gets exactly that device.
//
// Sizes come from sysfs (size × 512, queue/logical_block_size,
// queue/physical_block_size, queue/rotational, removable, ro), partitions
// from <disk>/<part>/{partition,start,size}, holders from holders/.
// Signatures are probed by ProbeSignatures on the disk's own node, opened
// read-only, for the disk and for each partition at its offset (partition
// nodes are not needed).
//
// # Names as udev would give them
//
// ByID and ByPath are the /dev/disk/by-id and /dev/disk/by-path links that
// systemd-udevd 252 (Debian 12) makes with 60-persistent-storage.rules and its
// path_id, ata_id and scsi_id helpers, computed from sysfs alone, so the
// "extra" and "id" names a Nailgun database recorded match on the real
// machine:
//
//   - virtio-blk: virtio-<serial>; pci-<addr> and the deprecated
//     virtio-pci-<addr>.
//   - ATA (libata, or a SAS HBA's translation layer, vendor "ATA"):
//     ata-<model>_<serial> and wwn-0x<wwn> from IDENTIFY DEVICE, which the
//     kernel exposes as VPD page 0x89 (or, without it, from the SAT
//     designators of page 0x83); by-path pci-<addr>-ata-<port>.<target>
//     (ata-<port>.<pmp>.0 behind a port multiplier) plus the compat name
//     pci-<addr>-ata-<port>; Debian 12 links both, and both are listed.
//   - SCSI/SAS: scsi_id's choice among the page 0x83 designators (NAA
//     registered-extended, NAA registered, other NAA, EUI-64, T10, vendor
//     specific with vendor and model prefixed), page 0x80 as the fallback:
//     scsi-3<naa>, scsi-0QEMU_QEMU_HARDDISK_<serial>, wwn-0x<naa>; by-path
//     pci-<addr>-sas-phy<N>-lun-0, -sas-exp<addr>-phy<N>-lun-0 behind an
//     expander, -sas-<sas address>-lun-0 on a wide port, -scsi-H:B:T:L for
//     other hosts (virtio-scsi); path_id's fc- and ip-...-iscsi- forms are
//     followed too, without a fixture.
//   - NVMe: nvme-<wwid> (eui., uuid., nvme. forms as the kernel gives the
//     wwid), nvme-<model>_<serial> and nvme-<model>_<serial>_<nsid>; by-path
//     pci-<addr>-nvme-<nsid>, also with native NVMe multipath (the namespace
//     under devices/virtual/nvme-subsystem).
//
// The string rules are udev's (udev_replace_whitespace, udev_replace_chars,
// $attr trimming, OPTIONS="string_escape=replace"). The loop-tier test runs
// udevadm 252 itself on the test fixtures in a private mount namespace and
// compares. Not computed: USB disks' usb-... by-id names (usb_id reads USB
// descriptors), mmc/memstick names, by-uuid/by-label/by-partuuid (those name
// filesystems and partitions, not disks) and by-diskseq (not stable across
// boots). LegacyByID and LegacyByPath hold the names older udev gave (scsi-
// SATA_<inquiry model>_<serial>, pci-...-scsi-H:B:T:L for an ATA disk, the
// latter only when no other disk would share it), for Nailgun data recorded
// by an old bootstrap.
//
// # Everything else
//
// NICs are the interfaces with a device link (lo, bridges, bonds, VLANs are
// left out) with MAC, carrier, speed and driver; CPU is /proc/cpuinfo and
// the sysfs topology; memory is MemTotal; DMI is /sys/class/dmi/id, whose
// unreadable files leave their fields empty.
package inventory
