package partition

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// keepSamplePlan is applySamplePlan with /boot (sda3) and a /srv LV of the
// os VG kept: sda holds kept volumes, sdb does not.
func keepSamplePlan() *Plan {
	plan := applySamplePlan()
	plan.LVs = append(plan.LVs, LV{Name: "data", VG: "os", SizeMiB: 300, Device: "/dev/mapper/os-data"})
	plan.FSs = append(plan.FSs, FS{Device: "/dev/mapper/os-data", Mount: "/srv", Type: "ext4", KeepData: true})
	plan.FSs[0].KeepData = true // /boot
	plan.KeepData = true
	return plan
}

// keepDevices is sda as the previous provision left it (the plan's table),
// sdb blank.
func keepDevices(t *testing.T, plan *Plan) *fakeDevices {
	dv := newFakeDevices(t)
	sda := dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096)
	for _, p := range plan.Disks[0].Partitions {
		sda.partitions = append(sda.partitions, ExistingPartition{Name: strings.TrimPrefix(p.Device, "/dev/"), Number: p.Number, StartBytes: p.BeginMiB << 20, SizeBytes: p.SizeMiB() << 20})
	}
	return dv
}

// keepLVM is the previous provision's LVM: os on sda4 with root, swap, data.
func keepLVM() []fakeRule {
	return []fakeRule{
		{prefix: "lvm pvs", out: `{"report":[{"pv":[{"pv_name":"/dev/sda4","vg_name":"os"}]}]}`},
		{prefix: "lvm lvs", contains: "lv_size,vg_extent_size", out: `{"report":[{"lv":[{"lv_name":"root","vg_name":"os","lv_size":"1000.00","vg_extent_size":"4.00"},{"lv_name":"swap","vg_name":"os","lv_size":"500.00","vg_extent_size":"4.00"},{"lv_name":"data","vg_name":"os","lv_size":"300.00","vg_extent_size":"4.00"}]}]}`},
		{prefix: "lvm lvs", out: `{"report":[{"lv":[{"lv_name":"root","vg_name":"os"},{"lv_name":"swap","vg_name":"os"},{"lv_name":"data","vg_name":"os"}]}]}`},
	}
}

