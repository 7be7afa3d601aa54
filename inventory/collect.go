package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Options says where the kernel's views are mounted. Empty fields mean the
// live system's "/sys", "/dev" and "/proc"; tests point them at fixture
// trees. Log receives debug and warning records (nil: discarded).
type Options struct {
	SysRoot, DevRoot, ProcRoot string
	Log                        *slog.Logger
}

// ErrNoDevice is returned by DescribeDisk for a name that is not a block
// device (whole disk) in sysfs.
var ErrNoDevice = errors.New("no such block device")

func (o Options) withDefaults() Options {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Collect gathers the whole inventory. Only a failure to list the disks is
// an error; a NIC, CPU, memory or DMI file that cannot be read leaves its
// field empty (DMI serials are root-only, VMs may lack DMI altogether).
func Collect(ctx context.Context, opts Options) (*Inventory, error) {
	opts = opts.withDefaults()
	disks, err := CollectDisks(ctx, opts)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Disks: disks}
	inv.NICs = collectNICs(opts)
	inv.CPU = collectCPU(opts)
	inv.Memory = collectMemory(opts)
	inv.DMI = collectDMI(opts)
	inv.Firmware = collectFirmware(opts)
	return inv, nil
}

// CollectDisks lists the disks a layout may be laid onto, sorted by kernel
// name: every whole block device in /sys/block except loop, ram, zram, nbd,
// md and dm devices (those are listed as holders of their members), CD/DVD
// drives, hidden NVMe multipath paths, read-only devices and devices
// without a medium (size 0).
func CollectDisks(ctx context.Context, opts Options) ([]Disk, error) {
	opts = opts.withDefaults()
	s := sysfs{root: opts.SysRoot}
	dir := s.path("block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inventory: list disks: %w", err)
	}
	disks := []Disk{}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("inventory: list disks: %w", err)
		}
		sysname := e.Name()
		d, err := describe(s, opts, sysname)
		if err != nil {
			// One odd entry (a device vanishing under us) must not hide
			// the other disks.
			opts.Log.Warn("inventory: skip block device", "device", sysname, "err", err)
			continue
		}
		if stacked(s, sysname, &d) {
			if d.ReadOnly || d.SizeBytes == 0 {
				continue
			}
			probe(opts, &d)
			disks = append(disks, d)
			continue
		}
		if reason := exclusion(s, sysname, d); reason != "" {
			opts.Log.Debug("inventory: not a disk", "device", sysname, "reason", reason)
			continue
		}
		probe(opts, &d)
		disks = append(disks, d)
	}
	// The paths of a multipath disk are that disk: not listed on their own.
	// Their by-id names (scsi-<wwid>, wwn-..., the same on every path) are
	// the map's, as udev gives them to it once multipath claims the paths.
	paths := multipathPaths(disks)
	pathIDs := map[string][]string{}
	kept := disks[:0]
	for _, d := range disks {
		if mp, ok := paths[d.Name]; ok {
			opts.Log.Debug("inventory: not a disk", "device", d.Name, "reason", "path of multipath "+mp)
			pathIDs[mp] = append(pathIDs[mp], d.ByID...)
			continue
		}
		kept = append(kept, d)
	}
	disks = kept
	for i := range disks {
		if ids := pathIDs[disks[i].Name]; len(ids) > 0 {
			disks[i].ByID = sortedUnique(append(disks[i].ByID, ids...))
		}
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	dropSharedLegacyPaths(disks)
	return disks, nil
}

