package controller

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

const (
	testMAC = "52:54:00:12:34:56"
	testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEm8a0rYbXQpLxSM0oY8rU2iTfp5eVZ0C9Vqg7cZk8lN e2e@imprint"
)

// qemuInventory is what the agent reports in the e2e VM: a virtio disk, a
// CD-ROM drive (removable) and one virtio NIC.
func qemuInventory(diskGiB int64) *inventory.Inventory {
	return &inventory.Inventory{
		Disks: []inventory.Disk{
			{Name: "sr0", Path: "/dev/sr0", SizeBytes: 1 << 30, Removable: true, LogicalSectorSize: 2048},
			{Name: "vda", Path: "/dev/vda", SizeBytes: diskGiB << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Bus: "virtio",
				Serial: "IMPRINT-E2E-0",
				ByID:   []string{"/dev/disk/by-id/virtio-IMPRINT-E2E-0"},
				ByPath: []string{"/dev/disk/by-path/pci-0000:00:04.0", "/dev/disk/by-path/virtio-pci-0000:00:04.0"}},
		},
		NICs:   []inventory.NIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Link: true, Driver: "virtio_net"}},
		Memory: inventory.Memory{TotalBytes: 1536 << 20},
		CPU:    inventory.CPU{Count: 2, Arch: "x86_64"},
	}
}

func qemuNetwork() Network {
	return Network{Prefix: netip.MustParsePrefix("10.0.2.0/24"), Gateway: netip.MustParseAddr("10.0.2.2"),
		NameServers: []netip.Addr{netip.MustParseAddr("10.0.2.3")}}
}

func composeReq(inv *inventory.Inventory, images ...ComposeImage) ComposeRequest {
	if len(images) == 0 {
		images = []ComposeImage{{MountPoint: "/", URI: "http://10.0.2.2:8080/images/debian-12-amd64.img.gz", Format: "ext4", Container: "gzip", RawSize: 1800 << 20}}
	}
	return ComposeRequest{
		Node:      Node{MAC: testMAC, Hostname: "node-1.lab.example", SSHKeys: []string{testKey}},
		UID:       1,
		Inventory: inv,
		Addresses: []string{"fec0::5054:ff:fe12:3456", "10.0.2.15"},
		Images:    images,
		Network:   qemuNetwork(),
		MasterIP:  "10.0.2.2", PhoneHomeURL: "http://10.0.2.2:8080/phone-home/" + testMAC,
	}
}

// accepted checks that the agent would take the document: provision's
// validation, the partition planner against the same inventory, and the
// configdrive renderer.
func accepted(t *testing.T, doc []byte, inv *inventory.Inventory) (*provision.Document, *partition.Plan) {
	t.Helper()
	d, err := provision.ParseAndValidate(doc)
	if err != nil {
		t.Fatalf("ParseAndValidate: %v\n%s", err, doc)
	}
	if w := d.Warnings(); len(w) > 0 {
		t.Errorf("validation warnings: %v", w)
	}
	plan, err := partition.NewPlan(d, partition.DevicesFromInventory(inv), partition.DefaultPlanOptions())
	if err != nil {
		t.Fatalf("NewPlan: %v\n%s", err, doc)
	}
	if _, err := configdrive.Build(d, configdrive.Options{PhoneHomeURL: "http://10.0.2.2:8080/phone-home/" + testMAC}); err != nil {
		t.Fatalf("configdrive.Build: %v", err)
	}
	return d, plan
}