func TestKeptVolumes(t *testing.T) {
	k := KeptVolumes(keepSamplePlan())
	want := Kept{
		Partitions: map[string]string{"/dev/sda3": "holds the kept filesystem /boot", "/dev/sda4": `a PV of the kept volume group "os"`},
		MDs:        map[string]bool{},
		VGs:        map[string]bool{"os": true},
		LVs:        map[string]bool{"/dev/mapper/os-data": true},
		Disks:      map[string]bool{"/dev/sda": true},
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	// A kept md keeps its members, and a VG on it.
	plan := applySamplePlan()
	plan.MDs[0].KeepData = true
	plan.KeepData = true
	k = KeptVolumes(plan)
	if k.Partitions["/dev/sda5"] == "" || k.Partitions["/dev/sdb3"] == "" || !k.Disks["/dev/sda"] || !k.Disks["/dev/sdb"] || len(k.VGs) != 0 {
		t.Errorf("kept md: %+v", k)
	}
}

// Apply on a KeepData plan: the kept VG is activated first, nothing kept is
// wiped, relabelled, re-created or mkfs'd; sda keeps its table, its other
// partitions are wiped at their edges and rebuilt (md0 member, PV... the PV
// of the kept VG stays); the non-kept LVs of the kept VG are re-created;
// sdb (nothing kept) gets a new GPT.
func TestApplyKeepData(t *testing.T) {
	plan := keepSamplePlan()
	dv := keepDevices(t, plan)
	r := &fakeRunner{rules: keepLVM()}
	blkidOK(r)
	if err := Apply(context.Background(), plan, ApplyDeps{Logger: testLogger(t), Runner: r, Devices: dv}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{
		"lvm pvs --reportformat json -o pv_name,vg_name",
		"lvm lvs --reportformat json -o lv_name,vg_name",
		"lvm lvs --reportformat json --units m --nosuffix -o lv_name,vg_name,lv_size,vg_extent_size",
		"lvm vgchange -ay os",
		"mdadm --create /dev/md0 --run --force --metadata=1.2 --level=mirror --raid-devices=2 /dev/sda5 /dev/sdb3",
		"lvm lvremove -ff --yes os/root",
		"lvm lvcreate --yes -Wy -Zy -L 1000m -n root os",
		"lvm lvremove -ff --yes os/swap",
		"lvm lvcreate --yes -Wy -Zy -L 500m -n swap os",
		"mkswap -f /dev/mapper/os-swap",
		"blkid -p -o value -s TYPE /dev/mapper/os-swap",
		"mkfs.xfs -f -q -L a-very-long- /dev/md0",
		"blkid -p -o value -s TYPE /dev/md0",
	}
	if diff := cmp.Diff(want, r.commands()); diff != "" {
		t.Errorf("keep_data commands (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/dev/sdb"}, dv.opened); diff != "" {
		t.Errorf("GPT written on (-want +got):\n%s", diff)
	}
	for _, z := range dv.zeroes {
		dev := strings.Fields(z)[0]
		if dev == "/dev/sda" || dev == "/dev/sda3" || dev == "/dev/sda4" {
			t.Errorf("zeroed %s: it holds kept data", z)
		}
	}
	var sdaParts []string
	for _, z := range dv.zeroes {
		if strings.HasPrefix(z, "/dev/sda") {
			sdaParts = append(sdaParts, strings.Fields(z)[0])
		}
	}
	if diff := cmp.Diff([]string{"/dev/sda1", "/dev/sda1", "/dev/sda2", "/dev/sda2", "/dev/sda5", "/dev/sda5"}, sdaParts); diff != "" {
		t.Errorf("sda partitions wiped (-want +got):\n%s", diff)
	}
}

// Refusals happen before anything runs or is written.
func TestApplyKeepDataRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edit  func(plan *Plan, dv *fakeDevices, r *fakeRunner)
		dev   string
		wants string
	}{
		{"kept partition moves", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			plan.Disks[0].Partitions[2].EndMiB = 428 // /boot one MiB larger
			plan.Disks[0].Partitions[3].BeginMiB = 429
		}, "/dev/sda", "partition /dev/sda3 (kept: holds the kept filesystem /boot) would move: on disk it is 227–427 MiB, the plan puts it at 227–428 MiB"},
		{"neighbour moves", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			plan.Disks[0].Partitions[4].EndMiB = 3500
		}, "/dev/sda", "partition /dev/sda5 (not kept, but on a disk with kept volumes) would move"},
		{"extra partition on disk", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			sda := dv.devs["/dev/sda"]
			sda.partitions = append(sda.partitions, ExistingPartition{Name: "sda6", Number: 6, StartBytes: 3500 << 20, SizeBytes: 10 << 20})
		}, "/dev/sda", "existing partition 6 (3500–3510 MiB) is not in the plan"},
		{"kept LV missing", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			r.rules[1].out = `{"report":[{"lv":[]}]}`
		}, "/dev/mapper/os-data", "LV os/data is kept but does not exist"},
		{"kept LV resized", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			plan.LVs[2].SizeMiB = 400
		}, "/dev/mapper/os-data", "LV os/data is kept but is 300 MiB, the plan says 400 MiB"},
		{"kept VG elsewhere", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			r.rules[0].out = `{"report":[{"pv":[{"pv_name":"/dev/sda4","vg_name":"os"},{"pv_name":"/dev/sdc1","vg_name":"os"}]}]}`
		}, "/dev/sdc1", `the kept volume group "os" also lives on /dev/sdc1`},
		{"kept image target", func(plan *Plan, dv *fakeDevices, r *fakeRunner) {
			plan.FSs[1].KeepData = true // "/", filled by an image
		}, "/dev/mapper/os-root", "keep_data on /, which ks_meta.image_data fills"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := keepSamplePlan()
			dv := keepDevices(t, plan)
			r := &fakeRunner{rules: keepLVM()}
			tt.edit(plan, dv, r)
			err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv})
			var se *StepError
			if !errors.As(err, &se) || se.Device != tt.dev || !strings.Contains(err.Error(), tt.wants) {
				t.Fatalf("Apply = %v\nwant a StepError on %s containing %q", err, tt.dev, tt.wants)
			}
			if len(dv.touched()) != 0 || len(dv.reread) != 0 {
				t.Errorf("touched %v before refusing", dv.touched())
			}
			for _, c := range r.commands() {
				if !strings.HasPrefix(c, "lvm pvs") && !strings.HasPrefix(c, "lvm lvs") {
					t.Errorf("ran %q before refusing", c)
				}
			}
		})
	}
}

