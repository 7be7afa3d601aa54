package configdrive

import (
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/netdata"
)

// ramdiskDoc is a document as the ramdisk writes it after applying it
// (NICs resolved to MACs, bond and VLAN named).
func ramdiskDoc() *netdata.Document {
	return &netdata.Document{
		Links: []netdata.Link{
			{ID: "a0", Type: "phy", MAC: "52:54:00:0a:00:01"}, {ID: "a1", Type: "phy", MAC: "52:54:00:0a:00:02"},
			{ID: "bond0", Name: "bond0", Type: "bond", BondLinks: []string{"a0", "a1"}, BondMode: "active-backup", BondPrimary: "a0", BondMiimon: 100},
			{ID: "a2", Type: "phy", MAC: "52:54:00:0a:00:03", MTU: 9000}, {ID: "vlan100", Name: "vlan100", Type: "vlan", VLANLink: "a2", VLANID: 100},
		},
		Networks: []netdata.Network{
			{ID: "admin", Type: "ipv4", Link: "bond0", IPAddress: "10.0.2.15", Netmask: "255.255.255.0", Gateway: "10.0.2.2",
				Routes: []netdata.Route{{Network: "192.168.0.0", Netmask: "255.255.0.0", Gateway: "10.0.2.254"}}},
			{ID: "v6", Type: "ipv6", Link: "bond0", IPAddress: "fec0::15/64"},
			{ID: "prov", Type: "ipv4", Link: "vlan100", IPAddress: "192.168.100.1/24"},
		},
		Services: []netdata.Service{{Type: "dns", Address: "10.0.2.3"}},
	}
}

func TestWithNetwork(t *testing.T) {
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := WithNetwork(c, ramdiskDoc()); err != nil {
		t.Fatal(err)
	}
	back, err := netdata.Parse(c.NetworkDataJSON)
	if err != nil {
		t.Fatalf("network_data.json does not parse back: %v\n%s", err, c.NetworkDataJSON)
	}
	if len(back.Links) != 5 || back.Links[2].BondPrimary != "" /* a0 has no OS name */ || back.Links[4].VLANMAC != "52:54:00:0a:00:03" || back.Networks[1].IPAddress != "fec0::15/64" {
		t.Errorf("network_data.json:\n%s", c.NetworkDataJSON)
	}
	for _, want := range []string{"type: bond", "bond-mode: active-backup", "bond-primary: a0", "type: vlan", "vlan_link: a2", "vlan_id: 100",
		`mac_address: "52:54:00:0a:00:03"`, `address: "10.0.2.15/24"`, "type: static6", `address: "fec0::15/64"`} {
		if !strings.Contains(string(c.NetworkConfig), want) {
			t.Errorf("network-config lacks %q:\n%s", want, c.NetworkConfig)
		}
	}
	bad := ramdiskDoc()
	bad.Links[0].MAC = ""
	bad.Links[0].Device = "eth0"
	if err := WithNetwork(c, bad); err == nil || !strings.Contains(err.Error(), "links[0] (a0): the installed OS needs its MAC") {
		t.Errorf("WithNetwork with a NIC named by kernel name: %v", err)
	}
}

// TestWithNetworkCloudInit has the real cloud-init render both formats for
// Debian's ifupdown (the bond, the VLAN, static v4 and v6, the route).
func TestWithNetworkCloudInit(t *testing.T) {
	cloudInit(t)
	c, err := Build(loadFixture(t, fixtures[0]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := ramdiskDoc()
	// net-convert runs on a machine without these NICs: name them (at boot
	// cloud-init finds unnamed NICs by MAC).
	d.Links[0].Name, d.Links[1].Name, d.Links[3].Name = "ens3", "ens4", "ens5"
	if err := WithNetwork(c, d); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		kind string
		data []byte
	}{{"yaml", c.NetworkConfig}, {"network_data.json", c.NetworkDataJSON}} {
		t.Run(tt.kind, func(t *testing.T) {
			eni := netConvertENI(t, tt.kind, tt.data)
			// (From network_data.json cloud-init names the VLAN ens5.100.)
			for _, want := range []string{"iface bond0 inet static", "address 10.0.2.15/24", "gateway 10.0.2.2", "mode active-backup",
				"primary ens3", "bond-slaves none", "bond-master bond0", "iface bond0 inet6 static", "address fec0::15/64",
				"address 192.168.100.1/24", "vlan-raw-device ens5", "vlan_id 100", "mtu 9000", "192.168.0.0/16 gw 10.0.2.254"} {
				if !strings.Contains(string(eni), want) {
					t.Errorf("net-convert -k %s lacks %q:\n%s", tt.kind, want, eni)
				}
			}
		})
	}
}
