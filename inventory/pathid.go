package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pathID computes what systemd-udevd 252's path_id builtin (Debian 12) sets
// for a block device: ID_PATH and, for ATA disks, ID_PATH_ATA_COMPAT. Both
// are empty when udev would give the device no by-path name (a virtual
// device, an unknown parent or transport).
//
// The walk follows src/udev/udev-builtin-path_id.c: from the device up the
// chain of parents, each known subsystem prepends its element (pci-<addr>,
// scsi-H:B:T:L, ata-<port>.<target>, sas-..., nvme-<nsid>, usb-0:<port>) and
// consecutive parents of the same subsystem are skipped. Two differences
// from newer systemd are deliberate, to match Debian 12: ATA disks are
// ata-<port>.<target> (ata-<port>.<pmp>.0 behind a port multiplier) with
// the old ata-<port> name as the compat link, and there are no
// -nvme-<nsid> names for NVMe-oF.
func pathID(s sysfs, dev device) (idPath, ataCompat string) {
	var path, compat []string // elements, innermost last
	prepend := func(p *[]string, e string) { *p = append([]string{e}, *p...) }
	supportedTransport, supportedParent := false, false
	compatStarted := false

	parent, ok := dev, true
	for ok {
		subsys := parent.subsystem()
		switch subsys {
		case "scsi":
			var e string
			var ataPort string
			parent, e, ataPort, ok = pathSCSI(s, parent, &supportedParent)
			if !ok {
				return "", ""
			}
			if e != "" {
				prepend(&path, e)
			}
			if ataPort != "" {
				prepend(&compat, "ata-"+ataPort)
				compatStarted = true
			}
			supportedTransport = true
		case "usb":
			if dt := parent.devtype(); dt == "usb_interface" || dt == "usb_device" {
				if _, port, found := strings.Cut(parent.sysname(), "-"); found {
					parent = skipSubsystem(parent, "usb")
					prepend(&path, "usb-0:"+port)
				}
			}
			supportedTransport = true
		case "pci":
			prepend(&path, "pci-"+parent.sysname())
			if compatStarted {
				prepend(&compat, "pci-"+parent.sysname())
			}
			parent = skipSubsystem(parent, "pci")
			supportedParent = true
		case "platform":
			prepend(&path, "platform-"+parent.sysname())
			if compatStarted {
				prepend(&compat, "platform-"+parent.sysname())
			}
			parent = skipSubsystem(parent, "platform")
			supportedTransport, supportedParent = true, true
		case "xen":
			prepend(&path, "xen-"+parent.sysname())
			parent = skipSubsystem(parent, "xen")
			supportedParent = true
		case "virtio":
			parent = skipSubsystem(parent, "virtio")
			supportedTransport = true
		case "nvme", "nvme-subsystem":
			if nsid, found := dev.attr("nsid"); found {
				nsid = strings.TrimSpace(nsid)
				prepend(&path, "nvme-"+nsid)
				if compatStarted {
					prepend(&compat, "nvme-"+nsid)
				}
				if subsys == "nvme-subsystem" {
					// Native NVMe multipath: the namespace hangs below
					// devices/virtual/nvme-subsystem; continue from the
					// controller (nvme0 for nvme0n1) on the PCI branch.
					ctrl, found := nvmeController(s, dev.sysname())
					if !found {
						return "", ""
					}
					parent = ctrl
				}
				parent = skipSubsystem(parent, subsys)
				supportedTransport, supportedParent = true, true
			}
		case "cciss", "bcma", "serio", "acpi", "scm", "ccw", "ccwgroup", "ap", "iucv", "spi":
			// Subsystems udev names but no provisioning target of ours
			// sits on: better no by-path name than a wrong one.
			return "", ""
		}
		parent, ok = parent.parent()
	}
	if len(path) == 0 || !supportedParent || (dev.subsystem() == "block" && !supportedTransport) {
		return "", ""
	}
	idPath = strings.Join(path, "-")
	if compatStarted {
		ataCompat = strings.Join(compat, "-")
	}
	return idPath, ataCompat
}

// skipSubsystem returns the outermost device of the run of consecutive
// parents in subsys that starts at d.
func skipSubsystem(d device, subsys string) device {
	for {
		p, ok := d.parent()
		if !ok || p.subsystem() != subsys {
			return d
		}
		d = p
	}
}

