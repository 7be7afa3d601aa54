package netdata

import (
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var testNICs = []NIC{
	{Name: "eth1", MAC: mac("52:54:00:00:00:02"), Carrier: true},
	{Name: "eth0", MAC: mac("52:54:00:00:00:01"), Carrier: false},
	{Name: "eth2", MAC: mac("52:54:00:00:00:03"), Carrier: true},
}

func opStrings(ops []Op) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.String())
	}
	return out
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{{
		name: "phy static ipv4 with gateway, route and DNS",
		doc: `{"links":[{"id":"nic0","type":"phy","ethernet_mac_address":"52:54:00:00:00:02","mtu":9000}],
		 "networks":[{"id":"n0","type":"ipv4","link":"nic0","ip_address":"10.0.0.5","netmask":"255.255.255.0","gateway":"10.0.0.1",
		   "routes":[{"network":"192.168.0.0","netmask":"255.255.0.0","gateway":"10.0.0.254"},{"network":"0.0.0.0","netmask":"0.0.0.0","gateway":"10.0.0.1"}],
		   "dns_nameservers":["10.0.0.53"],"dns_search":["example.org"]}],
		 "services":[{"type":"dns","address":"10.0.0.53"},{"type":"dns","address":"2001:db8::53"},{"type":"ntp","address":"x"}]}`,
		want: []string{
			"set-mtu eth1 9000",
			"set-up eth1",
			"add-addr 10.0.0.5/24 on eth1",
			"add-route 0.0.0.0/0 via 10.0.0.1 on eth1",
			"add-route 192.168.0.0/16 via 10.0.0.254 on eth1",
			"dns 10.0.0.53,2001:db8::53 search example.org",
		},
	}, {
		name: "active-backup bond with static address",
		doc: `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
		  {"id":"b","type":"phy","ethernet_mac_address":"52:54:00:00:00:03"},
		  {"id":"bond0","type":"bond","bond_links":["a","b"],"bond_mode":"active-backup","bond_primary":"a","mtu":1500}],
		 "networks":[{"id":"n0","type":"ipv4","link":"bond0","ip_address":"10.0.2.15/24","gateway":"10.0.2.2"}]}`,
		want: []string{
			"load-module bonding max_bonds=0",
			"set-mtu eth0 1500", "set-down eth0", "set-mtu eth2 1500", "set-down eth2",
			"create-bond bond0 mode active-backup miimon 100 primary eth0",
			"enslave eth0 to bond0", "enslave eth2 to bond0",
			"set-mtu bond0 1500",
			"set-up bond0",
			"add-addr 10.0.2.15/24 on bond0",
			"add-route 0.0.0.0/0 via 10.0.2.2 on bond0",
		},
	}, {
		name: "802.3ad bond with options and a VLAN on it, DHCPv4 on the VLAN",
		doc: `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
		  {"id":"b","type":"ethernet","ethernet_mac_address":"52:54:00:00:00:02"},
		  {"id":"agg","name":"bond1","type":"bond","bond_links":["a","b"],"bond_mode":"4","bond_miimon":50,
		   "bond_xmit_hash_policy":"layer3+4","bond_lacp_rate":"fast","bond_updelay":200,"ethernet_mac_address":"52:54:00:aa:bb:cc"},
		  {"id":"prov","type":"vlan","vlan_link":"agg","vlan_id":100,"name":"bond1.100"}],
		 "networks":[{"type":"ipv4_dhcp","link":"prov"}]}`,
		want: []string{
			"load-module bonding max_bonds=0", "load-module 8021q",
			"set-down eth0", "set-down eth1",
			"create-bond bond1 mode 802.3ad miimon 50 xmit_hash_policy layer3+4 lacp_rate fast updelay 200 mac 52:54:00:aa:bb:cc",
			"enslave eth0 to bond1", "enslave eth1 to bond1",
			"set-up bond1",
			"create-vlan bond1.100 on bond1 id 100",
			"set-up bond1.100",
			"dhcpv4 bond1.100",
		},
	}, {
		name: "VLAN on a NIC, static IPv6 and SLAAC, DHCPv6 on another NIC",
		doc: `{"links":[{"id":"nic","type":"phy","ethernet_mac_address":"52:54:00:00:00:03"},
		  {"id":"vlan42","type":"vlan","vlan_link":"nic","vlan_id":42,"vlan_mac_address":"52:54:00:00:42:42"},
		  {"id":"other","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"}],
		 "networks":[{"id":"v6","type":"ipv6","link":"vlan42","ip_address":"2001:db8:42::5","netmask":"ffff:ffff:ffff:ffff::","gateway":"2001:db8:42::1",
		    "routes":[{"network":"2001:db8:99::","netmask":"48","gateway":"2001:db8:42::fe"}]},
		   {"id":"v4","type":"ipv4","link":"vlan42","ip_address":"192.0.2.5","netmask":"255.255.255.128"},
		   {"id":"ra","type":"ipv6_slaac","link":"nic"},
		   {"id":"d6","type":"ipv6_dhcpv6-stateful","link":"other"}]}`,
		want: []string{
			"load-module 8021q",
			"sysctl /proc/sys/net/ipv6/conf/eth2/accept_ra=1", "sysctl /proc/sys/net/ipv6/conf/eth2/autoconf=1",
			"set-up eth2",
			"sysctl /proc/sys/net/ipv6/conf/eth0/accept_ra=1", "sysctl /proc/sys/net/ipv6/conf/eth0/autoconf=0",
			"set-up eth0",
			"create-vlan vlan42 on eth2 id 42 mac 52:54:00:00:42:42",
			"sysctl /proc/sys/net/ipv6/conf/vlan42/accept_ra=0", "sysctl /proc/sys/net/ipv6/conf/vlan42/autoconf=0",
			"set-up vlan42",
			"add-addr 2001:db8:42::5/64 on vlan42",
			"add-addr 192.0.2.5/25 on vlan42",
			"add-route ::/0 via 2001:db8:42::1 on vlan42",
			"add-route 2001:db8:99::/48 via 2001:db8:42::fe on vlan42",
			"wait-slaac eth2",
			"dhcpv6 eth0",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Plan(doc, testNICs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, opStrings(res.Ops)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanResolvesNICs(t *testing.T) {
	// A command-line document names NICs by kernel name or "the first with
	// a link"; the plan resolves both to MACs for the installed OS.
	c, err := FromCmdline([]Param{{"ip", "10.0.0.5::10.0.0.1:255.255.255.0::eth0:none"}, {"ip", "[2001:db8::5]:::64:::none"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Plan(c.Doc, testNICs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range res.Resolved.Links {
		got = append(got, l.ID+"="+l.MAC)
	}
	want := []string{"eth0=52:54:00:00:00:01", "any=52:54:00:00:00:02"} // eth1: first by name with carrier
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolved links (-want +got):\n%s", diff)
	}
	b, err := res.Resolved.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatalf("the resolved document does not parse back: %v\n%s", err, b)
	}
	if back.Links[1].MAC != "52:54:00:00:00:02" || back.Networks[1].IPAddress != "2001:db8::5/64" {
		t.Errorf("resolved document:\n%s", b)
	}
	// The source document is untouched.
	if c.Doc.Links[0].MAC != "" || c.Doc.Links[0].Device != "eth0" {
		t.Errorf("Plan modified its input: %+v", c.Doc.Links[0])
	}
}

func TestPlanFailures(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error
	}{
		{"unknown MAC", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:99:99:99"}],"networks":[]}`,
			[]string{"links[0] (x): no NIC with MAC 52:54:00:99:99:99 (have eth0=52:54:00:00:00:01, eth1=52:54:00:00:00:02, eth2=52:54:00:00:00:03)"}},
		{"VLAN id out of range", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},{"id":"v","type":"vlan","vlan_link":"x","vlan_id":4095}]}`,
			[]string{"links[1] (v).vlan_id: 4095 out of range 1-4094"}},
		{"VLAN id zero", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},{"id":"v","type":"vlan","vlan_link":"x"}]}`,
			[]string{"links[1] (v).vlan_id: 0 out of range 1-4094"}},
		{"bond without members", `{"links":[{"id":"bond0","type":"bond","bond_mode":"active-backup"}]}`,
			[]string{"links[0] (bond0).bond_links: a bond needs at least one member link"}},
		{"bond bad mode and options", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
			{"id":"bond0","type":"bond","bond_links":["x","nope"],"bond_mode":"fastest","bond_xmit_hash_policy":"layer9","bond_lacp_rate":"medium","bond_miimon":-1}]}`,
			[]string{`bond_links[1]: no link with id "nope"`, `bond_mode: "fastest": want one of balance-rr`, `bond_xmit_hash_policy: "layer9"`, `bond_lacp_rate: "medium"`, "bond_miimon: -1 is negative"}},
		{"bond options that do not fit the mode", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
			{"id":"bond0","type":"bond","bond_links":["x"],"bond_mode":"active-backup","bond_xmit_hash_policy":"layer2","bond_lacp_rate":"fast"}]}`,
			[]string{"bond_xmit_hash_policy: only used by", "bond_lacp_rate: only used by 802.3ad, not active-backup"}},
		{"member of two bonds, bond of a bond", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
			{"id":"b1","type":"bond","bond_links":["x"],"bond_mode":"active-backup"},{"id":"b2","type":"bond","bond_links":["x","b1"],"bond_mode":"active-backup"}]}`,
			[]string{`links[2] (b2).bond_links[0]: "x" is already a member of bond "b1"`, `bond_links[1]: "b1" is a bond; bond members must be NICs`}},
		{"address on a bond member, VLAN on a member", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
			{"id":"b","type":"bond","bond_links":["x"],"bond_mode":"active-backup"},{"id":"v","type":"vlan","vlan_link":"x","vlan_id":5}],
			"networks":[{"type":"ipv4_dhcp","link":"x"}]}`,
			[]string{`networks[0].link: "x" is a member of bond "b"`, `links[2] (v).vlan_link: "x" is a member of bond "b"; put the VLAN on the bond`}},
		{"VLAN on a VLAN, missing parent, duplicate id", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
			{"id":"v1","type":"vlan","vlan_link":"x","vlan_id":5},{"id":"v2","type":"vlan","vlan_link":"v1","vlan_id":6},
			{"id":"v3","type":"vlan","vlan_link":"zz","vlan_id":7},{"id":"v4","type":"vlan","vlan_link":"x","vlan_id":5}]}`,
			[]string{`links[2] (v2).vlan_link: "v1" is a VLAN`, `links[3] (v3).vlan_link: no link with id "zz"`, `links[4] (v4).vlan_id: VLAN 5 on "x" already defined by links[1]`}},
		{"NIC without MAC, bad MAC, duplicate MAC, bad type, duplicate id", `{"links":[{"id":"a","type":"phy"},{"id":"b","type":"phy","ethernet_mac_address":"zz"},
			{"id":"c","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},{"id":"d","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},
			{"id":"e","type":"wifi"},{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:00:00:02"}]}`,
			[]string{"links[0] (a).ethernet_mac_address: required", `links[1] (b).ethernet_mac_address: "zz" is not an Ethernet MAC address`,
				"links[3] (d).ethernet_mac_address: 52:54:00:00:00:01 already used by links[2]", `links[4] (e).type: "wifi"`, `links[5].id: "a" already used by links[0]`}},
		{"bad networks", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01","mtu":1000}],
			"networks":[{"type":"ipv4","link":"x","ip_address":"10.0.0.5"},{"type":"ipv4","link":"x","ip_address":"2001:db8::1/64"},
			{"type":"ipv6","link":"x","ip_address":"2001:db8::1","gateway":"10.0.0.1"},{"type":"ipv4_dhcp","link":"y"},{"type":"ipv5","link":"x"},
			{"type":"ipv4","link":"x","ip_address":"10.0.0.6","netmask":"255.0.255.0","routes":[{"network":"10.1.0.1","netmask":"255.255.0.0","gateway":"10.0.0.1"}],
			 "dns_nameservers":["dns.example"]}]}`,
			[]string{`networks[0].ip_address: "10.0.0.5" has no netmask`, `networks[1].ip_address: "2001:db8::1/64" is not an IPv4 address`,
				`networks[2].gateway: "10.0.0.1" is not an IPv6 address`, "links[0] (x).mtu: 1000: IPv6 (networks[2]) needs at least 1280",
				`networks[3].link: no link with id "y"`, `networks[4].type: "ipv5"`, `networks[5].ip_address: netmask "255.0.255.0" is not contiguous`,
				"networks[5].routes[0]: network 10.1.0.1/16 has host bits set", `networks[5].dns_nameservers[0]: "dns.example" is not an IP address`}},
		{"two default routes", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"}],
			"networks":[{"id":"a","type":"ipv4","link":"x","ip_address":"10.0.0.5/24","gateway":"10.0.0.1"},{"id":"b","type":"ipv4","link":"x","ip_address":"10.0.1.5/24","gateway":"10.0.1.1"}]}`,
			[]string{"networks[1] (b).gateway: a second IPv4 default route, via 10.0.1.1 (networks[0] has one via 10.0.0.1)"}},
		{"bond name clashes with a NIC", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},{"id":"eth2","type":"bond","bond_links":["x"],"bond_mode":"active-backup"}]}`,
			[]string{`links[1] (eth2): interface name "eth2" is a NIC's (52:54:00:00:00:03)`}},
		{"two links on one NIC", `{"links":[{"id":"x","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},{"id":"y","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"}]}`,
			[]string{"already used by links[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.doc))
			if err == nil {
				_, err = Plan(doc, testNICs)
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestPlanNoCarrier(t *testing.T) {
	c, err := FromCmdline([]Param{{"ip", "10.0.0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(c.Doc, []NIC{{Name: "eth0", MAC: mac("52:54:00:00:00:01")}})
	if err == nil || !strings.Contains(err.Error(), "links[0] (any): no NIC with a link (have eth0=52:54:00:00:00:01)") {
		t.Errorf("err = %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	for in, want := range map[string]string{
		`{"links":[]} {}`:              "trailing data",
		`{"links":{}}`:                 "cannot unmarshal",
		`[]`:                           "cannot unmarshal",
		strings.Repeat(" ", MaxSize+1): "more than the",
	} {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.20q) = %v, want %q", in, err, want)
		}
	}
}
