package bootloader

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/partition"
)

// NVRAMEntry is one Boot#### line of `efibootmgr -v`.
type NVRAMEntry struct {
	Num    string // "0003", upper case
	Active bool
	Label  string
	Path   string // the device path text
	// PartUUID is the GPT partition GUID of an HD(n,GPT,guid,...) node, lower
	// case; empty for an entry that is not on a GPT partition.
	PartUUID string
	// File is the loader path (\EFI\debian\shimx64.efi), if any.
	File string
	// Network: a MAC() node, or a PXE/HTTP label with no disk node.
	Network bool
}

// NVRAM is what `efibootmgr -v` printed.
type NVRAM struct {
	BootCurrent string
	BootOrder   []string
	Entries     []NVRAMEntry
}

// ParseEfibootmgr reads the output of `efibootmgr -v` (efibootmgr 15 to 18:
// "Boot0003* label<TAB>device path", optional data after the path; the
// loader as a File(...) node or, from efibootmgr 18, a bare \path).
func ParseEfibootmgr(out []byte) (NVRAM, error) {
	var n NVRAM
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "BootCurrent:"):
			n.BootCurrent = strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(line, "BootCurrent:")))
		case strings.HasPrefix(line, "BootOrder:"):
			for _, v := range strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "BootOrder:")), ",") {
				if v = strings.ToUpper(strings.TrimSpace(v)); v != "" {
					n.BootOrder = append(n.BootOrder, v)
				}
			}
		case strings.HasPrefix(line, "Boot") && len(line) >= 9 && isHex4(line[4:8]):
			e := NVRAMEntry{Num: strings.ToUpper(line[4:8]), Active: line[8] == '*'}
			rest := strings.TrimPrefix(line[9:], " ")
			label, dp, hasTab := strings.Cut(rest, "\t")
			if !hasTab {
				// Some versions separate with spaces only: the path starts at
				// the first known node.
				label, dp = splitLabelPath(rest)
			}
			e.Label, e.Path = strings.TrimSpace(label), strings.TrimSpace(dp)
			parseDevicePath(&e)
			n.Entries = append(n.Entries, e)
		}
	}
	for _, o := range n.BootOrder {
		if !isHex4(o) {
			return n, fmt.Errorf("efibootmgr: BootOrder entry %q is not 4 hex digits", o)
		}
	}
	return n, nil
}

func isHex4(s string) bool {
	return len(s) == 4 && strings.Trim(strings.ToUpper(s), "0123456789ABCDEF") == ""
}

// splitLabelPath splits "label PciRoot(...)..." without a tab.
func splitLabelPath(s string) (string, string) {
	best := -1
	for _, node := range []string{"HD(", "PciRoot(", "FvVol(", "FvFile(", "VenHw(", "BBS(", "MAC(", "Fv(", "File(", "VenMedia("} {
		if i := strings.Index(s, node); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return s, ""
	}
	return s[:best], s[best:]
}