// nvmeController finds the nvme-class controller of a namespace name
// (nvme0n1 → nvme0).
func nvmeController(s sysfs, ns string) (device, bool) {
	rest, ok := strings.CutPrefix(ns, "nvme")
	if !ok {
		return device{}, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	return s.classDevice("nvme", "nvme"+rest[:i])
}

// pathSCSI is handle_scsi: it returns the device to continue the walk from,
// the element to prepend (may be empty) and, for ATA, the port number for
// the compat name. ok is false when udev would give up (handle_* returned
// NULL), which ends the walk with whatever was composed so far: we then
// give no name at all.
func pathSCSI(s sysfs, parent device, supportedParent *bool) (next device, elem, ataPort string, ok bool) {
	if parent.devtype() != "scsi_device" {
		return parent, "", "", true
	}
	if id, found := parent.attr("ieee1394_id"); found {
		*supportedParent = true
		return skipSubsystem(parent, "scsi"), "ieee1394-0x" + id, "", true
	}
	name := parent.path
	switch {
	case strings.Contains(name, "/rport-"):
		*supportedParent = true
		t, found := parent.parentWith("scsi", "scsi_target")
		if !found {
			return device{}, "", "", false
		}
		fc, found := s.classDevice("fc_transport", t.sysname())
		if !found {
			return device{}, "", "", false
		}
		port, found := fc.attr("port_name")
		if !found {
			return device{}, "", "", false
		}
		return parent, "fc-" + port + "-" + lunName(parent), "", true
	case strings.Contains(name, "/end_device-"):
		*supportedParent = true
		e, found := pathSAS(s, parent)
		if !found {
			return device{}, "", "", false
		}
		return parent, e, "", true
	case strings.Contains(name, "/session"):
		*supportedParent = true
		e, found := pathISCSI(s, parent)
		if !found {
			return device{}, "", "", false
		}
		return parent, e, "", true
	case strings.Contains(name, "/ata"):
		e, port, found := pathATA(s, parent)
		if !found {
			return device{}, "", "", false
		}
		return parent, e, port, true
	case strings.Contains(name, "/vmbus_"), strings.Contains(name, "/VMBUS"):
		// Hyper-V: not a target of ours; udev's vmbus-<guid>-lun-N is left out.
		return device{}, "", "", false
	}
	host, e, found := pathSCSIDefault(parent)
	if !found {
		return device{}, "", "", false
	}
	return host, e, "", true
}

// hbtl parses a SCSI device name "H:B:T:L".
func hbtl(name string) (h, b, t, l int, ok bool) {
	parts := strings.Split(name, ":")
	if len(parts) != 4 {
		return 0, 0, 0, 0, false
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return 0, 0, 0, 0, false
		}
		n[i] = v
	}
	return n[0], n[1], n[2], n[3], true
}

// lunName is format_lun_number: lun-N for N < 256, the flat-space form otherwise.
func lunName(d device) string {
	lun, _ := strconv.ParseUint(d.sysnum(), 10, 64)
	if lun < 256 {
		return fmt.Sprintf("lun-%d", lun)
	}
	return fmt.Sprintf("lun-0x%04x%04x00000000", lun&0xffff, (lun>>16)&0xffff)
}

// pathATA is handle_scsi_ata of systemd 252.
func pathATA(s sysfs, parent device) (elem, port string, ok bool) {
	_, b, t, _, ok := hbtl(parent.sysname())
	if !ok {
		return "", "", false
	}
	host, ok := parent.parentWith("scsi", "scsi_host")
	if !ok {
		return "", "", false
	}
	hp, ok := host.parent()
	if !ok {
		return "", "", false
	}
	ata, ok := s.classDevice("ata_port", hp.sysname())
	if !ok {
		return "", "", false
	}
	port, ok = ata.attr("port_no")
	if !ok {
		return "", "", false
	}
	if b != 0 {
		// Behind a port multiplier the bus is the PMP port.
		return fmt.Sprintf("ata-%s.%d.0", port, b), port, true
	}
	return fmt.Sprintf("ata-%s.%d", port, t), port, true
}

