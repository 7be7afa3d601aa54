package netdata

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func params(s string) []Param {
	var out []Param
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		out = append(out, Param{k, v})
	}
	return out
}

func TestFromCmdline(t *testing.T) {
	tests := []struct {
		cmdline  string
		off      bool
		hostname string
		doc      *Document // nil: DHCPv4 on every NIC
	}{
		{cmdline: "console=ttyS0"},
		{cmdline: "ip=dhcp"},
		{cmdline: "ip=dhcp nameserver=10.0.0.1"}, // DHCP everywhere, this DNS (Cmdline.DNS)
		{cmdline: "ip=:::::eth9:dhcp::", doc: &Document{ // DHCP on eth9 only
			Links:    []Link{{ID: "eth9", Type: "phy", Device: "eth9"}},
			Networks: []Network{{ID: "ip0", Type: "ipv4_dhcp", Link: "eth9"}}}},
		{cmdline: "ip=::::::dhcp"},
		{cmdline: "ip=off", off: true},
		{cmdline: "ip=none", off: true},
		{cmdline: "ip=dhcp imprint.ip=10.0.0.2/16", doc: &Document{
			Links:    []Link{{ID: "any", Type: "phy", AnyNIC: true}},
			Networks: []Network{{ID: "ip0", Type: "ipv4", Link: "any", IPAddress: "10.0.0.2/16"}}}},
		// The kernel's own form: client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp0.
		{cmdline: "ip=10.0.2.15::10.0.2.2:255.255.255.0:node1:eth0:off:10.0.2.3:10.0.2.4:10.0.2.5", hostname: "node1", doc: &Document{
			Links: []Link{{ID: "eth0", Type: "phy", Device: "eth0"}},
			Networks: []Network{{ID: "ip0", Type: "ipv4", Link: "eth0", IPAddress: "10.0.2.15/24", Gateway: "10.0.2.2",
				DNSNameservers: []string{"10.0.2.3", "10.0.2.4"}}}}},
		{cmdline: "ip=10.1.2.3", doc: &Document{
			Links:    []Link{{ID: "any", Type: "phy", AnyNIC: true}},
			Networks: []Network{{ID: "ip0", Type: "ipv4", Link: "any", IPAddress: "10.1.2.3/24"}}}},
		// dracut: <mtu> after autoconf; ifname= names the NIC by MAC.
		{cmdline: "ifname=prov:52:54:00:00:00:01 ip=192.168.1.7::192.168.1.1:255.255.252.0::prov:none:9000", doc: &Document{
			Links:    []Link{{ID: "prov", Type: "phy", Name: "prov", MAC: "52:54:00:00:00:01", MTU: 9000}},
			Networks: []Network{{ID: "ip0", Type: "ipv4", Link: "prov", IPAddress: "192.168.1.7/22", Gateway: "192.168.1.1"}}}},
		// IPv6 in brackets, prefix length as netmask, v6 gateway and DNS.
		{cmdline: "ip=[2001:db8::5]::[2001:db8::1]:64:h6:eth1:none:[2001:db8::53] nameserver=[2001:db8::54] nameserver=10.0.0.53",
			hostname: "h6", doc: &Document{
				Links: []Link{{ID: "eth1", Type: "phy", Device: "eth1"}},
				Networks: []Network{{ID: "ip0", Type: "ipv6", Link: "eth1", IPAddress: "2001:db8::5/64", Gateway: "2001:db8::1",
					DNSNameservers: []string{"2001:db8::53"}}},
				Services: []Service{{"dns", "2001:db8::54"}, {"dns", "10.0.0.53"}}}},
		{cmdline: "ip=[fd00::15/120]:::::eth0:off", doc: &Document{
			Links:    []Link{{ID: "eth0", Type: "phy", Device: "eth0"}},
			Networks: []Network{{ID: "ip0", Type: "ipv6", Link: "eth0", IPAddress: "fd00::15/120"}}}},
		// <interface>:<autoconf> forms, IPv6 autoconf.
		{cmdline: "ip=eth0:dhcp6 ip=eth1:auto6:1500 ip=eth2:dhcp", doc: &Document{
			Links: []Link{{ID: "eth0", Type: "phy", Device: "eth0"}, {ID: "eth1", Type: "phy", Device: "eth1", MTU: 1500},
				{ID: "eth2", Type: "phy", Device: "eth2"}},
			Networks: []Network{{ID: "ip0", Type: "ipv6_dhcp", Link: "eth0"}, {ID: "ip1", Type: "ipv6_slaac", Link: "eth1"},
				{ID: "ip2", Type: "ipv4_dhcp", Link: "eth2"}}}},
		{cmdline: "ip=auto6", doc: &Document{
			Links:    []Link{{ID: "any", Type: "phy", AnyNIC: true}},
			Networks: []Network{{ID: "ip0", Type: "ipv6_slaac", Link: "any"}}}},
		// A bond with options and a VLAN on it, the address on the VLAN.
		{cmdline: "ifname=n1:52:54:00:00:00:01 ifname=n2:52:54:00:00:00:02 bond=bond0:n1,n2:mode=802.3ad,miimon=100,xmit_hash_policy=layer3+4,lacp_rate=fast:9000 " +
			"vlan=bond0.100:bond0 ip=10.9.0.5::10.9.0.1:24::bond0.100:none",
			doc: &Document{
				Links: []Link{{ID: "n1", Type: "phy", Name: "n1", MAC: "52:54:00:00:00:01"}, {ID: "n2", Type: "phy", Name: "n2", MAC: "52:54:00:00:00:02"},
					{ID: "bond0", Type: "bond", Name: "bond0", MTU: 9000, BondLinks: []string{"n1", "n2"}, BondMode: "802.3ad", BondMiimon: 100,
						BondXmitHashPolicy: "layer3+4", BondLACPRate: "fast"},
					{ID: "bond0.100", Type: "vlan", Name: "bond0.100", VLANLink: "bond0", VLANID: 100}},
				Networks: []Network{{ID: "ip0", Type: "ipv4", Link: "bond0.100", IPAddress: "10.9.0.5/24", Gateway: "10.9.0.1"}}}},
		// An active-backup bond with dracut's default members; a VLAN with no address still comes up.
		{cmdline: "bond=bond0::mode=active-backup,primary=eth1 ip=bond0:dhcp vlan=vlan0007:eth2", doc: &Document{
			Links: []Link{{ID: "eth0", Type: "phy", Device: "eth0"}, {ID: "eth1", Type: "phy", Device: "eth1"},
				{ID: "bond0", Type: "bond", Name: "bond0", BondLinks: []string{"eth0", "eth1"}, BondMode: "active-backup", BondPrimary: "eth1"},
				{ID: "eth2", Type: "phy", Device: "eth2"}, {ID: "vlan0007", Type: "vlan", Name: "vlan0007", VLANLink: "eth2", VLANID: 7}},
			Networks: []Network{{ID: "ip0", Type: "ipv4_dhcp", Link: "bond0"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.cmdline, func(t *testing.T) {
			c, err := FromCmdline(params(tt.cmdline))
			if err != nil {
				t.Fatal(err)
			}
			if c.Off != tt.off || c.Hostname != tt.hostname {
				t.Errorf("off, hostname = %v, %q; want %v, %q", c.Off, c.Hostname, tt.off, tt.hostname)
			}
			if diff := cmp.Diff(tt.doc, c.Doc, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromCmdlineErrors(t *testing.T) {
	tests := []struct{ cmdline, want string }{
		{"ip=rarp", "rarp is not supported"},
		{"ip=::10.0.0.1:255.255.255.0", "client-ip: required"},
		{"ip=10.0.2.15:::not-a-netmask", `netmask "not-a-netmask" is not an IPv4 netmask`},
		{"ip=10.0.2.15:::255.0.255.0", "not contiguous"},
		{"ip=10.0.2.15/24:::255.255.255.0", "also set"},
		{"ip=fe80::1", "client-ip"},
		{"ip=2001:db8::5:::64:::none", "client-ip"},
		{"ip=10.0.0.5:::24:::none:[2001:db8::1", "'[' without ']'"},
		{"ip=[10.0.0.5]:::24:::none", "IPv6 addresses go in brackets, IPv4 addresses not"},
		{"ip=[2001:db8::5]::10.0.0.1:64:::none", `gw-ip "10.0.0.1": not an IPv6 address`},
		{"ip=10.0.2.15::gw:::::bad-dns", `gw-ip "gw"`},
		{"ip=a:b:c:d:e:f:g:h:i:j:k", "11 fields"},
		{"ip=eth0:dhcp::52:54:00:00:00:01", "not supported"},
		{"ip=eth0:bogus", `autoconf "bogus"`},
		{"imprint.ip=bogus:", `imprint.ip="bogus:"`},
		{"ip=off ip=eth0:dhcp", "ip=off together with"},
		{"ip=dhcp bond=bond0:eth0,eth1", "name the interface"},
		{"nameserver=dns", `nameserver="dns": not an IP address`},
		{"ifname=eth0", "want <interface>:<MAC>"},
		{"vlan=vlan4095:eth0", "VLAN id 4095 out of range 1-4094"},
		{"vlan=vlan0:eth0", "VLAN id 0 out of range"},
		{"vlan=prov:eth0", "cannot tell the VLAN id"},
		{"vlan=eth0.5", "want <vlanname>:<phys_device>"},
		{"vlan=v.5:v.4 vlan=v.4:eth0", `"v.4" is a VLAN`},
		{"bond=bond0:eth0:mode=active-backup,speed=10", `option "speed=10"`},
		{"bond=bond0:eth0:mode=fastest", `bond_mode: "fastest"`},
		{"bond=bond0:eth0:miimon=x", "not a number of milliseconds"},
		{"bond=b1:eth0:mode=1 bond=b2:b1:mode=1", `member "b1" is not a NIC`},
		{"bond=b1:eth0 bond=b1:eth1", "defined twice"},
		{"ip=10.0.0.5:::24::eth0:none:9000:52:54", "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.cmdline, func(t *testing.T) {
			_, err := FromCmdline(params(tt.cmdline))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FromCmdline(%q) error = %v, want %q", tt.cmdline, err, tt.want)
			}
		})
	}
}

func TestFromCmdlineCollectsEveryProblem(t *testing.T) {
	_, err := FromCmdline(params("ip=10.0.2.15::gw:bad-mask::::dns? vlan=x:eth0"))
	for _, s := range []string{"netmask", "gw-ip", "dns0-ip", "vlan="} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v lacks %q", err, s)
		}
	}
}

func TestFromCmdlineDNSWithoutDocument(t *testing.T) {
	c, err := FromCmdline(params("ip=dhcp nameserver=10.0.0.1 nameserver=[2001:db8::53]"))
	if err != nil || c.Doc != nil || len(c.DNS) != 2 || c.DNS[1].String() != "2001:db8::53" {
		t.Errorf("FromCmdline = %+v, %v; want no document and both servers", c, err)
	}
}
