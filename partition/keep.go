package partition

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/inventory"
)

// Kept is what a KeepData plan preserves, derived from the plan's flags
// after elevation (a kept filesystem marks the LV, md or partition under
// it; a kept LV marks its VG; a kept VG marks its PVs; a kept md marks its
// members). Kept volumes are never wiped, re-created or mkfs'd; they are
// assembled or activated, checked against the plan, and the rest of the
// plan is rebuilt around them.
type Kept struct {
	// Partitions: kept partitions, with why each is kept.
	Partitions map[string]string
	MDs        map[string]bool
	VGs        map[string]bool
	LVs        map[string]bool // LV devices (/dev/mapper/vg-lv)
	// Disks: planned disk devices holding a kept partition. Their
	// partition table stays as it is (the kernel cannot re-read the table
	// of a disk whose partitions are in use), so the plan must match it.
	Disks map[string]bool
}

// KeptVolumes derives what plan keeps (all maps empty for a plan without
// KeepData).
func KeptVolumes(plan *Plan) Kept {
	k := Kept{Partitions: map[string]string{}, MDs: map[string]bool{}, VGs: map[string]bool{}, LVs: map[string]bool{}, Disks: map[string]bool{}}
	if plan == nil {
		return k
	}
	lvByDev := map[string]LV{}
	for _, lv := range plan.LVs {
		lvByDev[lvDevice(lv)] = lv
	}
	mdByDev := map[string]MD{}
	for _, md := range plan.MDs {
		mdByDev[md.Device] = md
	}
	partDisk := map[string]string{}
	for _, d := range plan.Disks {
		for _, p := range d.Partitions {
			partDisk[p.Device] = d.Device
			if p.KeepData {
				k.Partitions[p.Device] = "keep_data"
			}
		}
	}
	for _, fs := range plan.FSs {
		if !fs.KeepData {
			continue
		}
		switch {
		case lvByDev[fs.Device].Name != "":
			k.LVs[fs.Device] = true
		case mdByDev[fs.Device].Device != "":
			k.MDs[fs.Device] = true
		default:
			k.Partitions[fs.Device] = "holds the kept filesystem " + fsName(fs)
		}
	}
	for _, lv := range plan.LVs {
		if lv.KeepData {
			k.LVs[lvDevice(lv)] = true
		}
	}
	for _, vg := range plan.VGs {
		if vg.KeepData {
			k.VGs[vg.Name] = true
			for _, lv := range plan.LVs {
				if lv.VG == vg.Name {
					k.LVs[lvDevice(lv)] = true
				}
			}
		}
	}
	for dev := range k.LVs {
		k.VGs[lvByDev[dev].VG] = true
	}
	for _, md := range plan.MDs {
		if md.KeepData {
			k.MDs[md.Device] = true
		}
	}
	for _, vg := range plan.VGs {
		if !k.VGs[vg.Name] {
			continue
		}
		for _, pv := range vg.PVs {
			if mdByDev[pv].Device != "" {
				k.MDs[pv] = true
			} else {
				k.Partitions[pv] = fmt.Sprintf("a PV of the kept volume group %q", vg.Name)
			}
		}
	}
	for dev := range k.MDs {
		md := mdByDev[dev]
		for _, m := range append(append([]string{}, md.Members...), md.Spares...) {
			k.Partitions[m] = "a member of the kept md " + dev
		}
	}
	for p := range k.Partitions {
		if d := partDisk[p]; d != "" {
			k.Disks[d] = true
		}
	}
	return k
}

func fsName(fs FS) string {
	if fs.Mount != "" {
		return fs.Mount
	}
	return "on " + fs.Device
}

// Any reports whether anything is kept.
func (k Kept) Any() bool {
	return len(k.Partitions)+len(k.MDs)+len(k.VGs)+len(k.LVs) > 0
}

// KeptPartitionError is a disk holding kept volumes whose partition table
// is not the plan's: a kept partition would move (or a neighbour would,
// which needs a new table the kernel cannot load while the kept volumes
// are in use).
type KeptPartitionError struct {
	Disk     string
	Problems []string
}

func (e *KeptPartitionError) Error() string {
	return fmt.Sprintf("partition: keep_data: disk %s: %s; refusing to touch it (a kept volume's partition must stay exactly where it is)", e.Disk, strings.Join(e.Problems, "; "))
}