// pathSAS is handle_scsi_sas (and its wide-port fallback).
func pathSAS(s sysfs, parent device) (string, bool) {
	target, ok := parent.parentWith("scsi", "scsi_target")
	if !ok {
		return "", false
	}
	endDev, ok := target.parent()
	if !ok {
		return "", false
	}
	targetSAS, ok := s.classDevice("sas_device", endDev.sysname())
	if !ok {
		return "", false
	}
	port, ok := endDev.parent()
	if !ok {
		return "", false
	}
	portSAS, ok := s.classDevice("sas_port", port.sysname())
	if !ok {
		return "", false
	}
	phys, ok := portSAS.attr("num_phys")
	if !ok {
		return "", false
	}
	lun := lunName(parent)
	if phys != "1" {
		addr, ok := targetSAS.attr("sas_address")
		if !ok {
			return "", false
		}
		return "sas-" + addr + "-" + lun, true
	}
	phy, ok := targetSAS.attr("phy_identifier")
	if !ok {
		return "", false
	}
	exp, ok := port.parent()
	if !ok {
		return "", false
	}
	if expSAS, found := s.classDevice("sas_device", exp.sysname()); found {
		addr, ok := expSAS.attr("sas_address")
		if !ok {
			return "", false
		}
		return "sas-exp" + addr + "-phy" + phy + "-" + lun, true
	}
	return "sas-phy" + phy + "-" + lun, true
}

// pathISCSI is handle_scsi_iscsi.
func pathISCSI(s sysfs, parent device) (string, bool) {
	t, ok := parent.parent()
	for ok && !strings.HasPrefix(t.sysname(), "session") {
		t, ok = t.parent()
	}
	if !ok {
		return "", false
	}
	sess, ok := s.classDevice("iscsi_session", t.sysname())
	if !ok {
		return "", false
	}
	target, ok := sess.attr("targetname")
	if !ok {
		return "", false
	}
	conn, ok := s.classDevice("iscsi_connection", "connection"+t.sysnum()+":0")
	if !ok {
		return "", false
	}
	addr, ok1 := conn.attr("persistent_address")
	port, ok2 := conn.attr("persistent_port")
	if !ok1 || !ok2 {
		return "", false
	}
	return "ip-" + addr + ":" + port + "-iscsi-" + target + "-" + lunName(parent), true
}

// pathSCSIDefault is handle_scsi_default: scsi-H:B:T:L with the host number
// rebased to the lowest hostN beside the host (the controller's first host
// is 0). It returns the host to continue from.
func pathSCSIDefault(parent device) (device, string, bool) {
	host, ok := parent.parentWith("scsi", "scsi_host")
	if !ok {
		return device{}, "", false
	}
	h, b, t, l, ok := hbtl(parent.sysname())
	if !ok {
		return device{}, "", false
	}
	base := -1
	ents, err := os.ReadDir(filepath.Dir(host.path))
	if err != nil {
		return device{}, "", false
	}
	for _, e := range ents {
		n, found := strings.CutPrefix(e.Name(), "host")
		if !found || !(e.IsDir() || e.Type()&os.ModeSymlink != 0) {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if base == -1 || i < base {
			base = i
		}
	}
	if base == -1 {
		return host, "", true
	}
	return host, fmt.Sprintf("scsi-%d:%d:%d:%d", h-base, b, t, l), true
}

// legacySCSIPath is the by-path name udev gave ATA disks before it learnt
// their ports (and what handle_scsi_default still gives every other SCSI
// disk): <ID_PATH of the controller>-scsi-H:B:T:L. Nailgun, running in a
// bootstrap with an older udev, may have recorded it as a disk's id.
func legacySCSIPath(s sysfs, dev device) string {
	sd, ok := dev.parentWith("scsi", "scsi_device")
	if !ok || !strings.Contains(sd.path, "/ata") {
		return ""
	}
	host, e, ok := pathSCSIDefault(sd)
	if !ok || e == "" {
		return ""
	}
	p, ok := host.parent()
	for ok && p.subsystem() != "pci" {
		p, ok = p.parent()
	}
	if !ok {
		return ""
	}
	return "pci-" + p.sysname() + "-" + e
}
