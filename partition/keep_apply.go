package partition

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// prepareKeep is prepare for a KeepData plan: the disks holding kept
// volumes must carry the plan's partition table (CheckKept on what the
// kernel lists now), the kept VGs and LVs must exist where and as large as
// the plan says, the kept md arrays' members must belong to one array;
// then the teardown of everything that is not kept, and keepOperations.
// Nothing is written before all of that is checked.
func (a *applier) prepareKeep(ctx context.Context) ([]Op, error) {
	k := KeptVolumes(a.plan)
	existing := map[string][]ExistingPartition{}
	for _, d := range a.plan.Disks {
		parts, err := a.deps.Devices.Partitions(d.Device)
		if err != nil {
			return nil, &StepError{Step: StepSafety, Device: d.Device, Err: fmt.Errorf("list partitions: %w", err)}
		}
		existing[d.Device] = parts
	}
	if err := CheckKept(a.plan, existing); err != nil {
		var ke *KeptPartitionError
		if errors.As(err, &ke) {
			return nil, &StepError{Step: StepSafety, Device: ke.Disk, Err: err}
		}
		return nil, err
	}
	st, err := a.discover(ctx)
	if err != nil {
		return nil, err
	}
	found, err := a.verifyKept(ctx, k, st)
	if err != nil {
		return nil, err
	}
	if err := a.restrictTeardown(st, k, existing); err != nil {
		return nil, err
	}
	sub := &Plan{}
	for _, d := range a.plan.Disks {
		if !k.Disks[d.Device] {
			sub.Disks = append(sub.Disks, d)
		}
	}
	td, err := teardownOps(sub, st, a.conf)
	if err != nil {
		return nil, err
	}
	for _, op := range td {
		a.allowTeardown(op)
	}
	for _, vg := range st.removeVGs {
		a.vgs[vg] = true
	}
	rest, err := keepOperations(a.plan, k, found, a.conf)
	if err != nil {
		return nil, err
	}
	// The kept stack comes up before anything else runs.
	var ops, after []Op
	for _, op := range rest {
		if op.Step == StepActivate {
			ops = append(ops, op)
		} else {
			after = append(after, op)
		}
	}
	ops = append(ops, td...)
	ops = append(ops, after...)
	for _, op := range ops {
		if err := a.guard(op, op.Device, op.Argv); err != nil {
			return nil, err
		}
	}
	a.log.Info("keep_data: kept volumes verified", "partitions", len(k.Partitions), "md", sortedKeys(k.MDs), "vgs", sortedKeys(k.VGs), "lvs", sortedKeys(k.LVs))
	return ops, nil
}

