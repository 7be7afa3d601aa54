package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testLogger routes Apply's log to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// applySamplePlan is two disks with bios_grub, /boot, an LVM PV, an md
// mirror across both disks, an image-filled root LV and swap.
func applySamplePlan() *Plan {
	part := func(disk string, n int, b, e int64, purpose string, flags ...string) Partition {
		return Partition{Number: n, Device: fmt.Sprintf("%s%d", disk, n), Disk: disk, BeginMiB: b, EndMiB: e, Purpose: purpose, Flags: flags}
	}
	return &Plan{
		Disks: []Disk{
			{Device: "/dev/sda", Name: "sda", SizeMiB: 4096, Label: "gpt", Bootloader: true, Partitions: []Partition{
				part("/dev/sda", 1, 1, 25, PurposeBiosGrub, "bios_grub"),
				part("/dev/sda", 2, 26, 226, PurposeUEFI),
				part("/dev/sda", 3, 227, 427, PurposeFS),
				part("/dev/sda", 4, 428, 2428, PurposePV),
				part("/dev/sda", 5, 2429, 3429, PurposeRaid),
			}},
			{Device: "/dev/sdb", Name: "sdb", SizeMiB: 4096, Label: "gpt", Bootloader: true, Partitions: []Partition{
				part("/dev/sdb", 1, 1, 25, PurposeBiosGrub, "bios_grub"),
				part("/dev/sdb", 2, 26, 226, PurposeUEFI),
				part("/dev/sdb", 3, 227, 1227, PurposeRaid),
			}},
		},
		MDs: []MD{{Device: "/dev/md0", Level: "mirror", Metadata: "default", Members: []string{"/dev/sda5", "/dev/sdb3"}, Mount: "/var"}},
		PVs: []PV{{Device: "/dev/sda4", VG: "os", MetadataSizeMiB: 28, MetadataCopies: 2}},
		VGs: []VG{{Name: "os", PVs: []string{"/dev/sda4"}}},
		LVs: []LV{
			{Name: "root", VG: "os", SizeMiB: 1000, Device: "/dev/mapper/os-root"},
			{Name: "swap", VG: "os", SizeMiB: 500, Device: "/dev/mapper/os-swap"},
		},
		FSs: []FS{
			{Device: "/dev/sda3", Mount: "/boot", Type: "ext2", Label: "boot"},
			{Device: "/dev/mapper/os-root", Mount: "/", Type: "ext4", Image: true},
			{Device: "/dev/mapper/os-swap", Mount: "swap", Type: "swap"},
			{Device: "/dev/md0", Mount: "/var", Type: "xfs", Label: "a-very-long-label"},
		},
	}
}

// emptyLVM answers the discovery reports with no PV and no LV.
var emptyLVM = []fakeRule{
	{prefix: "lvm pvs", out: `{"report":[{"pv":[]}]}`},
	{prefix: "lvm lvs", out: `{"report":[{"lv":[]}]}`},
}

// blkidOK makes blkid report the type each mkfs made.
func blkidOK(r *fakeRunner) {
	made := map[string]string{}
	r.onRun = func(argv []string) {
		dev := argv[len(argv)-1]
		switch argv[0] {
		case "mke2fs":
			made[dev] = argv[2]
		case "mkfs.xfs", "mkfs.vfat":
			made[dev] = strings.TrimPrefix(argv[0], "mkfs.")
		case "mkswap":
			made[dev] = "swap"
		case "blkid":
			r.rules = append([]fakeRule{{prefix: strings.Join(argv, " "), out: made[dev] + "\n", times: 1}}, r.rules...)
		}
	}
}

// sampleApplyDeps are fakes for applySamplePlan: sda and sdb of 4096 MiB
// without partitions, no LVM, blkid finding what mkfs made.
func sampleApplyDeps(t *testing.T) (ApplyDeps, *fakeDevices, *fakeRunner) {
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096)
	r := &fakeRunner{rules: append([]fakeRule(nil), emptyLVM...)}
	blkidOK(r)
	return ApplyDeps{Logger: testLogger(t), Runner: r, Devices: dv}, dv, r
}

