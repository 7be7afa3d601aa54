package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// teardownState is what discovery found on and around the planned disks.
type teardownState struct {
	// onDisks: kernel names of the planned disks and of their current
	// partitions, by disk device.
	onDisks  map[string]string // kernel name → planned disk device
	oldParts map[string][]ExistingPartition
	mds      []mdArray
	pvs      []lvmPV
	lvs      []lvmLV
	// paths maps kernel names to the /dev paths teardown commands use.
	paths map[string]string
	// dmDisks: planned disks that are device-mapper devices (multipath
	// maps), whose partitions are kpartx maps.
	dmDisks map[string]bool
	// lvmMissing: the lvm tool is not installed (no LVM to tear down).
	lvmMissing bool
	// removeVGs is filled by teardownOps.
	removeVGs []string
}

// mdArray is one array of /proc/mdstat.
type mdArray struct {
	Name     string   // md127
	State    string   // active, inactive
	Level    string   // raid1, "" for an inactive array
	Members  []string // kernel names: sda3, sdb
	External string   // "imsm", "ddf", "/md127/0" for an external-metadata array or a volume in a container
}

// container reports an IMSM/DDF container or a volume inside one: left
// alone, as fuel-agent's skip_md_containers did (LP #1508908).
func (m mdArray) container() bool { return m.External != "" }

// parseMDStat parses /proc/mdstat.
func parseMDStat(s string) []mdArray {
	var out []mdArray
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.HasPrefix(f[0], "md") || f[1] != ":" {
			continue
		}
		m := mdArray{Name: f[0], State: f[2]}
		rest := f[3:]
		// "active (auto-read-only) raid1 ..." and "active raid1 sda[0]".
		for len(rest) > 0 && strings.HasPrefix(rest[0], "(") {
			rest = rest[1:]
		}
		if len(rest) > 0 && !strings.Contains(rest[0], "[") {
			m.Level = rest[0]
			rest = rest[1:]
		}
		for _, dev := range rest {
			if j := strings.IndexByte(dev, '['); j > 0 {
				m.Members = append(m.Members, dev[:j])
			}
		}
		if i+1 < len(lines) {
			if j := strings.Index(lines[i+1], "super external:"); j >= 0 {
				ext := strings.Fields(lines[i+1][j+len("super external:"):])
				if len(ext) > 0 {
					m.External = ext[0]
				} else {
					m.External = "external"
				}
			}
		}
		out = append(out, m)
	}
	return out
}

type lvmPV struct{ Path, Name, VG string }
type lvmLV struct{ Name, VG string }

