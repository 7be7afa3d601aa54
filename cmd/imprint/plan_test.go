package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/inventory"
)

func planRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	code = dispatch(context.Background(), env, append([]string{"imprint", "plan"}, args...))
	return code, out.String(), errb.String()
}

// planGoldenFuel90 is `imprint plan examples/provision.json` (the Fuel 9.0
// one-disk node): the MiB boundaries are fuel-agent's (docs/fuel-agent.md §6).
const planGoldenFuel90 = `DISK      #  BEGIN–END MiB  SIZE MiB  HOLDS                     TYPE GUID
/dev/vda  1  1–25           24        bios_grub (grub core)     21686148-6449-6E6F-744E-656564454649
/dev/vda  2  26–226         200       UEFI placeholder (empty)  0FC63DAF-8483-4772-8E79-3D69D8477DE4
/dev/vda  3  227–427        200       /boot ext2 (image)        0FC63DAF-8483-4772-8E79-3D69D8477DE4
/dev/vda  4  428–25068      24640     LVM PV of vg os           E6D6D379-F507-44C2-A23C-238F2A3DF928
/dev/vda  5  25069–35373    10304     LVM PV of vg logs         E6D6D379-F507-44C2-A23C-238F2A3DF928
/dev/vda  6  35374–55918    20544     LVM PV of vg mysql        E6D6D379-F507-44C2-A23C-238F2A3DF928
/dev/vda  7  55919–67247    11328     LVM PV of vg horizon      E6D6D379-F507-44C2-A23C-238F2A3DF928
/dev/vda  8  67248–81852    14604     LVM PV of vg image        E6D6D379-F507-44C2-A23C-238F2A3DF928
/dev/vda  9  81853–81873    20        configdrive (config-2)    0FC63DAF-8483-4772-8E79-3D69D8477DE4

Disks:
  /dev/vda  81920 MiB, gpt, 9 partitions, last ends at 81873 MiB, grub
Physical volumes:
  /dev/vda4  vg os       metadatasize 28 MiB  metadatacopies 2
  /dev/vda5  vg logs     metadatasize 28 MiB  metadatacopies 2
  /dev/vda6  vg mysql    metadatasize 28 MiB  metadatacopies 2
  /dev/vda7  vg horizon  metadatasize 28 MiB  metadatacopies 2
  /dev/vda8  vg image    metadatasize 28 MiB  metadatacopies 2
Volume groups:
  os       /dev/vda4
  logs     /dev/vda5
  mysql    /dev/vda6
  horizon  /dev/vda7
  image    /dev/vda8
Logical volumes:
  os/root             16384 MiB  /dev/mapper/os-root
  os/swap             8192 MiB   /dev/mapper/os-swap
  logs/log            10240 MiB  /dev/mapper/logs-log
  image/glance        14540 MiB  /dev/mapper/image-glance
  mysql/root          20480 MiB  /dev/mapper/mysql-root
  horizon/horizontmp  11264 MiB  /dev/mapper/horizon-horizontmp
Filesystems:
  /dev/vda3                       ext2  /boot             image target (no mkfs)
  /dev/mapper/os-root             ext4  /                 image target (no mkfs)
  /dev/mapper/os-swap             swap  swap              mkfs
  /dev/mapper/logs-log            ext4  /var/log          mkfs
  /dev/mapper/image-glance        xfs   /var/lib/glance   mkfs
  /dev/mapper/mysql-root          ext4  /var/lib/mysql    mkfs
  /dev/mapper/horizon-horizontmp  xfs   /var/lib/horizon  mkfs
Images:
  /      → /dev/mapper/os-root  ext4, gzip  http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64.img.gz
  /boot  → /dev/vda3            ext2, gzip  http://10.20.0.2:8080/targetimages/env_1_ubuntu_1404_amd64-boot.img.gz
Configdrive: /dev/vda9
Bootloader (grub stage 1): /dev/vda
`

func TestPlanCommandText(t *testing.T) {
	code, out, errs := planRun(t, "", "../../examples/provision.json")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	if diff := cmp.Diff(planGoldenFuel90, out); diff != "" {
		t.Errorf("text output (-want +got):\n%s", diff)
	}
	// The sample's keys are not real SSH keys: prepare passes them on and
	// says so; nothing else is on stderr.
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		if line != "" && !strings.HasPrefix(line, "plan: warning: ks_meta.") {
			t.Errorf("stderr line %q, want only warnings", line)
		}
	}
}

func TestPlanCommandStdinAndFlagsAfterFile(t *testing.T) {
	data, err := os.ReadFile("../../examples/provision.json")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := planRun(t, string(data), "-", "-o", "text")
	if code != 0 || out != planGoldenFuel90 {
		t.Errorf("exit %d, stderr %q, output differs: %v", code, errs, out != planGoldenFuel90)
	}
}

