package configdrive

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imprint-dev/imprint/netdata"
)

// quoted is a string YAML always double-quotes: MACs such as 08:00:27:10:20:30
// are base-60 integers to a YAML 1.1 reader (cloud-init's PyYAML).
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Tag: "!!str", Value: string(q)}, nil
}

func quoteAll(s []string) []quoted {
	out := make([]quoted, len(s))
	for i, v := range s {
		out[i] = quoted(v)
	}
	return out
}

// Network config version 1: a physical interface matched by MAC (cloud-init
// renames it to the provisioned name) with a static subnet. Version 1 is
// rendered by every renderer (ifupdown's eni included) and avoids the v2
// "to: default" route that cloud-init 22.4's eni renderer rejects.
type netV1 struct {
	Version int         `yaml:"version"`
	Config  []netV1Link `yaml:"config"`
}

func networkConfigV1(n *node) ([]byte, error) {
	cfg := netV1{Version: 1, Config: []netV1Link{{
		Type:       "physical",
		Name:       n.admin.name,
		MACAddress: quoted(n.admin.mac),
		Subnets: []netV1Sub{{
			Type:           "static",
			Address:        quoted(n.admin.ip),
			Netmask:        quoted(n.admin.netmask),
			Gateway:        quoted(n.gateway),
			DNSNameservers: quoteAll(n.nameServers),
			DNSSearch:      quoteAll(n.searchDomains),
		}},
	}}}
	if len(n.nameServers) > 0 || len(n.searchDomains) > 0 {
		cfg.Config = append(cfg.Config, netV1Link{Type: "nameserver", Address: quoteAll(n.nameServers), Search: quoteAll(n.searchDomains)})
	}
	out, err := marshalYAML(cfg)
	if err != nil {
		return nil, fmt.Errorf("network-config: %w", err)
	}
	return out, nil
}

// networkDataJSON is the admin NIC's static configuration as OpenStack's
// network_data.json (the netdata schema, as cloud-init's ConfigDrive
// datasource converts it). "name" pins the interface name.
func networkDataJSON(n *node) ([]byte, error) {
	nd := netdata.Document{
		Links: []netdata.Link{{ID: n.admin.name, Name: n.admin.name, Type: netdata.LinkPhy, MAC: n.admin.mac}},
		Networks: []netdata.Network{{
			ID: "admin", Type: netdata.NetIPv4, Link: n.admin.name, NetworkID: "admin",
			IPAddress: n.admin.ip, Netmask: n.admin.netmask,
			DNSNameservers: n.nameServers, DNSSearch: n.searchDomains,
			// The gateway goes on the network (cloud-init copies it to the
			// subnet): a 0.0.0.0/0 route would render for ifupdown as
			// "post-up route add default gw", and Debian 12 has no route(8)
			// without net-tools.
			Gateway: n.gateway,
		}},
	}
	for _, s := range n.nameServers {
		nd.Services = append(nd.Services, netdata.Service{Type: "dns", Address: s})
	}
	out, err := nd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("network_data.json: %w", err)
	}
	return out, nil
}

// WithNetwork gives the installed OS the network document d instead of the
// provision document's admin NIC: c's network_data.json (config-2) becomes d
// and its network-config (NoCloud, version 1) is rendered from d. The agent
// uses it with the document the ramdisk applied (NICs resolved to MACs), so
// the OS comes up with the addressing, bonds and VLANs the ramdisk had.
func WithNetwork(c *Content, d *netdata.Document) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("configdrive: %w", err)
	}
	for i, l := range d.Links {
		if l.Type != netdata.LinkBond && l.Type != netdata.LinkVLAN && l.MAC == "" {
			return fmt.Errorf("configdrive: network document: links[%d] (%s): the installed OS needs its MAC", i, l.ID)
		}
	}
	j, err := withVLANMACs(d).Marshal()
	if err != nil {
		return fmt.Errorf("configdrive: network_data.json: %w", err)
	}
	y, err := networkConfigV1Doc(d)
	if err != nil {
		return err
	}
	c.NetworkDataJSON, c.NetworkConfig = j, y
	return nil
}

// withVLANMACs returns d as the installed OS's cloud-init needs it: every
// VLAN's vlan_mac_address set (cloud-init 22.4 requires it) to the MAC Linux
// gives it, its parent's, which for a bond without its own is its first
// member's; and bond_primary as the member's interface name (cloud-init
// passes bond_* keys on verbatim), dropped when the member has no name.
func withVLANMACs(d *netdata.Document) *netdata.Document {
	c := *d
	c.Links = append([]netdata.Link(nil), d.Links...)
	byID := map[string]netdata.Link{}
	for _, l := range c.Links {
		byID[l.ID] = l
	}
	for i, l := range c.Links {
		if l.Type == netdata.LinkBond && l.BondPrimary != "" {
			c.Links[i].BondPrimary = byID[l.BondPrimary].Name
		}
		if l.Type != netdata.LinkVLAN || l.VLANMAC != "" {
			continue
		}
		p := byID[l.VLANLink]
		if p.MAC == "" && p.Type == netdata.LinkBond && len(p.BondLinks) > 0 {
			p = byID[p.BondLinks[0]]
		}
		c.Links[i].VLANMAC = p.MAC
	}
	return &c
}

