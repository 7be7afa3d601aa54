package partition

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/provision"
)

// applyMiB is one mebibyte in bytes.
const applyMiB int64 = 1 << 20

// Steps of Apply, as they appear in logs, in Op.Step and in StepError.Step.
const (
	StepSafety   = "safety"
	StepTeardown = "teardown"
	StepWipe     = "wipe"
	StepGPT      = "gpt"
	StepNodes    = "nodes"
	StepMD       = "md"
	StepLVM      = "lvm"
	StepMkfs     = "mkfs"
)

// OpKind says what an Op does.
type OpKind string

// Operation kinds.
const (
	// OpZero writes zeroes over Length bytes of Device at Offset (from the
	// device's end when FromEnd; the range is clamped to the device).
	OpZero OpKind = "zero"
	// OpWriteGPT writes the planned GPT of the disk Device with go-diskfs.
	OpWriteGPT OpKind = "write-gpt"
	// OpReread makes the kernel re-read Device's partition table (BLKRRPART).
	OpReread OpKind = "reread"
	// OpWaitNodes waits for (and if needed creates) the nodes of every
	// planned partition of the disk Device.
	OpWaitNodes OpKind = "wait-nodes"
	// OpRun runs Argv.
	OpRun OpKind = "run"
	// OpMkfs runs Argv, then checks with blkid that Device carries FSType,
	// running Argv again when it does not (mkswap, LP #1550227).
	OpMkfs OpKind = "mkfs"
	// OpCheckFree fails if anything still holds or mounts the disk Device
	// (after teardown).
	OpCheckFree OpKind = "check-free"
)

// Op is one operation of applying a plan. The list Operations returns is
// computed without I/O: it is what --dry-run prints and what Apply executes
// after the (discovered) teardown. Device and Argv name the plan's devices;
// Apply substitutes the partition nodes it found.
type Op struct {
	Step    string   `json:"step"`
	Kind    OpKind   `json:"kind"`
	Device  string   `json:"device"`
	Argv    []string `json:"argv,omitempty"`
	Offset  int64    `json:"offset,omitempty"` // bytes
	Length  int64    `json:"length,omitempty"` // bytes
	FromEnd bool     `json:"from_end,omitempty"`
	FSType  string   `json:"fs_type,omitempty"`
	VG      string   `json:"vg,omitempty"` // the volume group an lvm command works on
	Why     string   `json:"why,omitempty"`
}

// String renders the op for logs and --dry-run.
func (o Op) String() string {
	switch o.Kind {
	case OpZero:
		where := fmt.Sprintf("[%d MiB, %d MiB)", o.Offset/applyMiB, (o.Offset+o.Length)/applyMiB)
		if o.Offset%applyMiB != 0 || o.Length%applyMiB != 0 {
			where = fmt.Sprintf("[%d, %d) bytes", o.Offset, o.Offset+o.Length)
		}
		if o.FromEnd {
			where = fmt.Sprintf("last %d MiB", o.Length/applyMiB)
		}
		s := fmt.Sprintf("%s: zero %s %s", o.Step, o.Device, where)
		if o.Why != "" {
			s += " (" + o.Why + ")"
		}
		return s
	case OpRun, OpMkfs:
		return fmt.Sprintf("%s: %s", o.Step, shellJoin(o.Argv))
	default:
		return fmt.Sprintf("%s: %s %s", o.Step, o.Kind, o.Device)
	}
}

// shellJoin quotes argv for display.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"{}$*?;&|<>()\\") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

// ByteRange is a half-open range [Offset, Offset+Length) of a device.
type ByteRange struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// DiskWipeRanges is what Apply zeroes on a planned disk before writing its
// GPT (docs/fuel-agent.md §8 step 2), relative to the disk's start, merged and
// sorted: the first MiB (MBR, primary GPT) and, for every planned
// partition, from 3 MiB before to 2 MiB after its start and its end, so
// that no filesystem, LVM label or md superblock of an earlier layout can
// reappear at the same boundaries. The last MiB of the disk (backup GPT) is
// zeroed as well; it is not part of this list because its offset depends on
// the device's exact byte size. Ranges are not clamped to the disk's end.
func DiskWipeRanges(d Disk) []ByteRange {
	rs := []ByteRange{{Offset: 0, Length: applyMiB}}
	edge := func(mib int64) {
		lo := max(mib-3, 0)
		rs = append(rs, ByteRange{Offset: lo * applyMiB, Length: (mib + 2 - lo) * applyMiB})
	}
	for _, p := range d.Partitions {
		edge(p.BeginMiB)
		edge(p.EndMiB)
	}
	return mergeByteRanges(rs)
}