// lvmReport parses `lvm pvs|lvs --reportformat json` output.
func lvmReport(out []byte, kind string) ([]map[string]string, error) {
	var r struct {
		Report []map[string][]map[string]string `json:"report"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("parse lvm %s report: %w", kind, err)
	}
	var rows []map[string]string
	for _, rep := range r.Report {
		rows = append(rows, rep[kind]...)
	}
	return rows, nil
}

// discover reads (without changing anything) what lives on the planned
// disks: their partitions, md arrays, LVM PVs, VGs and LVs.
func (a *applier) discover(ctx context.Context) (*teardownState, error) {
	dv := a.deps.Devices
	st := &teardownState{onDisks: map[string]string{}, oldParts: map[string][]ExistingPartition{}, paths: map[string]string{}}
	for _, d := range a.plan.Disks {
		name, err := dv.KernelName(d.Device)
		if err != nil {
			return nil, &StepError{Step: StepTeardown, Device: d.Device, Err: err}
		}
		st.onDisks[name] = d.Device
		st.paths[name] = d.Device
		if strings.HasPrefix(name, "dm-") {
			if st.dmDisks == nil {
				st.dmDisks = map[string]bool{}
			}
			st.dmDisks[d.Device] = true
		}
		parts, err := dv.Partitions(d.Device)
		if err != nil {
			return nil, &StepError{Step: StepTeardown, Device: d.Device, Err: fmt.Errorf("list partitions: %w", err)}
		}
		st.oldParts[d.Device] = parts
		for _, p := range parts {
			st.onDisks[p.Name] = d.Device
		}
	}
	mdstat, err := dv.MDStat()
	if err != nil {
		return nil, &StepError{Step: StepTeardown, Device: "/proc/mdstat", Err: err}
	}
	for _, m := range parseMDStat(mdstat) {
		touches := false
		for _, mem := range m.Members {
			if _, ok := st.onDisks[mem]; ok {
				touches = true
			}
		}
		if !touches {
			continue
		}
		st.mds = append(st.mds, m)
		if m.container() {
			continue
		}
		for _, n := range append([]string{m.Name}, m.Members...) {
			p, err := dv.Node(n)
			if err != nil {
				return nil, &StepError{Step: StepTeardown, Device: n, Err: err}
			}
			st.paths[n] = p
		}
	}
	pvOut, err := a.deps.Runner.Run(ctx, "lvm", lvmArgv("pvs", a.conf, "--reportformat", "json", "-o", "pv_name,vg_name")[1:]...)
	if errors.Is(err, exec.ErrNotFound) {
		st.lvmMissing = true
		a.log.Warn("lvm is not installed: no LVM teardown", "step", StepTeardown)
		return st, nil
	}
	if err != nil {
		return nil, &StepError{Step: StepTeardown, Device: "lvm", Err: fmt.Errorf("list physical volumes: %w", err)}
	}
	rows, err := lvmReport(pvOut, "pv")
	if err != nil {
		return nil, &StepError{Step: StepTeardown, Device: "lvm", Err: err}
	}
	for _, r := range rows {
		name, err := dv.KernelName(r["pv_name"])
		if err != nil {
			// A PV lvm reports whose node vanished is not on our disks.
			a.log.Warn("cannot resolve physical volume", "step", StepTeardown, "device", r["pv_name"], "error", err)
			continue
		}
		st.pvs = append(st.pvs, lvmPV{Path: r["pv_name"], Name: name, VG: r["vg_name"]})
	}
	lvOut, err := a.deps.Runner.Run(ctx, "lvm", lvmArgv("lvs", a.conf, "--reportformat", "json", "-o", "lv_name,vg_name")[1:]...)
	if err != nil {
		return nil, &StepError{Step: StepTeardown, Device: "lvm", Err: fmt.Errorf("list logical volumes: %w", err)}
	}
	rows, err = lvmReport(lvOut, "lv")
	if err != nil {
		return nil, &StepError{Step: StepTeardown, Device: "lvm", Err: err}
	}
	for _, r := range rows {
		st.lvs = append(st.lvs, lvmLV{Name: r["lv_name"], VG: r["vg_name"]})
	}
	return st, nil
}

// teardownOps is the teardown of what st found, pure: remove the LVs and
// VGs living only on the planned disks (or on md arrays made only of them),
// pvremove their PVs, stop those md arrays and zero their members'
// superblocks on the planned disks, check nothing holds the disks any more,
// and zero the first and last MiB of every existing partition. It
// refuses a VG or md array that also lives on a device the plan does not
// name: removing it would touch that device.
func teardownOps(plan *Plan, st *teardownState, conf string) ([]Op, error) {
	var ops []Op
	onPlanned := map[string]bool{}
	for n := range st.onDisks {
		onPlanned[n] = true
	}
	for _, m := range st.mds {
		if m.container() {
			continue // checked by OpCheckFree: a container holding a planned disk fails there
		}
		var outside []string
		for _, mem := range m.Members {
			if _, ok := st.onDisks[mem]; !ok {
				outside = append(outside, mem)
			}
		}
		if len(outside) > 0 {
			return nil, &StepError{Step: StepTeardown, Device: "/dev/" + m.Name, Err: fmt.Errorf("%w: md array also has members the plan does not name (%s); refusing to stop it", ErrNotPlanned, strings.Join(outside, ", "))}
		}
		onPlanned[m.Name] = true
	}
	// LVM first: a VG may sit on an md array that must stop afterwards.
	vgPVs := map[string][]lvmPV{}
	for _, pv := range st.pvs {
		if pv.VG != "" {
			vgPVs[pv.VG] = append(vgPVs[pv.VG], pv)
		}
	}
	var vgs []string
	for vg, pvs := range vgPVs {
		var in, out []string
		for _, pv := range pvs {
			if onPlanned[pv.Name] {
				in = append(in, pv.Path)
			} else {
				out = append(out, pv.Path)
			}
		}
		if len(in) == 0 {
			continue
		}
		if len(out) > 0 {
			return nil, &StepError{Step: StepTeardown, Device: in[0], Err: fmt.Errorf("%w: volume group %q also lives on %s; refusing to remove it", ErrNotPlanned, vg, strings.Join(out, ", "))}
		}
		vgs = append(vgs, vg)
	}
	sort.Strings(vgs)
	st.removeVGs = vgs
	for _, vg := range vgs {
		hasLV := false
		for _, lv := range st.lvs {
			if lv.VG == vg {
				hasLV = true
			}
		}
		if hasLV {
			ops = append(ops, Op{Step: StepTeardown, Kind: OpRun, Device: vg, VG: vg, Argv: lvmArgv("lvremove", conf, "-ff", vg)})
		}
		ops = append(ops, Op{Step: StepTeardown, Kind: OpRun, Device: vg, VG: vg, Argv: lvmArgv("vgremove", conf, "-ff", vg)})
	}
	for _, pv := range st.pvs {
		if onPlanned[pv.Name] {
			ops = append(ops, Op{Step: StepTeardown, Kind: OpRun, Device: pv.Path, Argv: lvmArgv("pvremove", conf, "-ff", "-y", pv.Path)})
		}
	}
	for _, m := range st.mds {
		if m.container() {
			continue
		}
		ops = append(ops, Op{Step: StepTeardown, Kind: OpRun, Device: st.paths[m.Name], Argv: []string{"mdadm", "--stop", st.paths[m.Name]}})
	}
	for _, m := range st.mds {
		if m.container() {
			continue
		}
		for _, mem := range m.Members {
			p := st.paths[mem]
			ops = append(ops, Op{Step: StepTeardown, Kind: OpRun, Device: p, Argv: []string{"mdadm", "--zero-superblock", "--force", p}})
		}
	}
	for _, d := range plan.Disks {
		if st.dmDisks[d.Device] && len(st.oldParts[d.Device]) > 0 {
			// A multipath disk's partitions are kpartx maps holding it.
			ops = append(ops, Op{Step: StepTeardown, Kind: OpRun, Device: d.Device, Argv: []string{"kpartx", "-d", "-p", "-part", d.Device}})
		}
		ops = append(ops, Op{Step: StepTeardown, Kind: OpCheckFree, Device: d.Device})
	}
	for _, d := range plan.Disks {
		for _, p := range st.oldParts[d.Device] {
			n := min(applyMiB, p.SizeBytes)
			ops = append(ops,
				Op{Step: StepTeardown, Kind: OpZero, Device: d.Device, Offset: p.StartBytes, Length: n, Why: "start of old partition " + p.Name},
				Op{Step: StepTeardown, Kind: OpZero, Device: d.Device, Offset: p.StartBytes + p.SizeBytes - n, Length: n, Why: "end of old partition " + p.Name},
			)
		}
	}
	return ops, nil
}