func TestComposeFuelLayoutAccepted(t *testing.T) {
	inv := qemuInventory(6)
	doc, err := Compose(composeReq(inv))
	if err != nil {
		t.Fatal(err)
	}
	d, plan := accepted(t, doc, inv)

	if d.Hostname != "node-1.lab.example" || d.KsMeta.AuthKey != "" {
		t.Errorf("hostname %q auth_key %q", d.Hostname, d.KsMeta.AuthKey)
	}
	if diff := cmp.Diff([]string{testKey}, d.KsMeta.AuthorizedKeys); diff != "" {
		t.Errorf("authorized_keys (quotes stripped) -want +got:\n%s", diff)
	}
	if len(d.KsMeta.UserAccounts) != 1 || d.KsMeta.UserAccounts[0].Name != "root" || d.KsMeta.UserAccounts[0].SSHKeys[0] != testKey {
		t.Errorf("user_accounts = %+v", d.KsMeta.UserAccounts)
	}
	if admin, ok := d.AdminInterface(); !ok || admin != "eth0" || d.Interfaces["eth0"].IPAddress != "10.0.2.15" || d.Interfaces["eth0"].Netmask != "255.255.255.0" {
		t.Errorf("admin interface %q %+v", admin, d.Interfaces)
	}
	sp := d.KsMeta.PmData.KsSpaces[0]
	if sp.ID != "disk/by-path/pci-0000:00:04.0" || sp.Name != "vda" || !cmp.Equal(sp.Extra, []string{"disk/by-id/virtio-IMPRINT-E2E-0"}) || sp.Size != 6144 {
		t.Errorf("disk space: id %q name %q extra %v size %d", sp.ID, sp.Name, sp.Extra, sp.Size)
	}
	var phone map[string]any
	json.Unmarshal(doc, &phone)
	if got := phone["ks_meta"].(map[string]any)["phone_home_url"]; got != "http://10.0.2.2:8080/phone-home/"+testMAC {
		t.Errorf("ks_meta.phone_home_url = %v", got)
	}

	// The plan: bios_grub, UEFI, the os PV, the configdrive on /dev/vda
	// (no /boot partition without a /boot image), root and swap LVs.
	if len(plan.Disks) != 1 || plan.Disks[0].Device != "/dev/vda" {
		t.Fatalf("plan disks = %+v", plan.Disks)
	}
	var purposes []string
	for _, p := range plan.Disks[0].Partitions {
		purposes = append(purposes, p.Purpose)
	}
	t.Logf("partitions: %v", purposes)
	if n := len(plan.Disks[0].Partitions); n != 4 || !plan.Disks[0].Partitions[3].Configdrive || plan.Disks[0].Partitions[2].VG != "os" {
		t.Errorf("partitions = %+v", plan.Disks[0].Partitions)
	}
	lvs := map[string]int64{}
	for _, lv := range plan.LVs {
		lvs[lv.VG+"/"+lv.Name] = lv.SizeMiB
	}
	// 6144 - 300 = 5844 MiB PV, 5844-29-28 = 5787 → 5784 usable; swap
	// min(2×1536, 5784/4=1446) = 1444 (extents); root the rest.
	if diff := cmp.Diff(map[string]int64{"os/root": 4340, "os/swap": 1444}, lvs); diff != "" {
		t.Errorf("LVs -want +got:\n%s", diff)
	}
	if len(plan.Images) != 1 || plan.Images[0].Device != "/dev/mapper/os-root" || plan.Images[0].Container != "gzip" {
		t.Errorf("images = %+v", plan.Images)
	}
	if plan.Configdrive != "/dev/vda4" || !cmp.Equal(plan.Bootloader, []string{"/dev/vda"}) {
		t.Errorf("configdrive %q, bootloader disks %v", plan.Configdrive, plan.Bootloader)
	}
}

func TestComposeBootImageGetsBootPartition(t *testing.T) {
	inv := qemuInventory(8)
	doc, err := Compose(composeReq(inv,
		ComposeImage{MountPoint: "/", URI: "http://10.0.2.2:1/images/root.img.gz", Format: "ext4", Container: "gzip"},
		ComposeImage{MountPoint: "/boot", URI: "http://10.0.2.2:1/images/boot.img.gz", Format: "ext2", Container: "gzip"}))
	if err != nil {
		t.Fatal(err)
	}
	_, plan := accepted(t, doc, inv)
	var boot *partition.FS
	for i, fs := range plan.FSs {
		if fs.Mount == "/boot" {
			boot = &plan.FSs[i]
		}
	}
	if boot == nil || boot.Device != "/dev/vda3" || boot.Type != "ext2" || !boot.Image {
		t.Errorf("/boot fs = %+v (plan fss %+v)", boot, plan.FSs)
	}
	if p := plan.Disks[0].Partitions[2]; p.SizeMiB() != 200 {
		t.Errorf("/boot partition is %d MiB", p.SizeMiB())
	}
}