// DescribeDisk describes one whole block device by kernel name ("sda",
// "loop3", "/dev/nvme0n1", "cciss/c0d0") whether or not CollectDisks would
// list it: a document that names a loop device or a spare disk on purpose
// gets exactly that device.
func DescribeDisk(ctx context.Context, opts Options, name string) (Disk, error) {
	opts = opts.withDefaults()
	if err := ctx.Err(); err != nil {
		return Disk{}, fmt.Errorf("inventory: describe %q: %w", name, err)
	}
	n := strings.TrimPrefix(filepath.Clean(name), "/dev/")
	if n == "" || n == "." || strings.Contains(n, "..") {
		return Disk{}, fmt.Errorf("inventory: describe %q: %w", name, ErrNoDevice)
	}
	sysname := strings.ReplaceAll(n, "/", "!")
	s := sysfs{root: opts.SysRoot}
	if _, err := os.Stat(s.path("block", sysname)); err != nil {
		return Disk{}, fmt.Errorf("inventory: describe %q: %w", name, ErrNoDevice)
	}
	d, err := describe(s, opts, sysname)
	if err != nil {
		return Disk{}, fmt.Errorf("inventory: describe %q: %w", name, err)
	}
	stacked(s, sysname, &d)
	for _, h := range listDir(filepath.Join(s.path("block", sysname), "holders")) {
		var hd Disk
		if strings.HasPrefix(h, "dm-") && stacked(s, h, &hd) && hd.Kind == KindMultipath {
			d.MultipathOf = hd.Name
		}
	}
	probe(opts, &d)
	return d, nil
}

// exclusion says why a block device is not a disk to partition ("" if it is one).
func exclusion(s sysfs, sysname string, d Disk) string {
	for _, p := range []string{"loop", "ram", "zram", "nbd", "md", "dm-", "sr", "fd"} {
		if strings.HasPrefix(sysname, p) {
			return "virtual or optical device (" + p + "*)"
		}
	}
	blk := s.path("block", sysname)
	if s.attrTrim(blk, "device/type") == "5" {
		return "cdrom (SCSI type 5)"
	}
	if s.attrTrim(blk, "hidden") == "1" {
		return "hidden (NVMe multipath path)"
	}
	if d.ReadOnly {
		return "read-only"
	}
	if d.SizeBytes == 0 {
		return "no medium (size 0)"
	}
	return ""
}

// describe reads one /sys/block entry: attributes, names, partitions,
// holders and signatures.
func describe(s sysfs, opts Options, sysname string) (Disk, error) {
	real, err := s.resolve(s.path("block", sysname))
	if err != nil {
		return Disk{}, fmt.Errorf("resolve sysfs entry: %w", err)
	}
	dev := device{fs: s, path: real}
	name := strings.ReplaceAll(sysname, "!", "/")
	d := Disk{Name: name, Path: filepath.Join(opts.DevRoot, name)}
	sectors, ok := s.attrInt(real, "size")
	if !ok {
		return Disk{}, fmt.Errorf("read %s: missing or not a number", filepath.Join(real, "size"))
	}
	d.SizeBytes = sectors * 512 // sysfs counts 512-byte units whatever the sector size
	if v, ok := s.attrInt(real, "queue/logical_block_size"); ok {
		d.LogicalSectorSize = int(v)
	}
	if v, ok := s.attrInt(real, "queue/physical_block_size"); ok {
		d.PhysicalSectorSize = int(v)
	}
	d.Rotational = s.attrTrim(real, "queue/rotational") == "1"
	d.Removable = s.attrTrim(real, "removable") == "1"
	d.ReadOnly = s.attrTrim(real, "ro") == "1"

	id := diskIdentity(s, dev, name)
	d.Vendor, d.Model, d.Serial, d.WWN, d.Bus = id.vendor, id.model, id.serial, id.wwn, id.bus
	d.ByID = sortedUnique(id.byID)
	d.LegacyByID = sortedUnique(id.legacyByID)
	if idPath, compat := pathID(s, dev); idPath != "" {
		links := []string{"/dev/disk/by-path/" + replaceChars(idPath, "/ ")}
		if compat != "" {
			links = append(links, "/dev/disk/by-path/"+replaceChars(compat, "/ "))
		}
		if strings.HasPrefix(name, "vd") && strings.HasPrefix(idPath, "pci-") {
			links = append(links, "/dev/disk/by-path/virtio-"+replaceChars(idPath, "/ "))
		}
		d.ByPath = sortedUnique(links)
	}
	if l := legacySCSIPath(s, dev); l != "" {
		d.LegacyByPath = []string{"/dev/disk/by-path/" + l}
	}

	holders := listDir(filepath.Join(real, "holders"))
	for _, e := range listDir(real) {
		pdir := filepath.Join(real, e)
		num, ok := s.attrInt(pdir, "partition")
		if !ok {
			continue
		}
		start, _ := s.attrInt(pdir, "start")
		size, _ := s.attrInt(pdir, "size")
		p := Partition{
			Name:       strings.ReplaceAll(e, "!", "/"),
			Number:     int(num),
			StartBytes: start * 512,
			SizeBytes:  size * 512,
			Holders:    listDir(filepath.Join(pdir, "holders")),
		}
		holders = append(holders, p.Holders...)
		d.Partitions = append(d.Partitions, p)
	}
	sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Number < d.Partitions[j].Number })
	d.Holders = sortedUnique(holders)

	return d, nil
}

