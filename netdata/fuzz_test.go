package netdata

import (
	"strings"
	"testing"
)

// FuzzParsePlan: no document makes Parse or Plan panic, and a document
// that plans marshals to one that parses again.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(`{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:00:00:01"},{"id":"b","type":"bond","bond_links":["a"],"bond_mode":"4"},
		{"id":"v","type":"vlan","vlan_link":"b","vlan_id":7}],"networks":[{"type":"ipv6","link":"v","ip_address":"2001:db8::1","routes":[{"network":"::","netmask":"0","gateway":"2001:db8::fe"}]}]}`))
	f.Add([]byte(`{"links":[],"networks":[{"type":"ipv4_dhcp","link":"x"}],"services":[{"type":"dns","address":"1.1.1.1"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		res, err := Plan(d, testNICs)
		if err != nil {
			return
		}
		out, err := res.Resolved.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("the resolved document does not parse: %v\n%s", err, out)
		}
	})
}

// FuzzFromCmdline: no command line makes FromCmdline panic, and a document
// it returns is valid.
func FuzzFromCmdline(f *testing.F) {
	for _, s := range []string{"ip=[2001:db8::5]::[2001:db8::1]:64:h:eth0:none:[2001:db8::53]", "bond=bond0:eth0,eth1:mode=802.3ad,miimon=100:9000 vlan=bond0.5:bond0 ip=bond0.5:dhcp",
		"ip=10.0.0.5::10.0.0.1:255.255.255.0::eth0:off:10.0.0.53 ifname=eth0:52:54:00:00:00:01 nameserver=1.1.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := FromCmdline(params(strings.ReplaceAll(s, "\x00", "")))
		if err != nil || c.Doc == nil {
			return
		}
		if err := c.Doc.Validate(); err != nil {
			t.Fatalf("FromCmdline(%q) returned an invalid document: %v", s, err)
		}
	})
}