// mergeByteRanges sorts ranges and merges overlapping or touching ones.
func mergeByteRanges(rs []ByteRange) []ByteRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
	var out []ByteRange
	for _, r := range rs {
		if n := len(out); n > 0 && r.Offset <= out[n-1].Offset+out[n-1].Length {
			end := max(out[n-1].Offset+out[n-1].Length, r.Offset+r.Length)
			out[n-1].Length = end - out[n-1].Offset
			continue
		}
		out = append(out, r)
	}
	return out
}

// Operations lists, in order and without any I/O, what Apply does to the
// plan's devices after tearing down the old storage stack: wipe, GPT,
// re-read and wait for the nodes, wipe the new partitions, md, LVM, mkfs.
// For a KeepData plan it is keepOperations: the kept md arrays assembled
// and VGs activated first, then everything not kept rebuilt around them.
// lvmConfig is the --config text given to every lvm
// command ("" for none).
func Operations(plan *Plan, lvmConfig string) ([]Op, error) {
	if plan == nil {
		return nil, fmt.Errorf("partition: nil plan")
	}
	var ops []Op
	if plan.KeepData {
		// As if no kept md were assembled yet and no non-kept LV of a kept
		// VG existed: Apply passes what it found.
		return keepOperations(plan, KeptVolumes(plan), keepFound{}, lvmConfig)
	}
	for _, d := range plan.Disks {
		for _, r := range DiskWipeRanges(d) {
			ops = append(ops, Op{Step: StepWipe, Kind: OpZero, Device: d.Device, Offset: r.Offset, Length: r.Length, Why: "old signatures at the new boundaries"})
		}
		ops = append(ops, Op{Step: StepWipe, Kind: OpZero, Device: d.Device, Length: applyMiB, FromEnd: true, Why: "backup GPT"})
	}
	for _, d := range plan.Disks {
		ops = append(ops,
			Op{Step: StepGPT, Kind: OpWriteGPT, Device: d.Device},
			Op{Step: StepGPT, Kind: OpReread, Device: d.Device},
			Op{Step: StepNodes, Kind: OpWaitNodes, Device: d.Device},
		)
	}
	for _, d := range plan.Disks {
		for _, p := range d.Partitions {
			n := min(applyMiB, p.SizeMiB()*applyMiB)
			ops = append(ops,
				Op{Step: StepWipe, Kind: OpZero, Device: p.Device, Length: n, Why: "new partition start"},
				Op{Step: StepWipe, Kind: OpZero, Device: p.Device, Length: n, FromEnd: true, Why: "new partition end"},
			)
		}
	}
	for _, md := range plan.MDs {
		argv, err := mdCreateArgv(md)
		if err != nil {
			return nil, err
		}
		ops = append(ops, Op{Step: StepMD, Kind: OpRun, Device: md.Device, Argv: argv})
	}
	for _, pv := range plan.PVs {
		ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: pv.Device, Argv: pvCreateArgv(pv, lvmConfig)})
	}
	for _, vg := range plan.VGs {
		if len(vg.PVs) == 0 {
			return nil, fmt.Errorf("partition: vg %q has no physical volumes", vg.Name)
		}
		argv := lvmArgv("vgcreate", lvmConfig, vg.Name)
		argv = append(argv, vg.PVs...)
		ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: vg.Name, VG: vg.Name, Argv: argv})
	}
	for _, lv := range plan.LVs {
		if lv.SizeMiB <= 0 {
			return nil, fmt.Errorf("partition: lv %q in vg %q: size %d MiB must be > 0", lv.Name, lv.VG, lv.SizeMiB)
		}
		argv := lvmArgv("lvcreate", lvmConfig, "--yes", "-Wy", "-Zy", "-L", strconv.FormatInt(lv.SizeMiB, 10)+"m", "-n", lv.Name, lv.VG)
		ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: lvDevice(lv), VG: lv.VG, Argv: argv})
	}
	for _, fs := range plan.FSs {
		if fs.Image {
			continue
		}
		op, err := mkfsOp(fs)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// lvDevice is the LV's device node: the plan's, else /dev/mapper/<vg>-<lv>
// with dashes doubled.
func lvDevice(lv LV) string {
	if lv.Device != "" {
		return lv.Device
	}
	return LVDevice(lv.VG, lv.Name)
}

// mdCreateArgv is the mdadm command creating md, never prompting.
func mdCreateArgv(md MD) ([]string, error) {
	if len(md.Members) == 0 {
		return nil, fmt.Errorf("partition: md %q has no members", md.Device)
	}
	meta := "1.2"
	switch md.Metadata {
	case "", "default", "1.2":
	case "0.90", "0.9", "1.0", "1.1":
		meta = md.Metadata
		if meta == "0.9" {
			meta = "0.90"
		}
	default:
		return nil, fmt.Errorf("partition: md %q: unknown metadata %q (want default, 0.90, 1.0, 1.1 or 1.2)", md.Device, md.Metadata)
	}
	level := md.Level
	if level == "" {
		level = "mirror"
	}
	argv := []string{"mdadm", "--create", md.Device, "--run", "--force",
		"--metadata=" + meta, "--level=" + level, "--raid-devices=" + strconv.Itoa(len(md.Members))}
	if len(md.Spares) > 0 {
		argv = append(argv, "--spare-devices="+strconv.Itoa(len(md.Spares)))
	}
	argv = append(argv, md.Members...)
	argv = append(argv, md.Spares...)
	return argv, nil
}

// pvCreateArgv is the pvcreate of one PV, never prompting.
func pvCreateArgv(pv PV, conf string) []string {
	var args []string
	if pv.MetadataCopies > 0 {
		args = append(args, "--metadatacopies", strconv.Itoa(pv.MetadataCopies))
	}
	if pv.MetadataSizeMiB > 0 {
		args = append(args, "--metadatasize", strconv.FormatInt(pv.MetadataSizeMiB, 10)+"m")
	}
	args = append(args, "-ff", "-y", pv.Device)
	return lvmArgv("pvcreate", conf, args...)
}

// mkfsOp is the mkfs command of fs, with its label cut to what the
// filesystem holds (as fuel-agent's label12 did for xfs).
func mkfsOp(fs FS) (Op, error) {
	// provision's rule, checked again here: a plan built in Go must not
	// smuggle a device into mkfs either.
	if err := provision.CheckMkfsOptions(fs.Type, fs.Options); err != nil {
		return Op{}, fmt.Errorf("partition: filesystem on %q: fs_options: %w: %w", fs.Device, err, ErrNotPlanned)
	}
	opts := strings.Fields(fs.Options)
	label := func(flag string, maxLen int) []string {
		if fs.Label == "" {
			return nil
		}
		l := fs.Label
		if len(l) > maxLen {
			l = l[:maxLen]
		}
		return []string{flag, l}
	}
	var argv []string
	switch fs.Type {
	case "ext2", "ext3", "ext4":
		// mke2fs itself: the ramdisk need not carry the mkfs.ext2/3 links.
		argv = append([]string{"mke2fs", "-t", fs.Type, "-F", "-q"}, label("-L", 16)...)
	case "xfs":
		argv = append([]string{"mkfs.xfs", "-f", "-q"}, label("-L", 12)...)
	case "swap":
		argv = append([]string{"mkswap", "-f"}, label("-L", 15)...)
	case "vfat":
		argv = append([]string{"mkfs.vfat"}, label("-n", 11)...)
	default:
		return Op{}, fmt.Errorf("partition: filesystem on %q: unsupported type %q (want ext2, ext3, ext4, xfs, swap or vfat)", fs.Device, fs.Type)
	}
	argv = append(argv, opts...)
	argv = append(argv, fs.Device)
	return Op{Step: StepMkfs, Kind: OpMkfs, Device: fs.Device, Argv: argv, FSType: fs.Type}, nil
}