// verifyKept checks the kept VGs (their PVs are the planned ones, by
// kernel name), LVs (present, as large as planned up to one extent) and md
// arrays (every member carries the same array UUID), read-only.
func (a *applier) verifyKept(ctx context.Context, k Kept, st *teardownState) (keepFound, error) {
	found := keepFound{activeMDs: map[string]bool{}, lvs: map[string]bool{}}
	mdstat := map[string]mdArray{}
	raw, err := a.deps.Devices.MDStat()
	if err != nil {
		return found, &StepError{Step: StepSafety, Device: "/proc/mdstat", Err: err}
	}
	for _, m := range parseMDStat(raw) {
		mdstat[m.Name] = m
	}
	mdByDev := map[string]MD{}
	for _, md := range a.plan.MDs {
		mdByDev[md.Device] = md
	}
	for _, dev := range sortedKeys(k.MDs) {
		md := mdByDev[dev]
		name, err := a.deps.Devices.KernelName(dev)
		if err == nil {
			if m, ok := mdstat[name]; ok && m.State == "active" {
				found.activeMDs[dev] = true
				continue
			}
		}
		var uuid string
		for _, mem := range append(append([]string{}, md.Members...), md.Spares...) {
			out, err := a.deps.Runner.Run(ctx, "mdadm", "--examine", "--export", mem)
			if err != nil {
				return found, &StepError{Step: StepSafety, Device: mem, Err: fmt.Errorf("keep_data: md %s is kept but its member carries no md superblock: %w", dev, err)}
			}
			u := exportValue(string(out), "MD_UUID")
			if u == "" || (uuid != "" && u != uuid) {
				return found, &StepError{Step: StepSafety, Device: mem, Err: fmt.Errorf("keep_data: md %s is kept but its members do not belong to one array (MD_UUID %q, another member %q)", dev, u, uuid)}
			}
			uuid = u
		}
	}
	if len(k.VGs) == 0 {
		return found, nil
	}
	if st.lvmMissing {
		return found, &StepError{Step: StepSafety, Device: "lvm", Err: errors.New("keep_data: volume groups are kept but lvm is not installed")}
	}
	// The planned PVs of each kept VG, by kernel name.
	for _, vg := range a.plan.VGs {
		if !k.VGs[vg.Name] {
			continue
		}
		want := map[string]string{}
		onMD := false
		for _, pv := range vg.PVs {
			if _, ok := mdByDev[pv]; ok && !found.activeMDs[pv] {
				onMD = true // not visible before assembly
				continue
			}
			n, err := a.deps.Devices.KernelName(pv)
			if err != nil {
				return found, &StepError{Step: StepSafety, Device: pv, Err: err}
			}
			want[n] = pv
		}
		var have []string
		for _, pv := range st.pvs {
			if pv.VG != vg.Name {
				continue
			}
			have = append(have, pv.Name)
			if _, ok := want[pv.Name]; !ok && !onMD {
				return found, &StepError{Step: StepSafety, Device: pv.Path, Err: fmt.Errorf("keep_data: the kept volume group %q also lives on %s, which the plan does not give it", vg.Name, pv.Path)}
			}
			delete(want, pv.Name)
		}
		for _, pv := range want {
			return found, &StepError{Step: StepSafety, Device: pv, Err: fmt.Errorf("keep_data: volume group %q is kept but %s is not one of its PVs (found on %v)", vg.Name, pv, have)}
		}
	}
	out, err := a.deps.Runner.Run(ctx, "lvm", lvmArgv("lvs", a.conf, "--reportformat", "json", "--units", "m", "--nosuffix", "-o", "lv_name,vg_name,lv_size,vg_extent_size")[1:]...)
	if err != nil {
		return found, &StepError{Step: StepSafety, Device: "lvm", Err: fmt.Errorf("keep_data: list logical volumes: %w", err)}
	}
	rows, err := lvmReport(out, "lv")
	if err != nil {
		return found, &StepError{Step: StepSafety, Device: "lvm", Err: err}
	}
	type lvInfo struct{ size, extent float64 }
	lvs := map[string]lvInfo{}
	for _, r := range rows {
		size, _ := strconv.ParseFloat(strings.TrimSpace(r["lv_size"]), 64)
		ext, _ := strconv.ParseFloat(strings.TrimSpace(r["vg_extent_size"]), 64)
		lvs[r["vg_name"]+"/"+r["lv_name"]] = lvInfo{size, ext}
		found.lvs[r["vg_name"]+"/"+r["lv_name"]] = true
	}
	for _, lv := range a.plan.LVs {
		if !k.LVs[lvDevice(lv)] {
			continue
		}
		got, ok := lvs[lv.VG+"/"+lv.Name]
		if !ok {
			return found, &StepError{Step: StepSafety, Device: lvDevice(lv), Err: fmt.Errorf("keep_data: LV %s/%s is kept but does not exist", lv.VG, lv.Name)}
		}
		ext := math.Max(got.extent, 1)
		want := math.Ceil(float64(lv.SizeMiB)/ext) * ext
		if math.Abs(got.size-want) > 0.5 {
			return found, &StepError{Step: StepSafety, Device: lvDevice(lv), Err: fmt.Errorf("keep_data: LV %s/%s is kept but is %.0f MiB, the plan says %d MiB", lv.VG, lv.Name, got.size, lv.SizeMiB)}
		}
	}
	return found, nil
}

// restrictTeardown removes from what discovery found everything kept: the
// kept partitions (and the whole kept disks: their tables stay), the PVs of
// kept VGs and md arrays with kept members. teardownOps then refuses a VG
// or array spanning kept and non-kept devices, as it refuses one spanning
// a disk the plan does not name.
func (a *applier) restrictTeardown(st *teardownState, k Kept, existing map[string][]ExistingPartition) error {
	keptNames := map[string]bool{}
	for _, d := range a.plan.Disks {
		if !k.Disks[d.Device] {
			continue
		}
		name, err := a.deps.Devices.KernelName(d.Device)
		if err != nil {
			return &StepError{Step: StepTeardown, Device: d.Device, Err: err}
		}
		delete(st.onDisks, name)
		byNum := map[int]string{}
		for _, p := range existing[d.Device] {
			byNum[p.Number] = p.Name
		}
		for _, p := range d.Partitions {
			if k.Partitions[p.Device] != "" {
				delete(st.onDisks, byNum[p.Number])
				keptNames[byNum[p.Number]] = true
			}
		}
		st.oldParts[d.Device] = nil
	}
	for dev := range k.MDs {
		if n, err := a.deps.Devices.KernelName(dev); err == nil {
			keptNames[n] = true
		}
	}
	var pvs []lvmPV
	for _, pv := range st.pvs {
		if !k.VGs[pv.VG] {
			pvs = append(pvs, pv)
		}
	}
	st.pvs = pvs
	var mds []mdArray
	for _, m := range st.mds {
		kept := keptNames[m.Name]
		for _, mem := range m.Members {
			kept = kept || keptNames[mem]
		}
		if !kept {
			mds = append(mds, m)
		}
	}
	st.mds = mds
	return nil
}

// exportValue is KEY's value in `mdadm --export` KEY=VALUE output.
func exportValue(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			return v
		}
	}
	return ""
}