func TestApplyFakeCommands(t *testing.T) {
	plan := applySamplePlan()
	deps, dv, r := sampleApplyDeps(t)
	if err := Apply(context.Background(), plan, deps); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{
		"lvm pvs --reportformat json -o pv_name,vg_name",
		"lvm lvs --reportformat json -o lv_name,vg_name",
		"mdadm --create /dev/md0 --run --force --metadata=1.2 --level=mirror --raid-devices=2 /dev/sda5 /dev/sdb3",
		"lvm pvcreate --metadatacopies 2 --metadatasize 28m -ff -y /dev/sda4",
		"lvm vgcreate os /dev/sda4",
		"lvm lvcreate --yes -Wy -Zy -L 1000m -n root os",
		"lvm lvcreate --yes -Wy -Zy -L 500m -n swap os",
		"mke2fs -t ext2 -F -q -L boot /dev/sda3",
		"blkid -p -o value -s TYPE /dev/sda3",
		"mkswap -f /dev/mapper/os-swap",
		"blkid -p -o value -s TYPE /dev/mapper/os-swap",
		"mkfs.xfs -f -q -L a-very-long- /dev/md0",
		"blkid -p -o value -s TYPE /dev/md0",
	}
	if diff := cmp.Diff(want, r.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	// Every lvm command carries the udev-less configuration.
	for _, c := range r.calls {
		if c[0] == "lvm" && (len(c) < 4 || c[2] != "--config" || c[3] != DefaultLVMConfig) {
			t.Errorf("lvm without --config: %q", c)
		}
	}
	if diff := cmp.Diff([]string{"/dev/sda", "/dev/sdb"}, dv.reread); diff != "" {
		t.Errorf("BLKRRPART (-want +got):\n%s", diff)
	}
	wantTouched := []string{"/dev/sda", "/dev/sda1", "/dev/sda2", "/dev/sda3", "/dev/sda4", "/dev/sda5", "/dev/sdb", "/dev/sdb1", "/dev/sdb2", "/dev/sdb3"}
	if diff := cmp.Diff(wantTouched, dv.touched()); diff != "" {
		t.Errorf("devices written (-want +got):\n%s", diff)
	}
	// The pre-GPT wipe of sdb: [0,3) MiB merged with the start of
	// partition 1, then every boundary ±, then the backup GPT.
	var sdb []string
	for _, z := range dv.zeroes {
		if strings.HasPrefix(z, "/dev/sdb ") {
			sdb = append(sdb, z)
		}
	}
	mib := func(a, b int64) string { return fmt.Sprintf("/dev/sdb %d+%d", a<<20, (b-a)<<20) }
	wantSdb := []string{mib(0, 3), mib(22, 28), mib(223, 229), mib(1224, 1229), mib(4095, 4096)}
	if diff := cmp.Diff(wantSdb, sdb); diff != "" {
		t.Errorf("sdb wipe (-want +got):\n%s", diff)
	}
	// The GPT went to the image for real.
	tbl := readFakeGPT(t, dv.image("/dev/sdb"))
	if got, want := len(tbl.Partitions), 3; got != want {
		t.Fatalf("sdb GPT has %d partitions, want %d", got, want)
	}
	if p := tbl.Partitions[2]; p.Start != 227*2048 || p.End != 1227*2048-1 || string(p.Type) != gptTypeLinuxRAID {
		t.Errorf("sdb3 = start %d end %d type %s", p.Start, p.End, p.Type)
	}
}

func TestApplyTwiceIsIdempotent(t *testing.T) {
	plan := applySamplePlan()
	deps, dv, r := sampleApplyDeps(t)
	if err := Apply(context.Background(), plan, deps); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	first := len(r.calls)
	// Now the disks carry what the first run made.
	dv.devs["/dev/sda"].partitions = []ExistingPartition{{Name: "sda4", Number: 4, StartBytes: 428 << 20, SizeBytes: 2000 << 20}, {Name: "sda5", Number: 5, StartBytes: 2429 << 20, SizeBytes: 1000 << 20}}
	dv.devs["/dev/sdb"].partitions = []ExistingPartition{{Name: "sdb3", Number: 3, StartBytes: 227 << 20, SizeBytes: 1000 << 20}}
	dv.mdstat = "Personalities : [raid1]\nmd0 : active raid1 sdb3[1] sda5[0]\n      1023936 blocks super 1.2 [2/2] [UU]\n\nunused devices: <none>\n"
	r.rules = []fakeRule{
		{prefix: "lvm pvs", out: `{"report":[{"pv":[{"pv_name":"/dev/sda4","vg_name":"os"}]}]}`},
		{prefix: "lvm lvs", out: `{"report":[{"lv":[{"lv_name":"root","vg_name":"os"},{"lv_name":"swap","vg_name":"os"}]}]}`},
	}
	if err := Apply(context.Background(), plan, deps); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	got := (&fakeRunner{calls: r.calls[first:]}).commands()[:8]
	want := []string{
		"lvm pvs --reportformat json -o pv_name,vg_name",
		"lvm lvs --reportformat json -o lv_name,vg_name",
		"lvm lvremove -ff os",
		"lvm vgremove -ff os",
		"lvm pvremove -ff -y /dev/sda4",
		"mdadm --stop /dev/md0",
		"mdadm --zero-superblock --force /dev/sdb3",
		"mdadm --zero-superblock --force /dev/sda5",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second run teardown (-want +got):\n%s", diff)
	}
}

func TestApplyRefusesMounted(t *testing.T) {
	plan := applySamplePlan()
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096).mounts = []string{"sdb1 mounted on /mnt"}
	r := &fakeRunner{rules: emptyLVM}
	err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepSafety || se.Device != "/dev/sdb" || !errors.Is(err, ErrInUse) {
		t.Fatalf("Apply = %v, want a safety StepError on /dev/sdb wrapping ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "sdb1 mounted on /mnt") {
		t.Errorf("error %q does not say what is mounted", err)
	}
	if len(dv.touched()) != 0 || len(r.calls) != 0 {
		t.Errorf("touched %v, ran %v before refusing", dv.touched(), r.calls)
	}
}

func TestApplyRefusesMissingOrSmallDisk(t *testing.T) {
	for _, tt := range []struct {
		name   string
		size   int64 // MiB; 0: missing
		substr string
	}{
		{"missing", 0, "does not exist"},
		{"too small", 3000, "the plan needs 3429 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dv := newFakeDevices(t)
			if tt.size > 0 {
				dv.addDisk("/dev/sda", tt.size)
			}
			dv.addDisk("/dev/sdb", 4096)
			err := Apply(context.Background(), applySamplePlan(), ApplyDeps{Runner: &fakeRunner{rules: emptyLVM}, Devices: dv})
			var se *StepError
			if !errors.As(err, &se) || se.Step != StepSafety || se.Device != "/dev/sda" || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("Apply = %v, want a safety error on /dev/sda containing %q", err, tt.substr)
			}
			if len(dv.touched()) != 0 {
				t.Errorf("touched %v", dv.touched())
			}
		})
	}
}

