package inventory

import (
	"encoding/json"
	"net/netip"
	"os"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// qemuNode is the node of testdata/nailgun/agent-qemu.json as imprint's
// inventory sees it.
func qemuNode() (*Inventory, NailgunHost) {
	inv := &Inventory{
		Disks: []Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 80 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512,
			Serial: "IMPRINT-VDA", ByID: []string{"/dev/disk/by-id/virtio-IMPRINT-VDA"},
			ByPath: []string{"/dev/disk/by-path/pci-0000:00:04.0", "/dev/disk/by-path/virtio-pci-0000:00:04.0"}}},
		NICs:   []NIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Link: true, Driver: "virtio_net"}},
		CPU:    CPU{Model: "QEMU Virtual CPU version 2.5+", Count: 2, Sockets: 1, Arch: "x86_64"},
		Memory: Memory{TotalBytes: 1536 << 20},
		DMI:    DMI{Vendor: "QEMU", Product: "Standard PC (i440FX + PIIX, 1996)", Serial: "IMPRINT-NODE-1", UUID: "6d1a2c64-1c4e-4bde-9a65-5f0c6b5e0b01"},
	}
	host := NailgunHost{
		Addrs:     map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix("fec0::5054:ff:fe12:3456/64"), netip.MustParsePrefix("10.0.2.15/24")}},
		AdminMAC:  "52:54:00:12:34:56",
		FQDN:      "bootstrap",
		Bootstrap: true,
	}
	return inv, host
}

// notCollected are the fields of the agent's document that imprint's
// ramdisk has no tool for (ethtool -k and -i, lspci, cpufreq): the
// recorded values are dropped before comparing; imprint sends the agent's
// own fallbacks for them (no bus_info, pci_id "", no offloading modes,
// null frequency), which Nailgun accepts from an agent without those tools.
var notCollected = []string{
	"meta.interfaces[0].bus_info",
	"meta.interfaces[0].interface_properties.pci_id",
	"meta.interfaces[0].offloading_modes",
	"meta.cpu.spec[0].frequency", "meta.cpu.spec[1].frequency",
	"agent_checksum",
}

func drop(v any, path string) {
	re := regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?\.?(.*)$`)
	m := re.FindStringSubmatch(path)
	obj, ok := v.(map[string]any)
	if m == nil || !ok {
		return
	}
	if m[3] == "" && m[2] == "" {
		delete(obj, m[1])
		return
	}
	next := obj[m[1]]
	if m[2] != "" {
		arr, _ := next.([]any)
		var i int
		json.Unmarshal([]byte(m[2]), &i)
		if i >= len(arr) {
			return
		}
		next = arr[i]
	}
	drop(next, m[3])
}

// TestNailgunDiscovery renders the QEMU node and compares it with the
// document nailgun-agent sends for it (testdata/nailgun/README), field by
// field, types included.
func TestNailgunDiscovery(t *testing.T) {
	b, err := os.ReadFile("testdata/nailgun/agent-qemu.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	inv, host := qemuNode()
	d := Nailgun(inv, host)
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(out, &got)
	for _, p := range notCollected {
		drop(want, p)
		drop(got, p)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("discovery document differs from nailgun-agent's (-agent +imprint):\n%s\nimprint's:\n%s", diff, out)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(d.AgentChecksum) {
		t.Errorf("agent_checksum %q is not a SHA-1", d.AgentChecksum)
	}
	// The checksum follows the content, nothing else.
	if again := Nailgun(inv, host); again.AgentChecksum != d.AgentChecksum {
		t.Errorf("checksum not stable: %s then %s", d.AgentChecksum, again.AgentChecksum)
	}
	inv.Disks[0].SizeBytes += 1 << 30
	if grown := Nailgun(inv, host); grown.AgentChecksum == d.AgentChecksum {
		t.Errorf("checksum unchanged after a disk grew")
	}
}

// TestNailgunDiscoveryEdges: without a PXE MAC the first NIC with an IPv4
// address is the admin one; a removable disk is "1", a model is a string;
// a node outside the bootstrap has no status.
func TestNailgunDiscoveryEdges(t *testing.T) {
	inv, host := qemuNode()
	inv.NICs = append([]NIC{{Name: "eth1", MAC: "52:54:00:AA:00:01", SpeedMbps: 10000}}, inv.NICs...)
	inv.Disks = append(inv.Disks, Disk{Name: "sdb", SizeBytes: 16 << 30, Removable: true, Model: "Ultra Fit"})
	host.AdminMAC, host.Bootstrap = "", false
	d := Nailgun(inv, host)
	if d.MAC != "52:54:00:12:34:56" || d.IP != "10.0.2.15" || d.Meta.Interfaces[0].PXE || !d.Meta.Interfaces[1].PXE {
		t.Errorf("admin NIC: mac %s ip %s, interfaces %+v", d.MAC, d.IP, d.Meta.Interfaces)
	}
	if e1 := d.Meta.Interfaces[0]; e1.State != "down" || e1.MAC != "52:54:00:aa:00:01" || e1.MaxSpeed == nil || *e1.MaxSpeed != 10000 || e1.IP != "" {
		t.Errorf("eth1: %+v", e1)
	}
	if k := d.Meta.Disks[1]; k.Removable != "1" || k.Model == nil || *k.Model != "Ultra Fit" || k.Disk != "sdb" || len(k.Extra) != 0 || k.Extra == nil {
		t.Errorf("sdb: %+v", k)
	}
	if d.Status != "" {
		t.Errorf("status %q outside the bootstrap", d.Status)
	}
	if netmask(20) != "255.255.240.0" || netmask(32) != "255.255.255.255" || netmask(0) != "0.0.0.0" {
		t.Errorf("netmask: %s %s %s", netmask(20), netmask(32), netmask(0))
	}
}
