package partition

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMDStat(t *testing.T) {
	const mdstat = `Personalities : [raid1] [raid6] [raid5] [raid4]
md126 : active raid1 sda[1] sdb[0]
      976759808 blocks super external:/md127/0 [2/2] [UU]

md127 : inactive sdb[1](S) sda[0](S)
      5288 blocks super external:imsm

md0 : active (auto-read-only) raid1 vdb3[1] vda3[0]
      1047552 blocks super 1.2 [2/2] [UU]
      	resync=PENDING

md1 : inactive vdc1[0](S)
      1047552 blocks super 0.90

md2 : active raid5 nvme2n1p1[3](S) nvme1n1p1[1] nvme0n1p1[0](F)
      2093056 blocks super 1.2 level 5, 512k chunk, algorithm 2 [2/1] [U_]

unused devices: <none>
`
	want := []mdArray{
		{Name: "md126", State: "active", Level: "raid1", Members: []string{"sda", "sdb"}, External: "/md127/0"},
		{Name: "md127", State: "inactive", Members: []string{"sdb", "sda"}, External: "imsm"},
		{Name: "md0", State: "active", Level: "raid1", Members: []string{"vdb3", "vda3"}},
		{Name: "md1", State: "inactive", Members: []string{"vdc1"}},
		{Name: "md2", State: "active", Level: "raid5", Members: []string{"nvme2n1p1", "nvme1n1p1", "nvme0n1p1"}},
	}
	if diff := cmp.Diff(want, parseMDStat(mdstat)); diff != "" {
		t.Errorf("parseMDStat (-want +got):\n%s", diff)
	}
	if got := parseMDStat(""); got != nil {
		t.Errorf("parseMDStat(\"\") = %v", got)
	}
}

func TestLVMReport(t *testing.T) {
	out := []byte(`  {
      "report": [
          {
              "pv": [
                  {"pv_name":"/dev/sda4", "vg_name":"os"},
                  {"pv_name":"/dev/md0", "vg_name":""}
              ]
          }
      ]
  }
`)
	rows, err := lvmReport(out, "pv")
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"pv_name": "/dev/sda4", "vg_name": "os"}, {"pv_name": "/dev/md0", "vg_name": ""}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("lvmReport (-want +got):\n%s", diff)
	}
	if _, err := lvmReport([]byte("  No volume groups found\n"), "pv"); err == nil {
		t.Error("garbage report accepted")
	}
}

func TestTeardownOps(t *testing.T) {
	plan := &Plan{Disks: []Disk{{Device: "/dev/sda"}, {Device: "/dev/sdb"}}}
	base := func() *teardownState {
		return &teardownState{
			onDisks: map[string]string{"sda": "/dev/sda", "sda1": "/dev/sda", "sda2": "/dev/sda", "sdb": "/dev/sdb", "sdb1": "/dev/sdb"},
			oldParts: map[string][]ExistingPartition{
				"/dev/sda": {{Name: "sda1", Number: 1, StartBytes: 1 << 20, SizeBytes: 100 << 20}, {Name: "sda2", Number: 2, StartBytes: 101 << 20, SizeBytes: 512 << 10}},
			},
			paths: map[string]string{"md0": "/dev/md0", "sda2": "/dev/sda2", "sdb1": "/dev/sdb1", "md127": "/dev/md127"},
		}
	}
	t.Run("md and lvm on the planned disks", func(t *testing.T) {
		st := base()
		st.mds = []mdArray{
			{Name: "md0", State: "active", Level: "raid1", Members: []string{"sda2", "sdb1"}},
			{Name: "md127", State: "inactive", Members: []string{"sda", "sdx"}, External: "imsm"},
		}
		st.pvs = []lvmPV{{Path: "/dev/md0", Name: "md0", VG: "data"}, {Path: "/dev/sda1", Name: "sda1"}, {Path: "/dev/sdz1", Name: "sdz1", VG: "other"}}
		st.lvs = []lvmLV{{Name: "srv", VG: "data"}, {Name: "x", VG: "other"}}
		ops, err := teardownOps(plan, st, "")
		if err != nil {
			t.Fatal(err)
		}
		got := opStrings(ops)
		want := []string{
			"teardown: lvm lvremove -ff data",
			"teardown: lvm vgremove -ff data",
			"teardown: lvm pvremove -ff -y /dev/md0",
			"teardown: lvm pvremove -ff -y /dev/sda1",
			"teardown: mdadm --stop /dev/md0",
			"teardown: mdadm --zero-superblock --force /dev/sda2",
			"teardown: mdadm --zero-superblock --force /dev/sdb1",
			"teardown: check-free /dev/sda",
			"teardown: check-free /dev/sdb",
			"teardown: zero /dev/sda [1 MiB, 2 MiB) (start of old partition sda1)",
			"teardown: zero /dev/sda [100 MiB, 101 MiB) (end of old partition sda1)",
			"teardown: zero /dev/sda [105906176, 106430464) bytes (start of old partition sda2)",
			"teardown: zero /dev/sda [105906176, 106430464) bytes (end of old partition sda2)",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("teardownOps (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"data"}, st.removeVGs); diff != "" {
			t.Errorf("removeVGs (-want +got):\n%s", diff)
		}
	})
	for _, tt := range []struct {
		name   string
		mutate func(st *teardownState)
		substr string
	}{
		{"vg spans an unplanned disk", func(st *teardownState) {
			st.pvs = []lvmPV{{Path: "/dev/sda1", Name: "sda1", VG: "os"}, {Path: "/dev/sdc1", Name: "sdc1", VG: "os"}}
		}, `volume group "os" also lives on /dev/sdc1`},
		{"md spans an unplanned disk", func(st *teardownState) {
			st.mds = []mdArray{{Name: "md0", Members: []string{"sda2", "sdc2"}}}
		}, "members the plan does not name (sdc2)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := base()
			tt.mutate(st)
			_, err := teardownOps(plan, st, "")
			if !errors.Is(err, ErrNotPlanned) || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("teardownOps = %v, want ErrNotPlanned containing %q", err, tt.substr)
			}
		})
	}
}

// A container (IMSM) still holding a planned disk after teardown fails the
// check, naming it.
func TestApplyFailsWhenContainerHoldsDisk(t *testing.T) {
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096).holders = []string{"md127"}
	dv.mdstat = "md127 : inactive sdb[0](S)\n      5288 blocks super external:imsm\n"
	r := &fakeRunner{rules: emptyLVM}
	err := Apply(t.Context(), applySamplePlan(), ApplyDeps{Runner: r, Devices: dv})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepTeardown || se.Device != "/dev/sdb" || !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "held by md127") {
		t.Fatalf("Apply = %v, want a teardown ErrInUse on /dev/sdb naming md127", err)
	}
	for _, c := range r.commands() {
		if strings.Contains(c, "md127") {
			t.Errorf("touched the container: %q", c)
		}
	}
}