// probe fills the signatures, or ProbeError with why they are missing.
func probe(opts Options, d *Disk) {
	if err := probeDisk(d); err != nil {
		d.ProbeError = err.Error()
		opts.Log.Warn("inventory: signatures not probed", "device", d.Path, "err", err)
	}
}

// probeDisk fills the signatures of the disk and of each partition, read
// through the disk's own node (no partition nodes needed: the ramdisk has
// no udev, and a kernel may not have parsed the table). The node is opened
// read-only.
func probeDisk(d *Disk) error {
	if d.SizeBytes == 0 {
		return nil
	}
	f, err := os.OpenFile(d.Path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q read-only: %w", d.Path, err)
	}
	defer f.Close()
	sigs, err := ProbeSignatures(f, d.SizeBytes)
	if err != nil {
		return fmt.Errorf("%q: %w", d.Path, err)
	}
	d.Signatures = sigs
	for i := range d.Partitions {
		p := &d.Partitions[i]
		if p.SizeBytes <= 0 || p.StartBytes+p.SizeBytes > d.SizeBytes {
			continue
		}
		sigs, err := ProbeSignatures(io.NewSectionReader(f, p.StartBytes, p.SizeBytes), p.SizeBytes)
		if err != nil {
			return fmt.Errorf("%q partition %d: %w", d.Path, p.Number, err)
		}
		p.Signatures = sigs
	}
	return nil
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	j := 0
	for i := range out {
		if i == 0 || out[i] != out[j-1] {
			out[j] = out[i]
			j++
		}
	}
	return out[:j]
}

// dropSharedLegacyPaths removes legacy by-path names that more than one
// disk would carry: old udev rebased the SCSI host number per ATA port, so
// every SATA disk came out as ...-scsi-0:0:0:0 (the duplicate links of
// fuel-agent's VirtualBox bug). A name that matches several disks must
// match none.
func dropSharedLegacyPaths(disks []Disk) {
	count := map[string]int{}
	for _, d := range disks {
		for _, l := range d.LegacyByPath {
			count[l]++
		}
	}
	for i := range disks {
		var keep []string
		for _, l := range disks[i].LegacyByPath {
			if count[l] == 1 {
				keep = append(keep, l)
			}
		}
		disks[i].LegacyByPath = keep
	}
}

// Collector binds Options to the methods consumers declare interfaces for
// (the agent's and the API's Collect(ctx) (*Inventory, error)).
type Collector struct {
	Options Options
}

// Collect is Collect(ctx, c.Options).
func (c Collector) Collect(ctx context.Context) (*Inventory, error) { return Collect(ctx, c.Options) }

// DescribeDisk is DescribeDisk(ctx, c.Options, name).
func (c Collector) DescribeDisk(ctx context.Context, name string) (Disk, error) {
	return DescribeDisk(ctx, c.Options, name)
}
