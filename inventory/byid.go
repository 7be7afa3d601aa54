package inventory

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// identity is what udev's rules and the ata_id / scsi_id helpers learn about
// a disk, computed here from sysfs alone: no udev, no SG_IO.
type identity struct {
	vendor, model, serial, wwn string // for the inventory fields
	bus                        string
	byID                       []string
	legacyByID                 []string
}

var (
	nvmeNSRe = regexp.MustCompile(`^nvme[0-9]+n[0-9]+$`)
	vdRe     = regexp.MustCompile(`^vd.*[^0-9]$`)
	sdRe     = regexp.MustCompile(`^sd.*[^0-9]$`)
)

// diskIdentity computes the by-id names 60-persistent-storage.rules of
// systemd 252 gives the whole disk dev (kernel name name), with the vendor,
// model, serial and WWN behind them.
func diskIdentity(s sysfs, dev device, name string) identity {
	var id identity
	switch {
	case nvmeNSRe.MatchString(name):
		id = nvmeIdentity(dev)
		id.bus = "nvme"
	case vdRe.MatchString(name):
		id.bus = "virtio"
		if v, _, ok := attrs(dev, "serial"); ok {
			serial := attrSubst(v)
			id.serial = serial
			id.byID = append(id.byID, devLink("disk/by-id/virtio-"+replaceWhitespace(serial), "/ "))
		}
	case sdRe.MatchString(name):
		id = sdIdentity(dev)
	}
	if id.wwn == "" {
		id.wwn = kernelWWN(dev)
	}
	return id
}

// kernelWWN is the kernel's own pick among the VPD designators (the wwid
// attribute), when it is a world wide name: naa.<hex> as 0x<hex> (udev's
// spelling), eui.<hex> as is. A t10. vendor id is a name, not a WWN.
func kernelWWN(dev device) string {
	for _, p := range []string{"wwid", "device/wwid"} {
		v := dev.fs.attrTrim(dev.path, p)
		if h, ok := strings.CutPrefix(v, "naa."); ok && h != "" {
			return "0x" + strings.ToLower(h)
		}
		if strings.HasPrefix(v, "eui.") {
			return v
		}
	}
	return ""
}

// attrs is udev's ATTRS{name}=="?*": the first of dev and its parents whose
// attribute, trailing whitespace removed, is not empty. It returns the raw
// value (newline removed) and the device it was found on.
func attrs(dev device, name string) (string, device, bool) {
	d, ok := dev, true
	for ok {
		if v, found := d.attr(name); found && strings.TrimRight(v, " \t\n\r\v\f") != "" {
			return v, d, true
		}
		d, ok = d.parent()
	}
	return "", device{}, false
}

// nvmeIdentity follows the NVMe block of the rules: nvme-<wwid>,
// nvme-<model>_<serial> and nvme-<model>_<serial>_<nsid>.
func nvmeIdentity(dev device) identity {
	var id identity
	if w, ok := dev.attr("wwid"); ok && strings.TrimRight(w, " \t\n\r\v\f") != "" {
		id.wwn = attrSubst(w)
		id.byID = append(id.byID, devLink("disk/by-id/nvme-"+replaceWhitespace(id.wwn), "/ "))
	}
	serial, _, okS := attrs(dev, "serial")
	model, _, okM := attrs(dev, "model")
	if okS {
		id.serial = attrSubst(serial)
	}
	if okM {
		id.model = attrSubst(model)
	}
	if okS && okM {
		// OPTIONS="string_escape=replace": ENV values get whitespace and
		// unsafe characters replaced one for one, and it stays in force for
		// the later links.
		base := replaceChars(id.model+"_"+id.serial, "")
		id.byID = append(id.byID, devLink("disk/by-id/nvme-"+replaceWhitespace(base), "/"))
		if nsid, ok := dev.attr("nsid"); ok && strings.TrimSpace(nsid) != "" {
			withNS := replaceChars(id.model+"_"+id.serial+"_"+attrSubst(nsid), "")
			id.byID = append(id.byID, devLink("disk/by-id/nvme-"+replaceWhitespace(withNS), "/"))
		}
	}
	return id
}

