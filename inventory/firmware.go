package inventory

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf16"
)

// Firmware is how the node was booted and, under UEFI, what its NVRAM
// says: Secure Boot and the Boot#### entries.
type Firmware struct {
	// BootMode is "uefi" when the kernel was started by UEFI firmware
	// (/sys/firmware/efi exists), else "bios".
	BootMode string `json:"boot_mode"`
	// SecureBoot and SetupMode are the EFI global variables of those names;
	// nil when unknown (BIOS, or efivarfs not mounted).
	SecureBoot *bool `json:"secure_boot,omitempty"`
	SetupMode  *bool `json:"setup_mode,omitempty"`
	// BootCurrent is the entry the ramdisk was booted from ("0003").
	BootCurrent string `json:"boot_current,omitempty"`
	// BootOrder is the firmware's boot order, entry numbers in hex.
	BootOrder []string `json:"boot_order,omitempty"`
	// BootEntries are the Boot#### variables, by number.
	BootEntries []BootEntry `json:"boot_entries,omitempty"`
	// Error says why the NVRAM could not be read (efivarfs missing).
	Error string `json:"error,omitempty"`
}

// BootEntry is one Boot#### load option.
type BootEntry struct {
	Num         string `json:"num"` // "0001"
	Description string `json:"description"`
	Active      bool   `json:"active"`
	// DevicePath is the entry's device path in efibootmgr's notation, for
	// the nodes imprint reads: HD(2,GPT,<partuuid>)/File(\EFI\debian\shimx64.efi),
	// MAC(525400123456), IPv4(), IPv6(), Uri(...); other nodes are
	// Node(type,subtype).
	DevicePath string `json:"device_path,omitempty"`
	// PartUUID is the GPT partition GUID of a hard-drive entry (lower case).
	PartUUID string `json:"partuuid,omitempty"`
	// File is the loader path of a hard-drive entry.
	File string `json:"file,omitempty"`
	// Network: the entry boots from a NIC (a MAC node).
	Network bool `json:"network,omitempty"`
}

// efiGlobal is the EFI global variable vendor GUID.
const efiGlobal = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// CollectFirmware reads how this machine was booted and its NVRAM.
func CollectFirmware(opts Options) Firmware { return collectFirmware(opts.withDefaults()) }

// collectFirmware reads /sys/firmware/efi and its efivarfs.
func collectFirmware(opts Options) Firmware {
	s := sysfs{root: opts.SysRoot}
	if _, err := os.Stat(s.path("firmware", "efi")); err != nil {
		return Firmware{BootMode: "bios"}
	}
	fw := Firmware{BootMode: "uefi"}
	dir := s.path("firmware", "efi", "efivars")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		fw.Error = fmt.Sprintf("efivarfs not readable at %s (mount -t efivarfs efivarfs %s)", dir, dir)
		return fw
	}
	read := func(name string) ([]byte, bool) {
		b, err := os.ReadFile(filepath.Join(dir, name+"-"+efiGlobal))
		if err != nil || len(b) < 4 {
			return nil, false
		}
		return b[4:], true // the first 4 bytes are the variable's attributes
	}
	flag := func(name string) *bool {
		b, ok := read(name)
		if !ok || len(b) < 1 {
			return nil
		}
		v := b[0] == 1
		return &v
	}
	fw.SecureBoot, fw.SetupMode = flag("SecureBoot"), flag("SetupMode")
	if b, ok := read("BootCurrent"); ok && len(b) >= 2 {
		fw.BootCurrent = fmt.Sprintf("%04X", binary.LittleEndian.Uint16(b))
	}
	if b, ok := read("BootOrder"); ok {
		for i := 0; i+1 < len(b); i += 2 {
			fw.BootOrder = append(fw.BootOrder, fmt.Sprintf("%04X", binary.LittleEndian.Uint16(b[i:])))
		}
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), "-"+efiGlobal)
		num, isBoot := strings.CutPrefix(name, "Boot")
		if !ok || !isBoot || len(num) != 4 || strings.Trim(strings.ToUpper(num), "0123456789ABCDEF") != "" {
			continue
		}
		b, _ := read(name)
		be, err := ParseLoadOption(b)
		if err != nil {
			opts.Log.Warn("inventory: boot entry not parsed", "entry", name, "err", err)
			continue
		}
		be.Num = strings.ToUpper(num)
		fw.BootEntries = append(fw.BootEntries, be)
	}
	sort.Slice(fw.BootEntries, func(i, j int) bool { return fw.BootEntries[i].Num < fw.BootEntries[j].Num })
	return fw
}

// ParseLoadOption decodes an EFI_LOAD_OPTION (a Boot#### variable's data
// without the attribute word): attributes, device path list length, UCS-2
// description, device path.
func ParseLoadOption(b []byte) (BootEntry, error) {
	if len(b) < 6 {
		return BootEntry{}, fmt.Errorf("load option of %d bytes: too short", len(b))
	}
	be := BootEntry{Active: binary.LittleEndian.Uint32(b)&1 != 0}
	pathLen := int(binary.LittleEndian.Uint16(b[4:]))
	rest := b[6:]
	var desc []uint16
	for {
		if len(rest) < 2 {
			return be, fmt.Errorf("description not terminated")
		}
		c := binary.LittleEndian.Uint16(rest)
		rest = rest[2:]
		if c == 0 {
			break
		}
		desc = append(desc, c)
	}
	be.Description = string(utf16.Decode(desc))
	if pathLen > len(rest) {
		return be, fmt.Errorf("device path of %d bytes, %d left", pathLen, len(rest))
	}
	var nodes []string
	dp := rest[:pathLen]
	for len(dp) >= 4 {
		typ, sub, n := dp[0], dp[1], int(binary.LittleEndian.Uint16(dp[2:]))
		if n < 4 || n > len(dp) {
			return be, fmt.Errorf("device path node %#x/%#x of length %d", typ, sub, n)
		}
		data := dp[4:n]
		dp = dp[n:]
		switch {
		case typ == 0x7f: // end of path (instance)
			if sub == 0xff {
				dp = nil
			}
			continue
		case typ == 4 && sub == 1 && len(data) >= 38: // hard drive
			part := binary.LittleEndian.Uint32(data)
			sigType := data[37]
			if sigType == 2 {
				be.PartUUID = efiGUID(data[20:36])
				nodes = append(nodes, fmt.Sprintf("HD(%d,GPT,%s)", part, be.PartUUID))
			} else {
				nodes = append(nodes, fmt.Sprintf("HD(%d,MBR)", part))
			}
		case typ == 4 && sub == 4: // file path
			var u []uint16
			for i := 0; i+1 < len(data); i += 2 {
				c := binary.LittleEndian.Uint16(data[i:])
				if c == 0 {
					break
				}
				u = append(u, c)
			}
			be.File = string(utf16.Decode(u))
			nodes = append(nodes, "File("+be.File+")")
		case typ == 3 && sub == 11 && len(data) >= 6: // MAC address
			be.Network = true
			nodes = append(nodes, fmt.Sprintf("MAC(%x)", data[:6]))
		case typ == 3 && sub == 12:
			nodes = append(nodes, "IPv4()")
		case typ == 3 && sub == 13:
			nodes = append(nodes, "IPv6()")
		case typ == 3 && sub == 24:
			nodes = append(nodes, "Uri("+string(data)+")")
		default:
			nodes = append(nodes, fmt.Sprintf("Node(%d,%d)", typ, sub))
		}
	}
	be.DevicePath = strings.Join(nodes, "/")
	return be, nil
}

// efiGUID formats an EFI GUID (first three fields little-endian).
func efiGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}