// CheckKept compares the partition tables of the disks holding kept
// volumes (existing, by planned disk device: what the kernel or the
// inventory lists) with the plan, and checks nothing kept is an image
// target (writing the image would overwrite what is kept). Pure: prepare
// runs it on the inventory, Apply again on what the kernel lists now.
func CheckKept(plan *Plan, existing map[string][]ExistingPartition) error {
	k := KeptVolumes(plan)
	for _, fs := range plan.FSs {
		if fs.Image && (fs.KeepData || k.LVs[fs.Device] || k.MDs[fs.Device] || k.Partitions[fs.Device] != "") {
			return &StepError{Step: StepSafety, Device: fs.Device, Err: fmt.Errorf("keep_data on %s, which ks_meta.image_data fills: the image would overwrite the kept data", fsName(fs))}
		}
	}
	for _, d := range plan.Disks {
		if !k.Disks[d.Device] {
			continue
		}
		have := map[int]ExistingPartition{}
		for _, p := range existing[d.Device] {
			have[p.Number] = p
		}
		var probs []string
		planned := map[int]bool{}
		for _, p := range d.Partitions {
			planned[p.Number] = true
			why := "not kept, but on a disk with kept volumes"
			if w := k.Partitions[p.Device]; w != "" {
				why = "kept: " + w
			}
			e, ok := have[p.Number]
			if !ok {
				probs = append(probs, fmt.Sprintf("partition %s (%s) does not exist; the plan puts it at %d–%d MiB", p.Device, why, p.BeginMiB, p.EndMiB))
				continue
			}
			if e.StartBytes != p.BeginMiB*applyMiB || e.SizeBytes != p.SizeMiB()*applyMiB {
				probs = append(probs, fmt.Sprintf("partition %s (%s) would move: on disk it is %s, the plan puts it at %d–%d MiB", p.Device, why, bytesRange(e), p.BeginMiB, p.EndMiB))
			}
		}
		var extra []int
		for n := range have {
			if !planned[n] {
				extra = append(extra, n)
			}
		}
		sort.Ints(extra)
		for _, n := range extra {
			probs = append(probs, fmt.Sprintf("existing partition %d (%s) is not in the plan", n, bytesRange(have[n])))
		}
		if len(probs) > 0 {
			return &KeptPartitionError{Disk: d.Device, Problems: probs}
		}
	}
	return nil
}

func bytesRange(e ExistingPartition) string {
	if e.StartBytes%applyMiB == 0 && e.SizeBytes%applyMiB == 0 {
		return fmt.Sprintf("%d–%d MiB", e.StartBytes/applyMiB, (e.StartBytes+e.SizeBytes)/applyMiB)
	}
	return fmt.Sprintf("bytes %d–%d", e.StartBytes, e.StartBytes+e.SizeBytes)
}

// StepActivate is the step assembling kept md arrays and activating kept
// volume groups, before anything else of a KeepData plan runs.
const StepActivate = "activate"

// keepFound is what Apply found of the kept stack before running anything:
// the md arrays already assembled and the LVs that exist ("vg/lv").
type keepFound struct {
	activeMDs map[string]bool
	lvs       map[string]bool
}