// sdIdentity covers SCSI disks: ata_id for vendor "ATA" (SATA behind libata
// or a SAS HBA's translation layer), scsi_id otherwise. USB disks get none:
// their names come from usb_id and the USB descriptors, not sysfs.
func sdIdentity(dev device) identity {
	var id identity
	sd, ok := dev.parentWith("scsi", "scsi_device")
	if !ok {
		return id
	}
	if _, found := dev.parentWith("usb", ""); found {
		id.bus = "usb"
		return id
	}
	id.bus = "scsi"
	vendor, _ := sd.attr("vendor")
	model, _ := sd.attr("model")
	pg80 := dev.fs.attrBytes(sd.path, "vpd_pg80")
	pg83 := dev.fs.attrBytes(sd.path, "vpd_pg83")
	id.vendor = strings.TrimSpace(vendor)
	id.model = strings.TrimSpace(model)

	if strings.TrimRight(vendor, " \t\n\r\v\f") == "ATA" {
		id.bus = "ata"
		ata, ok := ataIdentify(dev.fs.attrBytes(sd.path, "vpd_pg89"), pg83)
		if !ok {
			return id
		}
		id.model, id.serial = ata.rawModel, ata.rawSerial
		serial := ata.model
		if ata.serial != "" {
			serial += "_" + ata.serial
		}
		id.byID = append(id.byID, devLink("disk/by-id/ata-"+serial, "/ "))
		if ata.wwn != 0 {
			id.wwn = fmt.Sprintf("0x%x", ata.wwn)
			id.byID = append(id.byID, devLink("disk/by-id/wwn-"+id.wwn, "/ "))
		}
		// udev before the ata_id rule took precedence (and Fuel's
		// bootstrap) also linked scsi-SATA_<inquiry model>_<serial>, from
		// scsi_id's page 0x80 identifier.
		if sn, _, ok := scsiPage80(pg80, vendor, model); ok {
			id.legacyByID = append(id.legacyByID, devLink("disk/by-id/scsi-"+replaceChars(replaceWhitespace(sn), ""), "/ "))
		}
		return id
	}

	sid, ok := scsiSerial(pg83, pg80, vendor, model)
	if !ok {
		return id
	}
	if _, short, ok := scsiPage80(pg80, vendor, model); ok {
		id.serial = strings.TrimSpace(short) // the unit serial number
	} else if !strings.HasPrefix(sid.serial, "3") {
		id.serial = strings.TrimSpace(sid.serialShort) // a vendor's designator, not a WWN
	}
	id.byID = append(id.byID, devLink("disk/by-id/scsi-"+replaceChars(replaceWhitespace(sid.serial), ""), "/ "))
	if sid.wwn != "" {
		id.wwn = "0x" + sid.wwn + sid.wwnExt
		id.byID = append(id.byID, devLink("disk/by-id/wwn-"+id.wwn, "/ "))
	}
	return id
}

// ataIdent is the part of ATA IDENTIFY DEVICE that names a disk.
type ataIdent struct {
	model, serial       string // whitespace replaced, as ata_id prints ID_MODEL / ID_SERIAL_SHORT
	rawModel, rawSerial string // trimmed, for the inventory fields
	wwn                 uint64
}