func TestComposeRefusals(t *testing.T) {
	tests := []struct {
		name string
		req  func() ComposeRequest
		want string
	}{
		{"no disk", func() ComposeRequest {
			inv := qemuInventory(6)
			inv.Disks = inv.Disks[:1] // only the CD-ROM
			return composeReq(inv)
		}, "no disk to provision: sr0 is removable"},
		{"disk too small", func() ComposeRequest { return composeReq(qemuInventory(1)) }, "vda has 1024 MiB, less than"},
		{"image larger than root", func() ComposeRequest {
			r := composeReq(qemuInventory(3))
			r.Images[0].RawSize = 3 << 30
			return r
		}, "needs 3072 MiB"},
		{"no address in the admin network", func() ComposeRequest {
			r := composeReq(qemuInventory(6))
			r.Addresses = []string{"192.168.1.5"}
			return r
		}, "none of the node's addresses [192.168.1.5] is in the admin network 10.0.2.0/24"},
		{"MAC not in the inventory", func() ComposeRequest {
			r := composeReq(qemuInventory(6))
			r.Node.MAC = "52:54:00:00:00:01"
			return r
		}, "no NIC of the inventory has MAC 52:54:00:00:00:01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compose(tt.req())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compose() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Compose(ComposeRequest{Node: Node{MAC: testMAC}}); err == nil || !strings.Contains(err.Error(), "no inventory") {
		t.Errorf("Compose without inventory: %v", err)
	}
}

func TestSwapMiB(t *testing.T) {
	for ram, want := range map[int64]int64{0: 1024, 1024: 2048, 2048: 4096, 4096: 4096, 16384: 8192, 131072: 4096} {
		if got := swapMiB(ram); got != want {
			t.Errorf("swapMiB(%d) = %d, want %d", ram, got, want)
		}
	}
}

func TestMetadataStems(t *testing.T) {
	for name, want := range map[string][]string{
		"debian-12-amd64.img.gz": {"debian-12-amd64"},
		"ubuntu-16.04.img.gz":    {"ubuntu-16", "ubuntu-16.04"},
		"root.raw":               {"root"},
	} {
		if got := metadataStems(name); !cmp.Equal(got, want) {
			t.Errorf("metadataStems(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestComposeConfigdriveFormat: the node's format (its Node setting, or
// SetConfigdriveFormat's for its next round) is ks_meta.configdrive_format;
// none leaves the key out (the agent's setting applies).
func TestComposeConfigdriveFormat(t *testing.T) {
	inv := qemuInventory(6)
	for _, f := range []string{"", "nocloud-vfat", "config2-iso"} {
		req := composeReq(inv)
		req.ConfigdriveFormat = f
		doc, err := Compose(req)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := accepted(t, doc, inv)
		if d.KsMeta.ConfigdriveFormat != f {
			t.Errorf("configdrive_format %q, want %q", d.KsMeta.ConfigdriveFormat, f)
		}
		if f == "" && strings.Contains(string(doc), "configdrive_format") {
			t.Errorf("an unset format is in the document:\n%s", doc)
		}
	}
	c := &Controller{nodes: map[string]Node{testMAC: {MAC: testMAC, ConfigdriveFormat: "config2-vfat"}}}
	if got := c.configdriveFormat(testMAC); got != "config2-vfat" {
		t.Errorf("node's format %q", got)
	}
	if err := c.SetConfigdriveFormat(strings.ToUpper(testMAC), "nocloud-iso"); err != nil {
		t.Fatal(err)
	}
	if got := c.configdriveFormat(testMAC); got != "nocloud-iso" {
		t.Errorf("after SetConfigdriveFormat: %q", got)
	}
	if err := c.SetConfigdriveFormat(testMAC, "cidata"); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("bad format: %v", err)
	}
	if err := c.SetConfigdriveFormat("52:54:00:00:00:99", "nocloud-iso"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: %v", err)
	}
}