// parseDevicePath fills PartUUID, File and Network from e.Path.
func parseDevicePath(e *NVRAMEntry) {
	p := e.Path
	if i := strings.Index(p, "HD("); i >= 0 {
		args, _, _ := strings.Cut(p[i+3:], ")")
		f := strings.Split(args, ",")
		if len(f) >= 3 && strings.EqualFold(f[1], "GPT") {
			e.PartUUID = strings.ToLower(strings.TrimSpace(f[2]))
		}
	}
	found := false
	for off := 0; ; {
		i := strings.Index(p[off:], "File(")
		if i < 0 {
			break
		}
		i += off
		if i >= 2 && p[i-2:i] == "Fv" { // FvFile(guid): a firmware volume file, not a loader path
			off = i + 5
			continue
		}
		e.File, _, _ = strings.Cut(p[i+5:], ")")
		found = true
		break
	}
	if i := strings.Index(p, `\`); !found && i >= 0 {
		e.File = strings.Fields(p[i:])[0]
	}
	lab := strings.ToUpper(e.Label)
	e.Network = strings.Contains(p, "MAC(") ||
		(e.PartUUID == "" && (strings.Contains(lab, "PXE") || strings.Contains(lab, "HTTP")))
}

// ESPTarget is one ESP that must get an NVRAM entry.
type ESPTarget struct {
	Disk     string // /dev/vda
	Part     int    // partition number
	PartUUID string // lower case
	Label    string // "debian (vda)"
	Loader   string // \EFI\debian\shimx64.efi
}

// NVRAMChanges is what writeNVRAM does: delete entries, create the missing
// ones; the BootOrder is computed after the creation (BootOrderFor).
type NVRAMChanges struct {
	Delete []string    // entry numbers
	Why    []string    // one reason per Delete
	Create []ESPTarget // ESPs without a matching entry
}

// PlanNVRAM decides the NVRAM changes for the ESPs just installed:
//
//   - an entry on one of these ESPs is kept when it is the first one with
//     the ESP's loader and label, and deleted otherwise (a duplicate from a
//     previous provision, or another loader on a disk just rewritten);
//   - an entry on a GPT partition that no longer exists (live holds every
//     partition GUID on the machine now) is deleted: it pointed at a disk
//     just wiped (the new GPT has new GUIDs) or at a disk that is gone, and
//     can boot nothing;
//   - every other entry (network, firmware's own, CD, another OS on a
//     partition that still exists) is kept;
//   - an ESP without a kept entry gets one created.
func PlanNVRAM(n NVRAM, esps []ESPTarget, live map[string]bool) NVRAMChanges {
	var ch NVRAMChanges
	byUUID := map[string]int{}
	for i, e := range esps {
		byUUID[strings.ToLower(e.PartUUID)] = i
	}
	have := make([]bool, len(esps))
	for _, e := range n.Entries {
		if e.PartUUID == "" {
			continue
		}
		if i, ours := byUUID[e.PartUUID]; ours {
			if !have[i] && strings.EqualFold(e.File, esps[i].Loader) && e.Label == esps[i].Label {
				have[i] = true
				continue
			}
			ch.Delete = append(ch.Delete, e.Num)
			ch.Why = append(ch.Why, fmt.Sprintf("on ESP %s%d: duplicate or outdated (%q %s)", esps[i].Disk, esps[i].Part, e.Label, e.File))
			continue
		}
		if !live[e.PartUUID] {
			ch.Delete = append(ch.Delete, e.Num)
			ch.Why = append(ch.Why, fmt.Sprintf("partition %s no longer exists (%q %s)", e.PartUUID, e.Label, e.File))
		}
	}
	for i, e := range esps {
		if !have[i] {
			ch.Create = append(ch.Create, e)
		}
	}
	return ch
}

// BootOrderFor is the BootOrder to set once the entries are right: one
// network entry first (the one the ramdisk was booted from, BootCurrent,
// when it is a network entry; else the first network entry of the current
// order), then the ESPs' entries in plan order, then every other entry in
// its current order, the other network entries included. The controller's
// flip answers iPXE with `exit`: the firmware then tries the next entry,
// which must be the disk, not the NIC's other PXEv4/PXEv6/HTTP entries,
// each of which waits for its own DHCP timeout. An entry the current
// BootOrder leaves out stays out, unless it is an ESP's.
func BootOrderFor(n NVRAM, esps []ESPTarget) []string {
	pos := map[string]int{}
	for i, o := range n.BootOrder {
		pos[o] = i
	}
	ordered := make([]NVRAMEntry, 0, len(n.Entries))
	for _, e := range n.Entries {
		if _, ok := pos[e.Num]; ok {
			ordered = append(ordered, e)
		}
	}
	// by current position
	for i := 1; i < len(ordered); i++ {
		for j := i; j > 0 && pos[ordered[j].Num] < pos[ordered[j-1].Num]; j-- {
			ordered[j], ordered[j-1] = ordered[j-1], ordered[j]
		}
	}
	for _, e := range n.Entries {
		if _, ok := pos[e.Num]; !ok && isESPEntry(e, esps) >= 0 {
			ordered = append(ordered, e)
		}
	}
	net := ""
	for _, e := range ordered {
		if e.Network && e.Num == n.BootCurrent {
			net = e.Num
		}
	}
	for _, e := range ordered {
		if net == "" && e.Network {
			net = e.Num
		}
	}
	var disk, other []string
	espEntry := make([]string, len(esps))
	for _, e := range ordered {
		ours := isESPEntry(e, esps)
		switch {
		case e.Num == net:
		case ours >= 0 && espEntry[ours] == "":
			espEntry[ours] = e.Num
		default:
			other = append(other, e.Num)
		}
	}
	for _, n := range espEntry {
		if n != "" {
			disk = append(disk, n)
		}
	}
	var out []string
	if net != "" {
		out = append(out, net)
	}
	return append(append(out, disk...), other...)
}

// isESPEntry is the index of the ESP whose loader e boots, or -1.
func isESPEntry(e NVRAMEntry, esps []ESPTarget) int {
	for i, t := range esps {
		if e.PartUUID != "" && e.PartUUID == strings.ToLower(t.PartUUID) && strings.EqualFold(e.File, t.Loader) {
			return i
		}
	}
	return -1
}

// ParseBlkidExport reads `blkid -o export` (KEY=value blocks) into the set
// of partition GUIDs, lower case.
func ParseBlkidExport(out []byte) map[string]bool {
	live := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "PARTUUID="); ok && v != "" {
			live[strings.ToLower(v)] = true
		}
	}
	return live
}

// writeNVRAM makes the NVRAM match the ESPs: PlanNVRAM's changes through
// efibootmgr, then BootOrderFor.
func (in *Installer) writeNVRAM(ctx context.Context, p *partition.Plan, esps []partition.Partition, c efiChain, log *slog.Logger) error {
	var targets []ESPTarget
	for _, esp := range esps {
		out, err := in.Runner.Run(ctx, "blkid", "-c", "/dev/null", "-o", "value", "-s", "PARTUUID", esp.Device)
		uuid := strings.ToLower(strings.TrimSpace(string(out)))
		if err != nil || uuid == "" {
			if err == nil {
				err = fmt.Errorf("no PARTUUID")
			}
			return &DeviceError{Device: esp.Device, Err: fmt.Errorf("bootloader: NVRAM: partition GUID of ESP %s: %w", esp.Device, err)}
		}
		targets = append(targets, ESPTarget{Disk: esp.Disk, Part: esp.Number, PartUUID: uuid,
			Label: fmt.Sprintf("%s (%s)", c.ID, filepath.Base(esp.Disk)), Loader: c.Loader})
	}
	liveOut, err := in.Runner.Run(ctx, "blkid", "-c", "/dev/null", "-o", "export")
	if err != nil && len(liveOut) == 0 {
		return fmt.Errorf("bootloader: NVRAM: list partitions: %w", err)
	}
	live := ParseBlkidExport(liveOut)
	for _, t := range targets {
		live[t.PartUUID] = true
	}
	read := func() (NVRAM, error) {
		out, err := in.Runner.Run(ctx, "efibootmgr", "-v")
		if err != nil {
			return NVRAM{}, fmt.Errorf("bootloader: NVRAM: %w", err)
		}
		return ParseEfibootmgr(out)
	}
	nv, err := read()
	if err != nil {
		return err
	}
	ch := PlanNVRAM(nv, targets, live)
	for i, num := range ch.Delete {
		if _, err := in.Runner.Run(ctx, "efibootmgr", "-q", "-b", num, "-B"); err != nil {
			return fmt.Errorf("bootloader: NVRAM: delete Boot%s: %w", num, err)
		}
		log.Info("NVRAM entry deleted", "entry", "Boot"+num, "why", ch.Why[i])
	}
	for _, t := range ch.Create {
		if _, err := in.Runner.Run(ctx, "efibootmgr", "-q", "-c", "-d", t.Disk, "-p", strconv.Itoa(t.Part), "-L", t.Label, "-l", t.Loader); err != nil {
			return &DeviceError{Device: t.Disk, Err: fmt.Errorf("bootloader: NVRAM: create entry for ESP %s partition %d: %w", t.Disk, t.Part, err)}
		}
		log.Info("NVRAM entry created", "disk", t.Disk, "partition", t.Part, "label", t.Label, "loader", t.Loader)
	}
	if nv, err = read(); err != nil {
		return err
	}
	order := BootOrderFor(nv, targets)
	if len(order) > 0 && strings.Join(order, ",") != strings.Join(nv.BootOrder, ",") {
		if _, err := in.Runner.Run(ctx, "efibootmgr", "-q", "-o", strings.Join(order, ",")); err != nil {
			return fmt.Errorf("bootloader: NVRAM: set BootOrder %s: %w", strings.Join(order, ","), err)
		}
	}
	log.Info("NVRAM written", "boot_order", strings.Join(order, ","), "deleted", len(ch.Delete), "created", len(ch.Create))
	return nil
}