// keepOperations is Operations for a KeepData plan, after the (discovered)
// teardown of what is not kept: assemble the kept md arrays and activate
// the kept VGs (no udev: lvm makes its own nodes, DefaultLVMConfig); write
// a new GPT only on disks holding nothing kept; wipe the edges of every
// partition that is not kept; create the md arrays, PVs, VGs and LVs that
// are not kept (a non-kept LV of a kept VG is removed first when it
// exists); mkfs every filesystem that is neither kept nor an image target.
func keepOperations(plan *Plan, k Kept, found keepFound, conf string) ([]Op, error) {
	var ops []Op
	mds := sortedKeys(k.MDs)
	mdByDev := map[string]MD{}
	for _, md := range plan.MDs {
		mdByDev[md.Device] = md
	}
	for _, dev := range mds {
		if found.activeMDs[dev] {
			continue
		}
		md, ok := mdByDev[dev]
		if !ok || len(md.Members) == 0 {
			return nil, fmt.Errorf("partition: kept md %q has no members in the plan", dev)
		}
		argv := append([]string{"mdadm", "--assemble", "--run", dev}, md.Members...)
		argv = append(argv, md.Spares...)
		ops = append(ops, Op{Step: StepActivate, Kind: OpRun, Device: dev, Argv: argv, Why: "keep_data: assemble the kept array"})
	}
	for _, vg := range sortedKeys(k.VGs) {
		ops = append(ops, Op{Step: StepActivate, Kind: OpRun, Device: vg, VG: vg, Argv: lvmArgv("vgchange", conf, "-ay", vg), Why: "keep_data: activate the kept volume group"})
	}
	for _, d := range plan.Disks {
		if k.Disks[d.Device] {
			continue
		}
		for _, r := range DiskWipeRanges(d) {
			ops = append(ops, Op{Step: StepWipe, Kind: OpZero, Device: d.Device, Offset: r.Offset, Length: r.Length, Why: "old signatures at the new boundaries"})
		}
		ops = append(ops, Op{Step: StepWipe, Kind: OpZero, Device: d.Device, Length: applyMiB, FromEnd: true, Why: "backup GPT"})
	}
	for _, d := range plan.Disks {
		if k.Disks[d.Device] {
			ops = append(ops, Op{Step: StepNodes, Kind: OpWaitNodes, Device: d.Device, Why: "keep_data: the existing table stays"})
			continue
		}
		ops = append(ops,
			Op{Step: StepGPT, Kind: OpWriteGPT, Device: d.Device},
			Op{Step: StepGPT, Kind: OpReread, Device: d.Device},
			Op{Step: StepNodes, Kind: OpWaitNodes, Device: d.Device},
		)
	}
	for _, d := range plan.Disks {
		for _, p := range d.Partitions {
			if k.Partitions[p.Device] != "" {
				continue
			}
			n := min(applyMiB, p.SizeMiB()*applyMiB)
			ops = append(ops,
				Op{Step: StepWipe, Kind: OpZero, Device: p.Device, Length: n, Why: "new partition start"},
				Op{Step: StepWipe, Kind: OpZero, Device: p.Device, Length: n, FromEnd: true, Why: "new partition end"},
			)
		}
	}
	for _, md := range plan.MDs {
		if k.MDs[md.Device] {
			continue
		}
		argv, err := mdCreateArgv(md)
		if err != nil {
			return nil, err
		}
		ops = append(ops, Op{Step: StepMD, Kind: OpRun, Device: md.Device, Argv: argv})
	}
	for _, pv := range plan.PVs {
		if k.VGs[pv.VG] {
			continue
		}
		ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: pv.Device, Argv: pvCreateArgv(pv, conf)})
	}
	for _, vg := range plan.VGs {
		if k.VGs[vg.Name] {
			continue
		}
		if len(vg.PVs) == 0 {
			return nil, fmt.Errorf("partition: vg %q has no physical volumes", vg.Name)
		}
		argv := lvmArgv("vgcreate", conf, vg.Name)
		argv = append(argv, vg.PVs...)
		ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: vg.Name, VG: vg.Name, Argv: argv})
	}
	for _, lv := range plan.LVs {
		dev := lvDevice(lv)
		if k.LVs[dev] {
			continue
		}
		if lv.SizeMiB <= 0 {
			return nil, fmt.Errorf("partition: lv %q in vg %q: size %d MiB must be > 0", lv.Name, lv.VG, lv.SizeMiB)
		}
		if k.VGs[lv.VG] && found.lvs[lv.VG+"/"+lv.Name] {
			ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: dev, VG: lv.VG, Argv: lvmArgv("lvremove", conf, "-ff", "--yes", lv.VG+"/"+lv.Name), Why: "keep_data: not kept, re-created"})
		}
		argv := lvmArgv("lvcreate", conf, "--yes", "-Wy", "-Zy", "-L", strconv.FormatInt(lv.SizeMiB, 10)+"m", "-n", lv.Name, lv.VG)
		ops = append(ops, Op{Step: StepLVM, Kind: OpRun, Device: dev, VG: lv.VG, Argv: argv})
	}
	for _, fs := range plan.FSs {
		if fs.Image || fs.KeepData || k.LVs[fs.Device] || k.MDs[fs.Device] || k.Partitions[fs.Device] != "" {
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

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ExistingFromInventory is the partitions the inventory lists, by disk
// path: CheckKept's input at prepare.
func ExistingFromInventory(inv *inventory.Inventory) map[string][]ExistingPartition {
	out := map[string][]ExistingPartition{}
	if inv == nil {
		return out
	}
	for _, d := range inv.Disks {
		path := d.Path
		if path == "" {
			path = "/dev/" + d.Name
		}
		for _, p := range d.Partitions {
			out[path] = append(out[path], ExistingPartition{Name: p.Name, Number: p.Number, StartBytes: p.StartBytes, SizeBytes: p.SizeBytes})
		}
	}
	return out
}