func TestPlanCommandJSON(t *testing.T) {
	code, out, errs := planRun(t, "", "-o", "json", "../../examples/provision.json")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	var got struct {
		Parteds []struct {
			Name              string `json:"name"`
			InstallBootloader bool   `json:"install_bootloader"`
			Partitions        []struct {
				Name        string   `json:"name"`
				Count       int      `json:"count"`
				Device      string   `json:"device"`
				Begin       int64    `json:"begin"`
				End         int64    `json:"end"`
				Flags       []string `json:"flags"`
				GUID        *string  `json:"guid"`
				Configdrive bool     `json:"configdrive"`
			} `json:"partitions"`
		} `json:"parteds"`
		MDs []json.RawMessage `json:"mds"`
		PVs []struct {
			Name           string `json:"name"`
			MetadataSize   int64  `json:"metadatasize"`
			MetadataCopies int    `json:"metadatacopies"`
		} `json:"pvs"`
		VGs []struct {
			Name    string   `json:"name"`
			PVNames []string `json:"pvnames"`
		} `json:"vgs"`
		LVs []struct {
			Name   string `json:"name"`
			VGName string `json:"vgname"`
			Size   int64  `json:"size"`
		} `json:"lvs"`
		FSs []struct {
			Device string `json:"device"`
			Mount  string `json:"mount"`
			FSType string `json:"fs_type"`
		} `json:"fss"`
		Images []struct {
			Mount  string `json:"mount"`
			Device string `json:"device"`
		} `json:"images"`
		Bootloader  []string `json:"bootloader"`
		Configdrive string   `json:"configdrive"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	var bounds []string
	for _, p := range got.Parteds[0].Partitions {
		bounds = append(bounds, p.Name+" "+itoa(p.Begin)+"-"+itoa(p.End))
		if p.Device != "/dev/vda" || p.GUID == nil {
			t.Errorf("partition %+v", p)
		}
	}
	want := []string{"/dev/vda1 1-25", "/dev/vda2 26-226", "/dev/vda3 227-427", "/dev/vda4 428-25068", "/dev/vda5 25069-35373",
		"/dev/vda6 35374-55918", "/dev/vda7 55919-67247", "/dev/vda8 67248-81852", "/dev/vda9 81853-81873"}
	if diff := cmp.Diff(want, bounds); diff != "" {
		t.Errorf("boundaries (-want +got):\n%s", diff)
	}
	if !got.Parteds[0].InstallBootloader || got.MDs == nil || len(got.PVs) != 5 || got.PVs[0].MetadataSize != 28 ||
		len(got.VGs) != 5 || len(got.LVs) != 6 || len(got.FSs) != 7 || got.FSs[0].FSType != "ext2" {
		t.Errorf("scheme = %+v", got)
	}
	if !got.Parteds[0].Partitions[8].Configdrive || got.Configdrive != "/dev/vda9" {
		t.Errorf("configdrive %q", got.Configdrive)
	}
	if diff := cmp.Diff([]string{"/dev/vda"}, got.Bootloader); diff != "" {
		t.Errorf("bootloader (-want +got):\n%s", diff)
	}
	if len(got.Images) != 2 || got.Images[0].Device != "/dev/mapper/os-root" || got.Images[1].Device != "/dev/vda3" {
		t.Errorf("images = %+v", got.Images)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// planWriteDoc writes the example document, changed by mutate, to a file.
func planWriteDoc(t *testing.T, mutate func(m map[string]any)) string {
	t.Helper()
	return writeEditedDoc(t, "../../examples/provision.json", mutate)
}

// writeEditedDoc reads the JSON document src, lets edit change it and
// writes it to a provision.json in a temporary directory, whose path it
// returns.
func writeEditedDoc(t *testing.T, src string, edit func(m map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "provision.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanCommandInvalidReportsEveryProblem(t *testing.T) {
	path := planWriteDoc(t, func(m map[string]any) {
		ks := m["ks_meta"].(map[string]any)
		spaces := ks["pm_data"].(map[string]any)["ks_spaces"].([]any)
		vols := spaces[0].(map[string]any)["volumes"].([]any)
		vols[3].(map[string]any)["lvm_meta_size"] = 8
		vols[1].(map[string]any)["mount"] = "boot"
		ks["image_data"].(map[string]any)["/srv"] = map[string]any{"uri": "http://h/i.img.gz", "format": "ext4", "container": "bzip2"}
		spaces[1].(map[string]any)["volumes"].([]any)[0].(map[string]any)["size"] = 16777217
	})
	code, out, errs := planRun(t, "", path)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
	for _, w := range []string{
		"ks_meta.pm_data.ks_spaces[0].volumes[3].lvm_meta_size: must be >= 10, got 8",
		`ks_meta.pm_data.ks_spaces[0].volumes[1].mount: must be an absolute path`,
		`ks_meta.image_data["/srv"].container:`,
		"ks_meta.pm_data.ks_spaces[1].volumes[0].size:",
	} {
		if !strings.Contains(errs, path+": "+w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
}

func TestPlanCommandLayoutErrors(t *testing.T) {
	// Valid document, but the inventory's disk is too small and has
	// another name: exit 2 naming the disk, needed and available MiB.
	inv := inventory.Inventory{Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 40960 << 20, LogicalSectorSize: 512}}}
	data, _ := json.Marshal(inv)
	invPath := filepath.Join(t.TempDir(), "inv.json")
	if err := os.WriteFile(invPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := planRun(t, "", "--inventory", invPath, "../../examples/provision.json")
	if code != 2 || out != "" || !strings.Contains(errs, "ks_meta.pm_data.ks_spaces[0]: disk /dev/vda: layout needs 81874 MiB (last partition ends at 81873 MiB, plus 1 MiB for the backup GPT), the disk has 40960 MiB") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}

	inv.Disks[0].Name, inv.Disks[0].Path, inv.Disks[0].SizeBytes = "sda", "/dev/sda", 100<<30
	data, _ = json.Marshal(inv)
	if err := os.WriteFile(invPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = planRun(t, "", "--inventory", invPath, "../../examples/provision.json")
	if code != 2 || !strings.Contains(errs, `ks_meta.pm_data.ks_spaces[0]: disk "vda" not found: id "vda", name "vda"; inventory has /dev/sda`) {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}

	inv.Disks[0].Name, inv.Disks[0].Path = "vda", "/dev/vda"
	data, _ = json.Marshal(inv)
	if err := os.WriteFile(invPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = planRun(t, "", "--inventory", invPath, "../../examples/provision.json")
	if code != 0 || !strings.Contains(out, "/dev/vda  102400 MiB, gpt, 9 partitions") {
		t.Errorf("exit %d, stderr %q, output:\n%s", code, errs, out)
	}
}

func TestPlanCommandUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "want one FILE, got 0"},
		{[]string{"a", "b"}, 2, "want one FILE, got 2"},
		{[]string{"-o", "yaml", "x"}, 2, `-o: want text or json, got "yaml"`},
		{[]string{"--grub", "3", "x"}, 2, "--grub: want 1 or 2, got 3"},
		{[]string{"/nonexistent/provision.json"}, 1, "/nonexistent/provision.json: no such file"},
		{[]string{"-h"}, 0, "usage: imprint plan"},
	} {
		code, _, errs := planRun(t, "", tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("plan %q: exit %d, stderr %q; want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
	code, _, errs := planRun(t, "{not json", "-")
	if code != 2 || !strings.Contains(errs, "-: ") {
		t.Errorf("syntax error: exit %d, stderr %q", code, errs)
	}
}

func TestPlanCommandNoConfigdrive(t *testing.T) {
	code, out, _ := planRun(t, "", "--no-configdrive", "../../examples/provision.json")
	if code != 0 || !strings.Contains(out, "Configdrive: none") || strings.Contains(out, "81853") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// --boot-mode uefi makes partition 2 an ESP mounted at /boot/efi; a
// boot_mode in the document or the inventory's firmware does the same
// without the flag.
func TestPlanCommandBootMode(t *testing.T) {
	code, out, errs := planRun(t, "", "--boot-mode", "uefi", "../../examples/provision.json")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	if !strings.Contains(out, "/dev/vda  2  26–226         200       /boot/efi vfat          C12A7328-F81F-11D2-BA4B-00A0C93EC93B") {
		t.Errorf("no ESP in:\n%s", out)
	}
	inv := filepath.Join(t.TempDir(), "inv.json")
	os.WriteFile(inv, []byte(`{"disks":[{"name":"vda","path":"/dev/vda","size_bytes":85899345920,"logical_sector_size":512}],"firmware":{"boot_mode":"uefi"}}`), 0o644)
	code, out, errs = planRun(t, "", "--inventory", inv, "../../examples/provision.json")
	if code != 0 || !strings.Contains(out, "/boot/efi vfat") {
		t.Errorf("inventory booted uefi: exit %d, stderr %q, output:\n%s", code, errs, out)
	}
	if code, _, errs := planRun(t, "", "--boot-mode", "efi", "../../examples/provision.json"); code != 2 || !strings.Contains(errs, "--boot-mode: want bios, uefi or both") {
		t.Errorf("--boot-mode efi: exit %d, stderr %q", code, errs)
	}
}