// The guard refuses, before anything is written, any operation naming a
// device the plan does not name.
func TestGuardRefusesUnplannedDevices(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(p *Plan)
		device string
	}{
		{"fs on another disk", func(p *Plan) { p.FSs = append(p.FSs, FS{Device: "/dev/sdc1", Type: "ext4"}) }, "/dev/sdc1"},
		{"pv on another disk", func(p *Plan) { p.PVs[0].Device = "/dev/sdc"; p.VGs[0].PVs = []string{"/dev/sdc"} }, "/dev/sdc"},
		{"md member elsewhere", func(p *Plan) { p.MDs[0].Members[1] = "/dev/nvme0n1p1" }, "/dev/nvme0n1p1"},
		{"vg not planned", func(p *Plan) { p.LVs[0].VG = "other" }, "other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := applySamplePlan()
			tt.mutate(plan)
			dv := newFakeDevices(t)
			dv.addDisk("/dev/sda", 4096)
			dv.addDisk("/dev/sdb", 4096)
			dv.addDisk("/dev/sdc", 4096)
			r := &fakeRunner{rules: emptyLVM}
			err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv})
			var se *StepError
			if !errors.As(err, &se) || !errors.Is(err, ErrNotPlanned) || se.Device != tt.device {
				t.Fatalf("Apply = %v, want ErrNotPlanned on %q", err, tt.device)
			}
			if len(dv.touched()) != 0 {
				t.Errorf("wrote to %v before refusing", dv.touched())
			}
			for _, c := range r.calls {
				if c[0] != "lvm" || (c[1] != "pvs" && c[1] != "lvs") {
					t.Errorf("ran %q before refusing", c)
				}
			}
		})
	}
}

func TestStepErrorNamesStepDeviceAndStderr(t *testing.T) {
	plan := applySamplePlan()
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096)
	r := &fakeRunner{rules: append([]fakeRule{{prefix: "mdadm --create", stderr: "mdadm: cannot open /dev/sdb3: Device or resource busy"}}, emptyLVM...)}
	err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepMD || se.Device != "/dev/md0" {
		t.Fatalf("Apply = %v, want an md StepError on /dev/md0", err)
	}
	for _, s := range []string{"md", `"/dev/md0"`, "mdadm --create /dev/md0", "Device or resource busy"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
}