// ataIdentify reads IDENTIFY DEVICE from VPD page 0x89 (ATA Information,
// which carries the 512 bytes verbatim from offset 60) or, failing that,
// from the SAT designators of page 0x83 (T10 "ATA" + model + serial, and
// the NAA WWN), and names the disk the way ata_id does.
func ataIdentify(pg89, pg83 []byte) (ataIdent, bool) {
	if len(pg89) >= 60+512 && pg89[1] == 0x89 {
		idb := pg89[60 : 60+512]
		w := func(i int) uint16 { return binary.LittleEndian.Uint16(idb[2*i:]) }
		str := func(first, n int) string {
			b := make([]byte, 0, 2*n)
			for i := first; i < first+n; i++ {
				b = append(b, byte(w(i)>>8), byte(w(i)))
			}
			return string(b)
		}
		var a ataIdent
		a.setStrings(str(27, 20), str(10, 10))
		if w(108)&0xf000 == 0x5000 {
			a.wwn = uint64(w(108))<<48 | uint64(w(109))<<32 | uint64(w(110))<<16 | uint64(w(111))
		}
		return a, a.model != ""
	}
	var a ataIdent
	found := false
	for _, d := range vpd83Descriptors(pg83) {
		switch {
		case d.codeSet == 2 && d.idType == 1 && d.assoc == 0 && len(d.id) >= 8+40 && string(d.id[:8]) == "ATA     ":
			serial := ""
			if len(d.id) >= 68 {
				serial = string(d.id[48:68])
			}
			a.setStrings(string(d.id[8:48]), serial)
			found = a.model != ""
		case d.codeSet == 1 && d.idType == 3 && d.assoc == 0 && len(d.id) == 8 && d.id[0]&0xf0 == 0x50:
			a.wwn = binary.BigEndian.Uint64(d.id)
		}
	}
	return a, found
}

func (a *ataIdent) setStrings(model, serial string) {
	model, serial = trimNUL(model), trimNUL(serial)
	a.model, a.serial = replaceChars(replaceWhitespace(model), ""), replaceChars(replaceWhitespace(serial), "")
	a.rawModel, a.rawSerial = strings.Join(strings.Fields(model), " "), strings.TrimSpace(serial)
}

func trimNUL(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// vpdDescriptor is one designation descriptor of VPD page 0x83.
type vpdDescriptor struct {
	raw                    []byte // the descriptor, header included
	codeSet, idType, assoc byte
	id                     []byte
}

func vpd83Descriptors(pg []byte) []vpdDescriptor {
	if len(pg) < 4 || pg[1] != 0x83 {
		return nil
	}
	end := 4 + int(binary.BigEndian.Uint16(pg[2:4]))
	if end > len(pg) {
		end = len(pg)
	}
	var ds []vpdDescriptor
	for j := 4; j+4 <= end; {
		n := int(pg[j+3])
		if j+4+n > end {
			break
		}
		ds = append(ds, vpdDescriptor{
			raw:     pg[j : j+4+n],
			codeSet: pg[j] & 0x0f,
			idType:  pg[j+1] & 0x0f,
			assoc:   (pg[j+1] & 0x30) >> 4,
			id:      pg[j+4 : j+4+n],
		})
		j += 4 + n
	}
	return ds
}

// scsiID is scsi_id's result: ID_SERIAL before whitespace replacement, the
// short serial and the NAA WWN split as ID_WWN and ID_WWN_VENDOR_EXTENSION.
type scsiID struct {
	serial, serialShort string
	wwn, wwnExt         string
}

// scsi_id's designator preference (id_search_list in scsi_serial.c).
var scsiSearch = []struct {
	idType  byte
	naa     int // -1: any
	codeSet byte
}{
	{3, 6, 1}, {3, 6, 2}, {3, 5, 1}, {3, 5, 2}, {3, -1, 1}, {3, -1, 2},
	{2, -1, 1}, {2, -1, 2}, {1, -1, 1}, {1, -1, 2}, {0, -1, 1}, {0, -1, 2},
}

// scsiSerial is scsi_id --whitelisted on VPD pages read from sysfs: the best
// designator of page 0x83, else page 0x80 prefixed with 'S' + vendor + model.
func scsiSerial(pg83, pg80 []byte, vendor, model string) (scsiID, bool) {
	const hex = "0123456789abcdef"
	vm := padTo(vendor, 8) + padTo(model, 16)
	if len(pg83) >= 7 && pg83[1] == 0x83 && pg83[6] != 0 {
		// Pre-SPC-3 reply (some old EMC arrays): a binary NAA WWN right
		// after the header.
		n := int(pg83[3])
		if 4+n <= len(pg83) {
			var b strings.Builder
			for _, c := range pg83[4 : 4+n] {
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0x0f])
			}
			return scsiID{serial: "3" + b.String(), serialShort: b.String()}, true
		}
	}
	ds := vpd83Descriptors(pg83)
	for _, want := range scsiSearch {
		for _, d := range ds {
			if d.assoc != 0 || d.idType != want.idType || d.codeSet != want.codeSet {
				continue
			}
			if want.naa >= 0 && len(d.id) > 0 && int(d.id[0]>>4) != want.naa {
				continue
			}
			if want.naa >= 0 && len(d.id) == 0 {
				continue
			}
			var b strings.Builder
			if d.codeSet == 2 {
				b.Write(d.id)
			} else {
				for _, c := range d.id {
					b.WriteByte(hex[c>>4])
					b.WriteByte(hex[c&0x0f])
				}
			}
			short := trimNUL(b.String())
			id := scsiID{serialShort: short}
			prefix := string(hex[d.idType])
			if d.idType == 0 {
				prefix += vm
			}
			id.serial = prefix + short
			if d.idType == 3 {
				id.wwn = short[:min(16, len(short))]
				if len(short) > 16 {
					id.wwnExt = short[16:min(32, len(short))]
				}
			}
			return id, true
		}
	}
	if sn, short, ok := scsiPage80(pg80, vendor, model); ok {
		return scsiID{serial: sn, serialShort: short}, true
	}
	return scsiID{}, false
}