// Operations (the dry-run listing) of a KeepData plan activates first and
// never names a kept device in a destructive op.
func TestOperationsKeepData(t *testing.T) {
	plan := keepSamplePlan()
	ops, err := Operations(plan, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 || ops[0].Step != StepActivate || ops[0].String() != "activate: lvm vgchange -ay os" {
		t.Fatalf("first op %v, want the kept VG's activation", ops[0])
	}
	for _, op := range ops {
		if op.Kind == OpWaitNodes || op.Step == StepActivate {
			continue
		}
		for _, dev := range append([]string{op.Device}, op.Argv...) {
			switch dev {
			case "/dev/sda", "/dev/sda3", "/dev/sda4", "/dev/mapper/os-data":
				t.Errorf("op %s touches the kept %s", op, dev)
			}
		}
	}
}

// A kept md array: its members' superblocks must name one array; it is
// assembled first; neither member disk's table is rewritten; the array is
// not re-created or formatted.
func TestApplyKeepDataMD(t *testing.T) {
	plan := applySamplePlan()
	plan.MDs[0].KeepData = true
	plan.KeepData = true
	dv := newFakeDevices(t)
	for i, dev := range []string{"/dev/sda", "/dev/sdb"} {
		d := dv.addDisk(dev, 4096)
		for _, p := range plan.Disks[i].Partitions {
			d.partitions = append(d.partitions, ExistingPartition{Name: strings.TrimPrefix(p.Device, "/dev/"), Number: p.Number, StartBytes: p.BeginMiB << 20, SizeBytes: p.SizeMiB() << 20})
		}
	}
	uuid := "MD_UUID=6ad9b1b6:4a4c4f1e:8f3c0e2d:5b1f6a7c\n"
	r := &fakeRunner{rules: append([]fakeRule{{prefix: "mdadm --examine --export", out: "MD_LEVEL=raid1\n" + uuid}}, emptyLVM...)}
	blkidOK(r)
	if err := Apply(context.Background(), plan, ApplyDeps{Logger: testLogger(t), Runner: r, Devices: dv}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	cmds := r.commands()
	want := []string{
		"lvm pvs --reportformat json -o pv_name,vg_name",
		"lvm lvs --reportformat json -o lv_name,vg_name",
		"mdadm --examine --export /dev/sda5",
		"mdadm --examine --export /dev/sdb3",
		"mdadm --assemble --run /dev/md0 /dev/sda5 /dev/sdb3",
	}
	if len(cmds) < len(want) {
		t.Fatalf("commands %q", cmds)
	}
	if diff := cmp.Diff(want, cmds[:len(want)]); diff != "" {
		t.Errorf("first commands (-want +got):\n%s", diff)
	}
	for _, c := range cmds {
		if strings.Contains(c, "mdadm --create") || strings.HasSuffix(c, "/dev/md0") && strings.HasPrefix(c, "mkfs") {
			t.Errorf("ran %q on the kept array", c)
		}
	}
	if len(dv.opened) != 0 {
		t.Errorf("GPT written on %v: both disks hold a kept array member", dv.opened)
	}

	// Members of two different arrays: refused before anything runs.
	r = &fakeRunner{rules: append([]fakeRule{{prefix: "mdadm --examine --export /dev/sda5", out: uuid}, {prefix: "mdadm --examine --export", out: "MD_UUID=00000000:00000000:00000000:00000001\n"}}, emptyLVM...)}
	dv.zeroes = nil
	err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv})
	if err == nil || !strings.Contains(err.Error(), "do not belong to one array") || len(dv.zeroes) != 0 {
		t.Errorf("Apply = %v, zeroed %v; want a refusal", err, dv.zeroes)
	}
}

// keep_data on an LV of a ks_spaces VG keeps that LV (and its filesystem),
// not its neighbours: the planner used to drop the flag.
func TestPlanKeepDataLV(t *testing.T) {
	doc := planLoadDoc(t, "provision_sample_nailgun_3disks.json")
	for i := range doc.KsMeta.PmData.KsSpaces {
		s := &doc.KsMeta.PmData.KsSpaces[i]
		if s.ID == "os" {
			for j := range s.Volumes {
				if s.Volumes[j].Name == "swap" {
					s.Volumes[j].KeepData = true
				}
			}
		}
	}
	p, err := NewPlan(doc, nil, DefaultPlanOptions())
	if err != nil {
		t.Fatal(err)
	}
	k := KeptVolumes(p)
	if !p.KeepData || !k.LVs["/dev/mapper/os-swap"] || k.LVs["/dev/mapper/os-root"] || !k.VGs["os"] {
		t.Errorf("keep_data %v, kept %+v: want os/swap (and so VG os) kept, os/root not", p.KeepData, k)
	}
}