func TestApplyNodeTimeoutIsAStepError(t *testing.T) {
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096)
	dv.nodeErr = errors.New("no device node after 30s")
	err := Apply(context.Background(), applySamplePlan(), ApplyDeps{Runner: &fakeRunner{rules: emptyLVM}, Devices: dv})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepNodes || se.Device != "/dev/sda1" || !strings.Contains(err.Error(), "no device node") {
		t.Fatalf("Apply = %v, want a nodes StepError on /dev/sda1", err)
	}
}

func TestMkfsRetriedWhenBlkidDoesNotSeeIt(t *testing.T) {
	plan := &Plan{
		Disks: []Disk{{Device: "/dev/vdb", Name: "vdb", SizeMiB: 100, Label: "gpt", Partitions: []Partition{
			{Number: 1, Device: "/dev/vdb1", Disk: "/dev/vdb", BeginMiB: 1, EndMiB: 50, Purpose: PurposeFS},
		}}},
		FSs: []FS{{Device: "/dev/vdb1", Mount: "swap", Type: "swap"}},
	}
	dv := newFakeDevices(t)
	dv.addDisk("/dev/vdb", 100)
	r := &fakeRunner{rules: append([]fakeRule{
		{prefix: "blkid", out: "minix\n", times: 1},
		{prefix: "blkid", out: "swap\n"},
	}, emptyLVM...)}
	if err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var mkswaps int
	for _, c := range r.commands() {
		if strings.HasPrefix(c, "mkswap") {
			mkswaps++
		}
	}
	if mkswaps != 2 {
		t.Errorf("mkswap ran %d times, want 2: %q", mkswaps, r.commands())
	}

	// And a filesystem blkid never sees fails, naming the device.
	r = &fakeRunner{rules: append([]fakeRule{{prefix: "blkid", out: "\n"}}, emptyLVM...)}
	err := Apply(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv})
	if err == nil || !strings.Contains(err.Error(), `mkfs "/dev/vdb1"`) || !strings.Contains(err.Error(), `want "swap"`) {
		t.Fatalf("Apply = %v, want a mkfs error on /dev/vdb1", err)
	}
}

func TestPretendChangesNothing(t *testing.T) {
	dv := newFakeDevices(t)
	dv.addDisk("/dev/sda", 4096)
	dv.addDisk("/dev/sdb", 4096)
	r := &fakeRunner{rules: emptyLVM}
	ops, err := Pretend(context.Background(), applySamplePlan(), ApplyDeps{Runner: r, Devices: dv})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 || len(dv.touched()) != 0 || len(r.calls) != 2 {
		t.Errorf("Pretend: %d ops, touched %v, ran %q", len(ops), dv.touched(), r.commands())
	}
}

// A partition whose type GUID is not a GUID (the fuel-agent fixtures'
// "fake_guid") is refused before teardown or any wipe, on every disk:
// applying used to stop at write-gpt with the disks already wiped.
func TestApplyRefusesBadTypeGUIDBeforeTouching(t *testing.T) {
	for _, guid := range []string{"fake_guid", "0FC63DAF-8483-4772-8E79-3D69D8477DE", "0FC63DAF84834772-8E79-3D69D8477DE4x"} {
		t.Run(guid, func(t *testing.T) {
			plan := applySamplePlan()
			plan.Disks[1].Partitions[2].TypeGUID = guid
			dv := newFakeDevices(t)
			dv.addDisk("/dev/sda", 4096)
			dv.addDisk("/dev/sdb", 4096)
			r := &fakeRunner{rules: emptyLVM}
			err := Apply(context.Background(), plan, ApplyDeps{Logger: testLogger(t), Runner: r, Devices: dv})
			var se *StepError
			if !errors.As(err, &se) || se.Step != StepGPT || se.Device != "/dev/sdb" {
				t.Fatalf("Apply = %v, want a gpt StepError on /dev/sdb", err)
			}
			if want := `partition "/dev/sdb3": type GUID "` + guid + `" is not a GUID`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
			if len(dv.touched()) != 0 || len(r.calls) != 0 {
				t.Errorf("touched %v, ran %v before refusing", dv.touched(), r.calls)
			}
			if _, err := Pretend(context.Background(), plan, ApplyDeps{Runner: r, Devices: dv}); !errors.As(err, &se) || se.Step != StepGPT {
				t.Errorf("Pretend = %v, want the same gpt refusal", err)
			}
		})
	}
}
