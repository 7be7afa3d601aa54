package vmtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// QEMUMAC is the MAC QEMU gives a NIC that names none.
const QEMUMAC = "52:54:00:12:34:56"

// FuelNode is what a VM test's provision document says about its node.
type FuelNode struct {
	Host string // FQDN (hostname, dns_name); its first label is the node's name
	MAC  string // the admin NIC eth0 (10.0.2.15/24); default QEMUMAC
	// RootURI and BootURI are the gzip images of / (ext4) and /boot (ext2).
	RootURI, BootURI string
	AuthKey          string // root's SSH key (ks_meta.auth_key)
	PhoneHome        string // ks_meta.phone_home_url; not set when empty
}

// FuelDoc is the Fuel 9.0 one-disk document of agent/testdata
// (provision_fuel90_ubuntu_1disk.json) made into node n on QEMU's user
// network (gateway and master 10.0.2.2, DNS 10.0.2.3): one 3 GiB disk vda
// with /boot on a partition and an "os" VG holding root and swap, the
// serial console in the kernel parameters. Tests change the returned
// document (FuelKsMeta, FuelPmData) and post MarshalDoc's bytes.
func FuelDoc(t testing.TB, n FuelNode) map[string]any {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "agent", "testdata", "provision_fuel90_ubuntu_1disk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	mac := n.MAC
	if mac == "" {
		mac = QEMUMAC
	}
	name, _, _ := strings.Cut(n.Host, ".")
	d["hostname"], d["name"], d["slave_name"] = n.Host, name, name
	d["interfaces"] = map[string]any{"eth0": map[string]any{"mac_address": mac, "ip_address": "10.0.2.15",
		"netmask": "255.255.255.0", "dns_name": n.Host, "static": "0"}}
	d["interfaces_extra"] = map[string]any{"eth0": map[string]any{"onboot": "yes", "peerdns": "no"}}
	d["kernel_options"] = map[string]any{"udevrules": mac + "_eth0", "netcfg/choose_interface": mac}
	d["name_servers"] = `"10.0.2.3"`
	ks := FuelKsMeta(d)
	ks["gw"], ks["master_ip"], ks["admin_net"] = "10.0.2.2", "10.0.2.2", "10.0.2.0/24"
	ks["auth_key"] = `"` + n.AuthKey + `"`
	ks["authorized_keys"] = []any{}
	if n.PhoneHome != "" {
		ks["phone_home_url"] = n.PhoneHome
	}
	pm := FuelPmData(d)
	// ignore_loglevel: the image keeps Debian's "quiet" (GRUB_CMDLINE_LINUX_DEFAULT),
	// and the kernel's banner on ttyS0 marks that grub loaded it
	pm["kernel_params"] = "console=tty0 console=ttyS0,115200n8 ignore_loglevel net.ifnames=0 biosdevname=0 nomodeset"
	pm["ks_spaces"] = []any{
		map[string]any{
			"type": "disk", "id": "vda", "name": "vda", "size": 3072, "free_space": 2500, "bootable": true, "extra": []any{},
			"volumes": []any{
				map[string]any{"type": "boot", "size": 300},
				map[string]any{"type": "partition", "mount": "/boot", "size": 200, "file_system": "ext2", "name": "Boot"},
				map[string]any{"type": "lvm_meta_pool", "size": 0},
				map[string]any{"type": "pv", "vg": "os", "size": 2400, "lvm_meta_size": 64},
			},
		},
		map[string]any{
			"type": "vg", "id": "os", "label": "Base System", "min_size": 2240, "_allocate_size": "min",
			"volumes": []any{
				map[string]any{"type": "lv", "name": "root", "mount": "/", "size": 2048, "file_system": "ext4"},
				map[string]any{"type": "lv", "name": "swap", "mount": "swap", "size": 192, "file_system": "swap"},
			},
		},
	}
	ks["image_data"] = map[string]any{
		"/":     map[string]any{"uri": n.RootURI, "format": "ext4", "container": "gzip"},
		"/boot": map[string]any{"uri": n.BootURI, "format": "ext2", "container": "gzip"},
	}
	return d
}

// FuelKsMeta is the document's ks_meta object.
func FuelKsMeta(d map[string]any) map[string]any { return d["ks_meta"].(map[string]any) }

// FuelPmData is the document's ks_meta.pm_data object.
func FuelPmData(d map[string]any) map[string]any {
	return FuelKsMeta(d)["pm_data"].(map[string]any)
}

// MarshalDoc is d as JSON.
func MarshalDoc(t testing.TB, d map[string]any) []byte {
	t.Helper()
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