// netV1Link is one entry of a version 1 config: a physical NIC, bond,
// VLAN or the nameserver entry.
type netV1Link struct {
	Type           string         `yaml:"type"`
	Name           string         `yaml:"name,omitempty"`
	MACAddress     quoted         `yaml:"mac_address,omitempty"`
	MTU            int            `yaml:"mtu,omitempty"`
	BondInterfaces []string       `yaml:"bond_interfaces,omitempty"`
	Params         map[string]any `yaml:"params,omitempty"`
	VLANLink       string         `yaml:"vlan_link,omitempty"`
	VLANID         int            `yaml:"vlan_id,omitempty"`
	Subnets        []netV1Sub     `yaml:"subnets,omitempty"`
	Address        []quoted       `yaml:"address,omitempty"`
	Search         []quoted       `yaml:"search,omitempty"`
}

type netV1Sub struct {
	Type           string       `yaml:"type"`
	Address        quoted       `yaml:"address,omitempty"`
	Netmask        quoted       `yaml:"netmask,omitempty"`
	Gateway        quoted       `yaml:"gateway,omitempty"`
	Routes         []netV1Route `yaml:"routes,omitempty"`
	DNSNameservers []quoted     `yaml:"dns_nameservers,omitempty"`
	DNSSearch      []quoted     `yaml:"dns_search,omitempty"`
}

type netV1Route struct {
	Network quoted `yaml:"network"`
	Netmask quoted `yaml:"netmask"`
	Gateway quoted `yaml:"gateway"`
}

// v1 subnet types of the network_data.json network types.
var v1SubnetTypes = map[string]string{
	netdata.NetIPv4: "static", netdata.NetIPv6: "static6", netdata.NetIPv4DHCP: "dhcp4", netdata.NetIPv6DHCP: "dhcp6",
	netdata.NetIPv6DHCPStateful: "ipv6_dhcpv6-stateful", netdata.NetIPv6DHCPStateles: "ipv6_dhcpv6-stateless",
	netdata.NetIPv6SLAAC: "ipv6_slaac",
}

// networkConfigV1Doc renders d as NoCloud network config version 1: a NIC
// is matched by MAC and named by its link's name (else its id).
func networkConfigV1Doc(d *netdata.Document) ([]byte, error) {
	name := map[string]string{}
	for _, l := range d.Links {
		name[l.ID] = l.Name
		if l.Name == "" {
			name[l.ID] = l.ID
		}
	}
	cfg := netV1{Version: 1}
	for _, l := range d.Links {
		e := netV1Link{Name: name[l.ID], MTU: l.MTU}
		switch l.Type {
		case netdata.LinkBond:
			e.Type = "bond"
			e.MACAddress = quoted(l.MAC)
			for _, m := range l.BondLinks {
				e.BondInterfaces = append(e.BondInterfaces, name[m])
			}
			e.Params = map[string]any{"bond-mode": l.BondMode}
			if l.BondMiimon != 0 {
				e.Params["bond-miimon"] = l.BondMiimon
			} else {
				e.Params["bond-miimon"] = netdata.DefaultMiimon
			}
			for k, v := range map[string]string{"bond-xmit-hash-policy": l.BondXmitHashPolicy, "bond-lacp-rate": l.BondLACPRate, "bond-primary": name[l.BondPrimary]} {
				if v != "" {
					e.Params[k] = v
				}
			}
			if l.BondUpdelay != 0 {
				e.Params["bond-updelay"] = l.BondUpdelay
			}
			if l.BondDowndelay != 0 {
				e.Params["bond-downdelay"] = l.BondDowndelay
			}
		case netdata.LinkVLAN:
			e.Type, e.VLANLink, e.VLANID = "vlan", name[l.VLANLink], l.VLANID
			e.MACAddress = quoted(l.VLANMAC)
		default:
			e.Type, e.MACAddress = "physical", quoted(strings.ToLower(l.MAC))
		}
		for _, n := range d.Networks {
			if n.Link != l.ID {
				continue
			}
			sub := netV1Sub{Type: v1SubnetTypes[n.Type], Gateway: quoted(n.Gateway),
				DNSNameservers: quoteAll(n.DNSNameservers), DNSSearch: quoteAll(n.DNSSearch)}
			if n.IPAddress != "" {
				a := n.IPAddress
				if n.Netmask != "" && !strings.Contains(a, "/") {
					bits := 0
					if m := net.ParseIP(n.Netmask); m != nil {
						if m4 := m.To4(); m4 != nil && n.Type == netdata.NetIPv4 {
							bits, _ = net.IPMask(m4).Size()
						} else {
							bits, _ = net.IPMask(m.To16()).Size()
						}
					} else {
						bits, _ = strconv.Atoi(n.Netmask)
					}
					a += "/" + strconv.Itoa(bits)
				} else if !strings.Contains(a, "/") && n.Type == netdata.NetIPv6 {
					a += "/64"
				}
				sub.Address = quoted(a)
			}
			for _, r := range n.Routes {
				sub.Routes = append(sub.Routes, netV1Route{quoted(r.Network), quoted(r.Netmask), quoted(r.Gateway)})
			}
			e.Subnets = append(e.Subnets, sub)
		}
		if len(e.Subnets) == 0 && l.Type != netdata.LinkBond && l.Type != netdata.LinkVLAN {
			member := false
			for _, b := range d.Links {
				for _, m := range b.BondLinks {
					member = member || m == l.ID
				}
			}
			if !member {
				e.Subnets = []netV1Sub{{Type: "manual"}}
			}
		}
		cfg.Config = append(cfg.Config, e)
	}
	var ns, search []string
	for _, s := range d.Services {
		if s.Type == "dns" {
			ns = append(ns, s.Address)
		}
	}
	if len(ns) > 0 || len(search) > 0 {
		cfg.Config = append(cfg.Config, netV1Link{Type: "nameserver", Address: quoteAll(ns), Search: quoteAll(search)})
	}
	out, err := marshalYAML(cfg)
	if err != nil {
		return nil, fmt.Errorf("network-config: %w", err)
	}
	return out, nil
}
