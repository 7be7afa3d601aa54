package bootloader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/partition"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParseNVRAM(t *testing.T, name string) NVRAM {
	t.Helper()
	n, err := ParseEfibootmgr(readTestdata(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// efibootmgr-ovmf-fresh.txt, -reprovision.txt and -v18-grub.txt are in efibootmgr 17's format
// (Debian bookworm) for OVMF's entries, and efibootmgr 18's bare loader
// path; they are written after the format, not captured from a machine.
func TestParseEfibootmgr(t *testing.T) {
	n := mustParseNVRAM(t, "efibootmgr-ovmf-reprovision.txt")
	if n.BootCurrent != "0002" || strings.Join(n.BootOrder, ",") != "0004,0002,0005,0007,0001,0008,0003,0000" {
		t.Errorf("BootCurrent %q BootOrder %v", n.BootCurrent, n.BootOrder)
	}
	type short struct {
		Num, Label, PartUUID, File string
		Active, Network            bool
	}
	var got []short
	for _, e := range n.Entries {
		got = append(got, short{e.Num, e.Label, e.PartUUID, e.File, e.Active, e.Network})
	}
	want := []short{
		{"0000", "UiApp", "", "", true, false},
		{"0001", "UEFI Misc Device", "", "", true, false},
		{"0002", "UEFI PXEv4 (MAC:525400123456)", "", "", true, true},
		{"0003", "EFI Internal Shell", "", "", true, false},
		{"0004", "debian (vda)", "5b0d5c0e-2a1f-4c7e-9d3b-0e1f2a3b4c5d", `\EFI\debian\shimx64.efi`, true, false},
		{"0005", "debian (vdb)", "8c1e4f7a-3b2d-4e6f-a1b2-c3d4e5f60718", `\EFI\debian\shimx64.efi`, true, false},
		{"0006", "debian (vda)", "5b0d5c0e-2a1f-4c7e-9d3b-0e1f2a3b4c5d", `\EFI\debian\shimx64.efi`, false, false},
		{"0007", "Windows Boot Manager", "0a0b0c0d-1111-2222-3333-444455556666", `\EFI\Microsoft\Boot\bootmgfw.efi`, true, false},
		{"0008", "UEFI HTTPv4 (MAC:525400123456)", "", "", true, true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	v18 := mustParseNVRAM(t, "efibootmgr-v18-grub.txt")
	if e := v18.Entries[0]; e.PartUUID != "5b0d5c0e-2a1f-4c7e-9d3b-0e1f2a3b4c5d" || e.File != `\EFI\debian\grubx64.efi` || e.Label != "debian" {
		t.Errorf("efibootmgr 18 entry: %+v", e)
	}
	if _, err := ParseEfibootmgr([]byte("BootOrder: 0001,XYZ\n")); err == nil {
		t.Error("bad BootOrder accepted")
	}
}

// efibootmgr-ovmf-recorded.txt is what `efibootmgr -v` printed in the
// provisioned guest of e2e.TestVMEndToEndUEFI (OVMF, Debian bookworm's
// efibootmgr 17) after round 1, the BootOrder line and the entries. In
// round 2 the agent saw it, the disk just re-partitioned (a new ESP
// partition GUID): it deleted Boot0008 and created one entry.
func TestPlanNVRAMRecorded(t *testing.T) {
	n := mustParseNVRAM(t, "efibootmgr-ovmf-recorded.txt")
	if len(n.Entries) != 9 || n.Entries[8].PartUUID != "b16341a9-6636-431b-8301-e7c797c7486e" || n.Entries[8].File != `\EFI\debian\shimx64.efi` {
		t.Fatalf("entries: %+v", n.Entries)
	}
	var net []string
	for _, e := range n.Entries {
		if e.Network {
			net = append(net, e.Num)
		}
	}
	if strings.Join(net, ",") != "0002,0003,0004,0005,0006" {
		t.Errorf("network entries %v, want OVMF's five of the NIC", net)
	}
	const fresh = "cc79b196-0bd9-457b-95a5-bf36555bc9e8"
	esps := []ESPTarget{{Disk: "/dev/vda", Part: 2, PartUUID: fresh, Label: "debian (vda)", Loader: `\EFI\debian\shimx64.efi`}}
	ch := PlanNVRAM(n, esps, map[string]bool{fresh: true})
	if strings.Join(ch.Delete, ",") != "0008" || len(ch.Create) != 1 {
		t.Errorf("changes %+v, want Boot0008 deleted and one entry created", ch)
	}
	// Seen again with the same ESP (provisioned, not re-partitioned): no change.
	n.Entries[8].PartUUID = fresh
	if ch := PlanNVRAM(n, esps, map[string]bool{fresh: true}); len(ch.Delete)+len(ch.Create) != 0 {
		t.Errorf("changes %+v, want none", ch)
	}
	n.BootCurrent = "0002"
	if got := strings.Join(BootOrderFor(n, esps), ","); got != "0002,0008,0003,0004,0005,0006,0001,0000,0007" {
		t.Errorf("BootOrder %s", got)
	}
}

func TestPlanNVRAM(t *testing.T) {
	const (
		oldVDA = "5b0d5c0e-2a1f-4c7e-9d3b-0e1f2a3b4c5d"
		oldVDB = "8c1e4f7a-3b2d-4e6f-a1b2-c3d4e5f60718"
		win    = "0a0b0c0d-1111-2222-3333-444455556666"
		newVDA = "11111111-2222-4333-8444-555555555555"
		newVDB = "66666666-7777-4888-8999-aaaaaaaaaaaa"
	)
	esp := func(disk, uuid, loader string) ESPTarget {
		return ESPTarget{Disk: "/dev/" + disk, Part: 2, PartUUID: uuid, Label: "debian (" + disk + ")", Loader: loader}
	}
	shim := `\EFI\debian\shimx64.efi`
	set := func(uuids ...string) map[string]bool {
		m := map[string]bool{}
		for _, u := range uuids {
			m[u] = true
		}
		return m
	}
	tests := []struct {
		name   string
		nvram  string
		esps   []ESPTarget
		live   map[string]bool
		delete []string
		create []string // disks
		order  string   // BootOrderFor after the changes, with created entries as given in created
	}{
		{
			name: "first provision: nothing to delete, one entry per ESP", nvram: "efibootmgr-ovmf-fresh.txt",
			esps: []ESPTarget{esp("vda", newVDA, shim), esp("vdb", newVDB, shim)}, live: set(newVDA, newVDB),
			create: []string{"/dev/vda", "/dev/vdb"},
		},
		{
			// Both disks were wiped: their new GPTs have new partition GUIDs, so
			// the two entries of the last provision and the inactive duplicate
			// point nowhere. Windows on a disk left alone is kept.
			name: "reprovision: stale entries of the wiped disks go", nvram: "efibootmgr-ovmf-reprovision.txt",
			esps: []ESPTarget{esp("vda", newVDA, shim), esp("vdb", newVDB, shim)}, live: set(newVDA, newVDB, win),
			delete: []string{"0004", "0005", "0006"}, create: []string{"/dev/vda", "/dev/vdb"},
		},
		{
			name: "the disk Windows was on is gone too", nvram: "efibootmgr-ovmf-reprovision.txt",
			esps: []ESPTarget{esp("vda", newVDA, shim), esp("vdb", newVDB, shim)}, live: set(newVDA, newVDB),
			delete: []string{"0004", "0005", "0006", "0007"}, create: []string{"/dev/vda", "/dev/vdb"},
		},
		{
			// keep_data: the partitions (and GUIDs) are reused: the first entry
			// per ESP is kept, the duplicate goes, nothing is created.
			name: "same ESPs again: no duplicates", nvram: "efibootmgr-ovmf-reprovision.txt",
			esps: []ESPTarget{esp("vda", oldVDA, shim), esp("vdb", oldVDB, shim)}, live: set(oldVDA, oldVDB, win),
			delete: []string{"0006"},
			order:  "0002,0004,0005,0007,0001,0008,0003,0000",
		},
		{
			name: "image without shim now: the shim entry is replaced", nvram: "efibootmgr-ovmf-reprovision.txt",
			esps: []ESPTarget{esp("vda", oldVDA, `\EFI\debian\grubx64.efi`)}, live: set(oldVDA, oldVDB, win),
			delete: []string{"0004", "0006"}, create: []string{"/dev/vda"},
		},
		{
			name: "entry written by another tool with another label is replaced", nvram: "efibootmgr-v18-grub.txt",
			esps: []ESPTarget{esp("vda", oldVDA, `\EFI\debian\grubx64.efi`)}, live: set(oldVDA),
			delete: []string{"0000"}, create: []string{"/dev/vda"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := mustParseNVRAM(t, tt.nvram)
			ch := PlanNVRAM(n, tt.esps, tt.live)
			if d := cmp.Diff(tt.delete, ch.Delete); d != "" {
				t.Errorf("deleted (-want +got):\n%s", d)
			}
			if len(ch.Why) != len(ch.Delete) {
				t.Errorf("%d reasons for %d deletions", len(ch.Why), len(ch.Delete))
			}
			var created []string
			for _, c := range ch.Create {
				created = append(created, c.Disk)
			}
			if d := cmp.Diff(tt.create, created); d != "" {
				t.Errorf("created (-want +got):\n%s", d)
			}
			if tt.order != "" {
				// as writeNVRAM does: the order of what is left
				var left []NVRAMEntry
				for _, e := range n.Entries {
					if !strings.Contains(strings.Join(ch.Delete, ","), e.Num) {
						left = append(left, e)
					}
				}
				n.Entries = left
				if got := strings.Join(BootOrderFor(n, tt.esps), ","); got != tt.order {
					t.Errorf("BootOrder %s, want %s", got, tt.order)
				}
			}
		})
	}
}

// After the entries are created, the network entry the ramdisk was booted
// from leads, then the ESPs' in plan order (vda before vdb even when
// efibootmgr numbered them the other way round), then the rest, the NIC's
// other network entries included.
func TestBootOrderFor(t *testing.T) {
	n := mustParseNVRAM(t, "efibootmgr-ovmf-fresh.txt")
	n.Entries = append(n.Entries,
		NVRAMEntry{Num: "0005", Label: "debian (vdb)", PartUUID: "bbbb", File: `\EFI\debian\shimx64.efi`},
		NVRAMEntry{Num: "0004", Label: "debian (vda)", PartUUID: "aaaa", File: `\EFI\debian\shimx64.efi`},
	)
	n.BootOrder = append([]string{"0005", "0004"}, n.BootOrder...)
	esps := []ESPTarget{
		{Disk: "/dev/vda", PartUUID: "aaaa", Loader: `\EFI\debian\shimx64.efi`},
		{Disk: "/dev/vdb", PartUUID: "bbbb", Loader: `\EFI\debian\shimx64.efi`},
	}
	if got := strings.Join(BootOrderFor(n, esps), ","); got != "0002,0004,0005,0001,0003,0000" {
		t.Errorf("BootOrder %s", got)
	}
	// OVMF's own PXEv4/v6 and HTTP entries of the same NIC, and the
	// ramdisk booted from the second network entry (BootCurrent 0007).
	n.Entries = append(n.Entries,
		NVRAMEntry{Num: "0006", Label: "UEFI PXEv6 (MAC:525400123456)", Network: true},
		NVRAMEntry{Num: "0007", Label: "UEFI HTTPv4 (MAC:525400123456)", Network: true})
	n.BootOrder = append(n.BootOrder, "0006", "0007")
	n.BootCurrent = "0007"
	if got := strings.Join(BootOrderFor(n, esps), ","); got != "0007,0004,0005,0002,0001,0003,0000,0006" {
		t.Errorf("BootOrder %s, want the booted network entry, the ESPs, then the rest", got)
	}
	// Booted from no network entry (virtual media, -kernel): the first one.
	n.BootCurrent = "0001"
	if got := strings.Join(BootOrderFor(n, esps), ","); got != "0002,0004,0005,0001,0003,0000,0006,0007" {
		t.Errorf("BootOrder %s, want the first network entry, the ESPs, then the rest", got)
	}
}

func TestESPFstabOptions(t *testing.T) {
	in := "# written by imprint\nUUID=r / ext4 defaults,errors=panic 0 0\nUUID=ABCD-1234 /boot/efi vfat defaults 0 0\nUUID=x /boot/efi2 vfat defaults 0 0\n"
	want := "# written by imprint\nUUID=r / ext4 defaults,errors=panic 0 0\nUUID=ABCD-1234 /boot/efi vfat umask=0077,nofail 0 0\nUUID=x /boot/efi2 vfat defaults 0 0\n"
	if d := cmp.Diff(want, string(ESPFstabOptions([]byte(in)))); d != "" {
		t.Errorf("fstab (-want +got):\n%s", d)
	}
}

// efiRunner is a fake Runner for the UEFI path: grub-install creates the
// files Debian's grub-install puts in the ESP, efibootmgr answers from an
// NVRAM it keeps, blkid gives PARTUUIDs.
type efiRunner struct {
	fakeRunner
	mu     sync.Mutex
	target string
	shim   bool
	nvram  NVRAM
	next   int
	parts  map[string]string // device -> PARTUUID
}

func (f *efiRunner) RunChroot(ctx context.Context, root, name string, args ...string) ([]byte, error) {
	_, _ = f.fakeRunner.RunChroot(ctx, root, name, args...)
	if name == "grub-install" && args[0] == "--target=x86_64-efi" {
		dir := strings.TrimPrefix(args[1], "--efi-directory=")
		d := filepath.Join(root, dir, "EFI", "debian")
		os.MkdirAll(d, 0o755)
		files := []string{"grubx64.efi"}
		if f.shim {
			files = append(files, "shimx64.efi", "mmx64.efi", "grub.cfg")
		}
		for _, n := range files {
			os.WriteFile(filepath.Join(d, n), []byte(n+" of "+dir), 0o644)
		}
	}
	return nil, nil
}

func (f *efiRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	argv := strings.Join(args, " ")
	switch {
	case name == "blkid" && argv == "-c /dev/null -o export":
		_, _ = f.fakeRunner.Run(ctx, name, args...)
		var b strings.Builder
		for dev, u := range f.parts {
			fmt.Fprintf(&b, "DEVNAME=%s\nPARTUUID=%s\n\n", dev, u)
		}
		return []byte(b.String()), nil
	case name == "blkid" && strings.Contains(argv, "PARTUUID"):
		_, _ = f.fakeRunner.Run(ctx, name, args...)
		return []byte(f.parts[args[len(args)-1]] + "\n"), nil
	case name == "efibootmgr" && argv == "-v":
		_, _ = f.fakeRunner.Run(ctx, name, args...)
		var b strings.Builder
		fmt.Fprintf(&b, "BootCurrent: %s\nBootOrder: %s\n", f.nvram.BootCurrent, strings.Join(f.nvram.BootOrder, ","))
		for _, e := range f.nvram.Entries {
			fmt.Fprintf(&b, "Boot%s* %s\t%s\n", e.Num, e.Label, e.Path)
		}
		return []byte(b.String()), nil
	case name == "efibootmgr" && len(args) >= 4 && args[1] == "-b" && args[3] == "-B":
		_, _ = f.fakeRunner.Run(ctx, name, args...)
		var keep []NVRAMEntry
		for _, e := range f.nvram.Entries {
			if e.Num != args[2] {
				keep = append(keep, e)
			}
		}
		f.nvram.Entries = keep
		var order []string
		for _, o := range f.nvram.BootOrder {
			if o != args[2] {
				order = append(order, o)
			}
		}
		f.nvram.BootOrder = order
		return nil, nil
	case name == "efibootmgr" && len(args) >= 2 && args[1] == "-c":
		_, _ = f.fakeRunner.Run(ctx, name, args...)
		// -q -c -d DISK -p N -L LABEL -l LOADER
		disk, part, label, loader := args[3], args[5], args[7], args[9]
		num := fmt.Sprintf("%04X", f.next)
		f.next++
		f.nvram.Entries = append(f.nvram.Entries, NVRAMEntry{Num: num, Label: label,
			Path: fmt.Sprintf("HD(%s,GPT,%s,0xd000,0x64000)/File(%s)", part, f.parts[disk+part], loader)})
		f.nvram.BootOrder = append([]string{num}, f.nvram.BootOrder...)
		return nil, nil
	case name == "efibootmgr" && len(args) >= 3 && args[1] == "-o":
		_, _ = f.fakeRunner.Run(ctx, name, args...)
		f.nvram.BootOrder = strings.Split(args[2], ",")
		return nil, nil
	}
	f.mu.Unlock()
	defer f.mu.Lock()
	return f.fakeRunner.Run(ctx, name, args...)
}

// uefiTarget is a target tree with grub-efi-amd64-bin and, with shim, the
// signed chain.
func uefiTarget(t *testing.T, shim bool) string {
	dir := target(t, "GRUB_CMDLINE_LINUX=\"\"\n")
	os.MkdirAll(filepath.Join(dir, grubEFIMod), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/os-release"), []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"), 0o644)
	if shim {
		for _, f := range []string{shimSigned, grubSigned} {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
			os.WriteFile(filepath.Join(dir, f), []byte("signed"), 0o644)
		}
	}
	return dir
}

// mirroredPlan: two disks, /boot on md RAID-1, an ESP on each (uefi mode).
func mirroredPlan(mode string) *partition.Plan {
	disk := func(d string, mount string) partition.Disk {
		return partition.Disk{Device: "/dev/" + d, Name: d, Bootloader: true, Partitions: []partition.Partition{
			{Number: 1, Device: "/dev/" + d + "1", Disk: "/dev/" + d, Purpose: partition.PurposeBiosGrub},
			{Number: 2, Device: "/dev/" + d + "2", Disk: "/dev/" + d, Purpose: partition.PurposeESP, Mount: mount},
			{Number: 3, Device: "/dev/" + d + "3", Disk: "/dev/" + d, Purpose: partition.PurposeRaid, MD: "/dev/md0"},
		}}
	}
	return &partition.Plan{
		BootMode: mode,
		Disks:    []partition.Disk{disk("vda", partition.ESPMount), disk("vdb", "")},
		MDs:      []partition.MD{{Device: "/dev/md0", Level: "mirror", Metadata: "default", Members: []string{"/dev/vda3", "/dev/vdb3"}, Mount: "/boot"}},
		FSs: []partition.FS{
			{Device: "/dev/md0", Mount: "/boot", Type: "ext4"},
			{Device: "/dev/mapper/os-root", Mount: "/", Type: "ext4", Image: true},
			{Device: "/dev/vda2", Mount: partition.ESPMount, Type: "vfat", Options: "-F 32"},
			{Device: "/dev/vdb2", Type: "vfat", Options: "-F 32"},
		},
		Bootloader: []string{"/dev/vda", "/dev/vdb"},
	}
}

func TestInstallUEFI(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mode   string
		shim   bool
		efivar bool
	}{
		{"uefi with shim, NVRAM", "uefi", true, true},
		{"both without shim, NVRAM", "both", false, true},
		{"uefi from a BIOS-booted ramdisk: no NVRAM", "uefi", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := uefiTarget(t, tt.shim)
			vars := t.TempDir()
			if tt.efivar {
				os.WriteFile(filepath.Join(vars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0, 2, 0}, 0o644)
			}
			nv := mustParseNVRAM(t, "efibootmgr-ovmf-reprovision.txt")
			for i := range nv.Entries { // ParseEfibootmgr keeps Path: reuse it as the fake's text
				nv.Entries[i].Path = strings.TrimSpace(nv.Entries[i].Path)
			}
			run := &efiRunner{target: dir, shim: tt.shim, nvram: nv, next: 9, parts: map[string]string{
				"/dev/vda2": "11111111-2222-4333-8444-555555555555", "/dev/vdb2": "66666666-7777-4888-8999-aaaaaaaaaaaa",
				"/dev/vda3": "aaaaaaaa-0000-4000-8000-000000000003", "/dev/vdb3": "bbbbbbbb-0000-4000-8000-000000000003",
			}}
			mnt := &fakeMounter{}
			in := &Installer{Runner: run, Mounter: mnt, EFIVars: vars}
			if err := in.Install(context.Background(), Request{Plan: mirroredPlan(tt.mode), Target: dir}); err != nil {
				t.Fatal(err)
			}
			loader, sb := "grubx64.efi", "--no-uefi-secure-boot"
			if tt.shim {
				loader, sb = "shimx64.efi", "--uefi-secure-boot"
			}
			var want []string
			want = append(want,
				"blkid -c /dev/null -o value -s UUID /dev/md0",
				"blkid -c /dev/null -o value -s UUID /dev/mapper/os-root",
				"blkid -c /dev/null -o value -s UUID /dev/vda2",
				"chroot "+dir+" grub-mkconfig -o /boot/grub/grub.cfg")
			if tt.mode == "both" {
				want = append(want, "chroot "+dir+" grub-install --target=i386-pc /dev/vda", "chroot "+dir+" grub-install --target=i386-pc /dev/vdb")
			}
			want = append(want,
				"chroot "+dir+" grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian "+sb+" --no-nvram --recheck",
				"chroot "+dir+" grub-install --target=x86_64-efi --efi-directory=/run/imprint-esp/1 --bootloader-id=debian "+sb+" --no-nvram --recheck")
			if tt.efivar {
				want = append(want,
					"blkid -c /dev/null -o value -s PARTUUID /dev/vda2",
					"blkid -c /dev/null -o value -s PARTUUID /dev/vdb2",
					"blkid -c /dev/null -o export",
					"efibootmgr -v",
					"efibootmgr -q -b 0004 -B", "efibootmgr -q -b 0005 -B", "efibootmgr -q -b 0006 -B", "efibootmgr -q -b 0007 -B",
					`efibootmgr -q -c -d /dev/vda -p 2 -L debian (vda) -l \EFI\debian\`+loader,
					`efibootmgr -q -c -d /dev/vdb -p 2 -L debian (vdb) -l \EFI\debian\`+loader,
					"efibootmgr -v",
					"efibootmgr -q -o 0002,0009,000A,0001,0008,0003,0000")
			}
			if d := cmp.Diff(want, run.calls); d != "" {
				t.Errorf("commands (-want +got):\n%s", d)
			}
			if tt.efivar {
				if got := strings.Join(run.nvram.BootOrder, ","); got != "0002,0009,000A,0001,0008,0003,0000" {
					t.Errorf("BootOrder %s", got)
				}
				// Provisioning again with the same ESPs changes nothing.
				run.calls = nil
				if err := in.writeNVRAM(context.Background(), mirroredPlan(tt.mode), mirroredPlan(tt.mode).ESPs(), efiChainFor(t, dir), slog.New(slog.DiscardHandler)); err != nil {
					t.Fatal(err)
				}
				for _, c := range run.calls {
					if strings.HasPrefix(c, "efibootmgr -q") {
						t.Errorf("second run changed the NVRAM: %s", c)
					}
				}
			}
			// Secondary ESP mounted and unmounted around its grub-install.
			if len(mnt.mounted) != 0 {
				t.Errorf("left mounted: %v", mnt.mounted)
			}
			joined := strings.Join(mnt.log, "\n")
			if !strings.Contains(joined, "mount -t vfat /dev/vda2 "+dir+"/boot/efi") || !strings.Contains(joined, "mount -t vfat /dev/vdb2 "+dir+"/run/imprint-esp/1") {
				t.Errorf("mounts:\n%s", joined)
			}
			// Removable path on the ESP written through /boot/efi (the fake
			// mounter mounts nothing: both ESPs' files land in the target).
			for _, esp := range []string{"boot/efi", "run/imprint-esp/1"} {
				b, err := os.ReadFile(filepath.Join(dir, esp, "EFI/BOOT/BOOTX64.EFI"))
				if err != nil || string(b) != loader+" of /"+esp {
					t.Errorf("%s: BOOTX64.EFI = %q, %v; want a copy of %s", esp, b, err, loader)
				}
				if tt.shim {
					if b, err := os.ReadFile(filepath.Join(dir, esp, "EFI/BOOT/grubx64.efi")); err != nil || !strings.HasPrefix(string(b), "grubx64.efi") {
						t.Errorf("%s: EFI/BOOT/grubx64.efi = %q, %v", esp, b, err)
					}
				}
			}
			fstab, _ := os.ReadFile(filepath.Join(dir, "etc/fstab"))
			if !strings.Contains(string(fstab), "UUID=uuid-vda2 /boot/efi vfat umask=0077,nofail 0 0\n") || strings.Contains(string(fstab), "vdb2") {
				t.Errorf("fstab:\n%s", fstab)
			}
		})
	}
}

func efiChainFor(t *testing.T, dir string) efiChain {
	c, err := detectEFIChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInstallUEFINoGrubEFI(t *testing.T) {
	dir := target(t, "")
	mnt := &fakeMounter{}
	err := (&Installer{Runner: &fakeRunner{}, Mounter: mnt, EFIVars: t.TempDir()}).Install(context.Background(), Request{Plan: mirroredPlan("uefi"), Target: dir})
	if err == nil || !strings.Contains(err.Error(), "grub-efi-amd64-bin") {
		t.Errorf("err = %v, want the missing grub-efi-amd64-bin named", err)
	}
	if len(mnt.mounted) != 0 {
		t.Errorf("left mounted: %v", mnt.mounted)
	}
}