// scsiPage80 is scsi_id's page 0x80 identifier: 'S' + vendor(8) + model(16)
// + unit serial number, and the bare serial.
func scsiPage80(pg80 []byte, vendor, model string) (serial, short string, ok bool) {
	if len(pg80) < 4 || pg80[1] != 0x80 {
		return "", "", false
	}
	n := int(pg80[3])
	if 4+n > len(pg80) {
		return "", "", false
	}
	short = trimNUL(string(pg80[4 : 4+n]))
	if strings.TrimSpace(short) == "" {
		return "", "", false
	}
	return "S" + padTo(vendor, 8) + padTo(model, 16) + short, short, true
}

// padTo makes an INQUIRY string field exactly n bytes, space padded, as the
// kernel holds it (sysfs prints "%.8s" / "%.16s", and a fixture may have
// lost the trailing blanks).
func padTo(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

// devLink finishes a SYMLINK+= value as udev does: unsafe characters of the
// whole link replaced (allow is "/ " normally, "/" after
// OPTIONS="string_escape=replace"), prefixed with /dev/.
func devLink(link, allow string) string {
	return "/dev/" + replaceChars(link, allow)
}

// attrSubst is udev's $attr{...} substitution: trailing whitespace removed,
// characters outside the safe set (plus "/ $%?,") replaced by '_'.
func attrSubst(v string) string {
	return replaceChars(strings.TrimRight(v, " \t\n\r"), "/ $%?,")
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// replaceWhitespace is udev_replace_whitespace: leading and trailing
// whitespace removed, each run of whitespace inside made one '_'.
func replaceWhitespace(s string) string {
	var b strings.Builder
	pending := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isSpace(c) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte('_')
			pending = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// replaceChars is udev_replace_chars: ASCII letters and digits, "#+-.:=@_",
// the characters of allow, \x escapes and valid multi-byte UTF-8 stay;
// whitespace becomes ' ' when allow has a space; everything else is '_'.
func replaceChars(s, allow string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z',
			strings.IndexByte("#+-.:=@_", c) >= 0, c != 0 && strings.IndexByte(allow, c) >= 0:
			i++
			continue
		case c == '\\' && i+1 < len(b) && b[i+1] == 'x':
			i += 2
			continue
		}
		if r, n := utf8.DecodeRune(b[i:]); n > 1 && r != utf8.RuneError {
			i += n
			continue
		}
		if isSpace(c) && strings.IndexByte(allow, ' ') >= 0 {
			b[i] = ' '
		} else {
			b[i] = '_'
		}
		i++
	}
	return string(b)
}
