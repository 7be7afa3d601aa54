package netdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Document is OpenStack's network_data.json (config-2
// openstack/latest/network_data.json), as cloud-init's ConfigDrive datasource
// reads it.
type Document struct {
	Links    []Link    `json:"links"`
	Networks []Network `json:"networks"`
	Services []Service `json:"services"`
}

// Link is one interface: a NIC (type phy, or another physical type such as
// ethernet, vif, ovs), a bond of NICs or a VLAN on a NIC or bond.
type Link struct {
	ID string `json:"id"`
	// Name is the interface name the installed OS gives the link (cloud-init
	// renames a NIC to it); for a bond or VLAN the ramdisk uses it too.
	Name string `json:"name,omitempty"`
	Type string `json:"type"`
	MAC  string `json:"ethernet_mac_address,omitempty"`
	MTU  int    `json:"mtu,omitempty"`

	BondLinks          []string `json:"bond_links,omitempty"`
	BondMode           string   `json:"bond_mode,omitempty"`
	BondMiimon         int      `json:"bond_miimon,omitempty"`
	BondXmitHashPolicy string   `json:"bond_xmit_hash_policy,omitempty"`
	BondLACPRate       string   `json:"bond_lacp_rate,omitempty"`
	BondUpdelay        int      `json:"bond_updelay,omitempty"`
	BondDowndelay      int      `json:"bond_downdelay,omitempty"`
	BondPrimary        string   `json:"bond_primary,omitempty"` // the id of a member link

	VLANLink string `json:"vlan_link,omitempty"`
	VLANID   int    `json:"vlan_id,omitempty"`
	VLANMAC  string `json:"vlan_mac_address,omitempty"`

	// Device names a NIC by its kernel name instead of its MAC; only the
	// kernel command line makes such links (ip=...:eth0:..., with no
	// ifname=). Plan resolves it to the NIC's MAC.
	Device string `json:"-"`
	// AnyNIC is the kernel's ip= without a device: the first NIC (by name)
	// with a link. Plan resolves it to that NIC's MAC.
	AnyNIC bool `json:"-"`
}

// Network is an address configuration on a link.
type Network struct {
	ID             string   `json:"id"`
	Type           string   `json:"type"`
	Link           string   `json:"link"`
	IPAddress      string   `json:"ip_address,omitempty"`
	Netmask        string   `json:"netmask,omitempty"`
	Gateway        string   `json:"gateway,omitempty"`
	Routes         []Route  `json:"routes"`
	DNSNameservers []string `json:"dns_nameservers,omitempty"`
	DNSSearch      []string `json:"dns_search,omitempty"`
	NetworkID      string   `json:"network_id,omitempty"`
}

// Route is a static route of a network. Netmask is dotted (IPv4), an IPv6
// mask or a prefix length.
type Route struct {
	Network string `json:"network"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
}

// Service is a network service; imprint uses type "dns".
type Service struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// Link types.
const (
	LinkPhy  = "phy"
	LinkBond = "bond"
	LinkVLAN = "vlan"
)

// physTypes are the link types cloud-init treats as a physical NIC.
var physTypes = map[string]bool{"phy": true, "ethernet": true, "bridge": true, "hw_veb": true, "hyperv": true,
	"ovs": true, "tap": true, "vhostuser": true, "vif": true}

// Network types.
const (
	NetIPv4             = "ipv4"
	NetIPv6             = "ipv6"
	NetIPv4DHCP         = "ipv4_dhcp"
	NetIPv6DHCP         = "ipv6_dhcp"
	NetIPv6SLAAC        = "ipv6_slaac"
	NetIPv6DHCPStateful = "ipv6_dhcpv6-stateful"
	NetIPv6DHCPStateles = "ipv6_dhcpv6-stateless"
)

var netTypes = map[string]bool{NetIPv4: true, NetIPv6: true, NetIPv4DHCP: true, NetIPv6DHCP: true,
	NetIPv6SLAAC: true, NetIPv6DHCPStateful: true, NetIPv6DHCPStateles: true}

// Bond modes (the kernel's names; numbers 0-6 are accepted too).
var bondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

var xmitHashPolicies = map[string]bool{"layer2": true, "layer3+4": true, "layer2+3": true, "encap2+3": true, "encap3+4": true, "vlan+srcmac": true}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// MaxSize is the largest document Parse accepts.
const MaxSize = 1 << 20

// Parse decodes and validates a network_data.json document. Every problem
// is reported with its field path.
func Parse(b []byte) (*Document, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("network_data.json: %d bytes, more than the %d allowed", len(b), MaxSize)
	}
	var d Document
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("network_data.json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("network_data.json: trailing data after the document")
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Marshal renders d as indented JSON with a trailing newline.
func (d *Document) Marshal() ([]byte, error) {
	c := *d
	if c.Links == nil {
		c.Links = []Link{}
	}
	if c.Networks == nil {
		c.Networks = []Network{}
	}
	for i := range c.Networks {
		if c.Networks[i].Routes == nil {
			c.Networks = append([]Network(nil), c.Networks...)
			for j := range c.Networks {
				if c.Networks[j].Routes == nil {
					c.Networks[j].Routes = []Route{}
				}
			}
			break
		}
	}
	if c.Services == nil {
		c.Services = []Service{}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Validate checks d and reports every problem with its field path.
func (d *Document) Validate() error {
	_, err := check(d)
	return err
}

// model is a validated document with parsed values.
type model struct {
	doc      *Document
	links    []*mlink
	byID     map[string]*mlink
	networks []mnet
	dns      []netip.Addr
	search   []string
}

type mlink struct {
	idx     int
	l       *Link
	kind    string // phy, bond, vlan
	mac     net.HardwareAddr
	name    string // kernel name for bonds and vlans
	members []*mlink
	master  *mlink
	parent  *mlink
	mode    string
	primary *mlink
	v6      []string // ipv6 network types on it
	v4dhcp  bool
}

type mnet struct {
	idx    int
	n      *Network
	link   *mlink
	addr   netip.Prefix // static
	gw     netip.Addr
	routes []mroute
}

type mroute struct {
	dst netip.Prefix
	gw  netip.Addr
}

func check(d *Document) (*model, error) {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	m := &model{doc: d, byID: map[string]*mlink{}}
	names := map[string]string{} // kernel name -> field
	for i := range d.Links {
		l := &d.Links[i]
		f := fmt.Sprintf("links[%d]", i)
		ml := &mlink{idx: i, l: l}
		switch {
		case l.ID == "":
			bad(f+".id", "required")
		case m.byID[l.ID] != nil:
			bad(f+".id", "%q already used by links[%d]", l.ID, m.byID[l.ID].idx)
		default:
			m.byID[l.ID] = ml
		}
		f = fmt.Sprintf("links[%d] (%s)", i, l.ID)
		switch {
		case physTypes[l.Type]:
			ml.kind = LinkPhy
		case l.Type == LinkBond || l.Type == LinkVLAN:
			ml.kind = l.Type
		default:
			bad(f+".type", "%q: want phy, bond or vlan", l.Type)
		}
		if l.MAC != "" {
			mac, err := net.ParseMAC(l.MAC)
			if err != nil || len(mac) != 6 {
				bad(f+".ethernet_mac_address", "%q is not an Ethernet MAC address", l.MAC)
			} else {
				ml.mac = mac
			}
		}
		if l.Name != "" && !ifnameRE.MatchString(l.Name) || l.Name == "." || l.Name == ".." {
			bad(f+".name", "%q is not an interface name (1-15 of A-Z a-z 0-9 _ . -)", l.Name)
		}
		if l.MTU != 0 && (l.MTU < 68 || l.MTU > 65535) {
			bad(f+".mtu", "%d out of range 68-65535", l.MTU)
		}
		switch ml.kind {
		case LinkPhy:
			if ml.mac == nil && l.Device == "" && !l.AnyNIC && l.MAC == "" {
				bad(f+".ethernet_mac_address", "required: NICs are named by MAC (kernel names differ between the ramdisk and the OS)")
			}
			if l.Device != "" {
				if !ifnameRE.MatchString(l.Device) {
					bad(f, "device %q is not an interface name", l.Device)
				}
			}
		case LinkBond, LinkVLAN:
			ml.name = l.Name
			if ml.name == "" && ifnameRE.MatchString(l.ID) {
				ml.name = l.ID
			}
			if ml.name == "" {
				bad(f+".name", "required: id %q is not usable as an interface name", l.ID)
			} else if prev, dup := names[ml.name]; dup {
				bad(f, "interface name %q already used by %s", ml.name, prev)
			} else {
				names[ml.name] = f
			}
		}
		if ml.kind == LinkVLAN && l.VLANMAC != "" {
			if mac, err := net.ParseMAC(l.VLANMAC); err != nil || len(mac) != 6 {
				bad(f+".vlan_mac_address", "%q is not an Ethernet MAC address", l.VLANMAC)
			}
		}
		m.links = append(m.links, ml)
	}
	// MACs are unique among NICs.
	seenMAC := map[string]int{}
	for _, ml := range m.links {
		if ml.kind != LinkPhy || ml.mac == nil {
			continue
		}
		if j, dup := seenMAC[ml.mac.String()]; dup {
			bad(fmt.Sprintf("links[%d] (%s).ethernet_mac_address", ml.idx, ml.l.ID), "%s already used by links[%d]", ml.mac, j)
		}
		seenMAC[ml.mac.String()] = ml.idx
	}
	// Bonds and VLANs refer to other links.
	for _, ml := range m.links {
		l := ml.l
		f := fmt.Sprintf("links[%d] (%s)", ml.idx, l.ID)
		switch ml.kind {
		case LinkBond:
			if len(l.BondLinks) == 0 {
				bad(f+".bond_links", "a bond needs at least one member link")
			}
			for j, id := range l.BondLinks {
				ff := fmt.Sprintf("%s.bond_links[%d]", f, j)
				mem := m.byID[id]
				switch {
				case mem == nil:
					bad(ff, "no link with id %q", id)
				case mem.kind != LinkPhy:
					bad(ff, "%q is a %s; bond members must be NICs", id, mem.kind)
				case mem.master != nil && mem.master != ml:
					bad(ff, "%q is already a member of bond %q", id, mem.master.l.ID)
				case mem.master == ml:
					bad(ff, "%q listed twice", id)
				default:
					mem.master = ml
					ml.members = append(ml.members, mem)
				}
			}
			mode, err := bondMode(l.BondMode)
			if err != nil {
				bad(f+".bond_mode", "%v", err)
			}
			ml.mode = mode
			if l.BondMiimon < 0 {
				bad(f+".bond_miimon", "%d is negative", l.BondMiimon)
			}
			if l.BondUpdelay < 0 {
				bad(f+".bond_updelay", "%d is negative", l.BondUpdelay)
			}
			if l.BondDowndelay < 0 {
				bad(f+".bond_downdelay", "%d is negative", l.BondDowndelay)
			}
			if p := l.BondXmitHashPolicy; p != "" {
				if !xmitHashPolicies[p] {
					bad(f+".bond_xmit_hash_policy", "%q: want layer2, layer2+3, layer3+4, encap2+3, encap3+4 or vlan+srcmac", p)
				} else if mode != "balance-xor" && mode != "802.3ad" && mode != "balance-tlb" && mode != "balance-alb" && mode != "" {
					bad(f+".bond_xmit_hash_policy", "only used by balance-xor, 802.3ad, balance-tlb and balance-alb, not %s", mode)
				}
			}
			switch l.BondLACPRate {
			case "", "slow", "fast", "0", "1":
				if l.BondLACPRate != "" && mode != "802.3ad" && mode != "" {
					bad(f+".bond_lacp_rate", "only used by 802.3ad, not %s", mode)
				}
			default:
				bad(f+".bond_lacp_rate", "%q: want slow or fast", l.BondLACPRate)
			}
			if p := l.BondPrimary; p != "" {
				mem := m.byID[p]
				if mem == nil || mem.master != ml {
					bad(f+".bond_primary", "%q is not one of the bond's members", p)
				} else if mode != "active-backup" && mode != "balance-tlb" && mode != "balance-alb" && mode != "" {
					bad(f+".bond_primary", "only used by active-backup, balance-tlb and balance-alb, not %s", mode)
				} else {
					ml.primary = mem
				}
			}
		case LinkVLAN:
			if l.VLANID < 1 || l.VLANID > 4094 {
				bad(f+".vlan_id", "%d out of range 1-4094", l.VLANID)
			}
			p := m.byID[l.VLANLink]
			switch {
			case l.VLANLink == "":
				bad(f+".vlan_link", "required: the NIC or bond the VLAN is on")
			case p == nil:
				bad(f+".vlan_link", "no link with id %q", l.VLANLink)
			case p.kind == LinkVLAN:
				bad(f+".vlan_link", "%q is a VLAN; VLANs go on a NIC or a bond", l.VLANLink)
			case p.master != nil:
				bad(f+".vlan_link", "%q is a member of bond %q; put the VLAN on the bond", l.VLANLink, p.master.l.ID)
			default:
				ml.parent = p
			}
		}
	}
	for _, ml := range m.links {
		if ml.kind == LinkPhy && ml.master != nil && ml.l.MTU != 0 && ml.master.l.MTU != 0 && ml.l.MTU != ml.master.l.MTU {
			bad(fmt.Sprintf("links[%d] (%s).mtu", ml.idx, ml.l.ID), "%d differs from its bond %q's %d", ml.l.MTU, ml.master.l.ID, ml.master.l.MTU)
		}
	}
	// VLAN ids are unique per parent.
	vids := map[string]int{}
	for _, ml := range m.links {
		if ml.kind == LinkVLAN && ml.parent != nil {
			k := ml.parent.l.ID + "/" + strconv.Itoa(ml.l.VLANID)
			if j, dup := vids[k]; dup {
				bad(fmt.Sprintf("links[%d] (%s).vlan_id", ml.idx, ml.l.ID), "VLAN %d on %q already defined by links[%d]", ml.l.VLANID, ml.parent.l.ID, j)
			}
			vids[k] = ml.idx
		}
	}

	netIDs := map[string]int{}
	type defaultRoute struct {
		idx int
		gw  netip.Addr
	}
	defaults := map[bool]defaultRoute{} // by is4
	for i := range d.Networks {
		n := &d.Networks[i]
		f := fmt.Sprintf("networks[%d]", i)
		if n.ID != "" {
			if j, dup := netIDs[n.ID]; dup {
				bad(f+".id", "%q already used by networks[%d]", n.ID, j)
			}
			netIDs[n.ID] = i
			f = fmt.Sprintf("networks[%d] (%s)", i, n.ID)
		}
		mn := mnet{idx: i, n: n}
		ml := m.byID[n.Link]
		switch {
		case n.Link == "":
			bad(f+".link", "required")
		case ml == nil:
			bad(f+".link", "no link with id %q", n.Link)
		case ml.master != nil:
			bad(f+".link", "%q is a member of bond %q; addresses go on the bond", n.Link, ml.master.l.ID)
		default:
			mn.link = ml
		}
		if !netTypes[n.Type] {
			bad(f+".type", "%q: want ipv4, ipv6, ipv4_dhcp, ipv6_dhcp, ipv6_slaac, ipv6_dhcpv6-stateful or ipv6_dhcpv6-stateless", n.Type)
			continue
		}
		is4 := strings.HasPrefix(n.Type, "ipv4")
		if ml != nil {
			if is4 {
				if n.Type == NetIPv4DHCP {
					if ml.v4dhcp {
						bad(f, "DHCPv4 on %q twice", n.Link)
					}
					ml.v4dhcp = true
				}
			} else {
				ml.v6 = append(ml.v6, n.Type)
				if ml.l.MTU != 0 && ml.l.MTU < 1280 {
					bad(fmt.Sprintf("links[%d] (%s).mtu", ml.idx, ml.l.ID), "%d: IPv6 (%s) needs at least 1280", ml.l.MTU, f)
				}
			}
		}
		if n.Type == NetIPv4 || n.Type == NetIPv6 {
			p, err := parseAddr(n.IPAddress, n.Netmask, is4)
			if err != nil {
				bad(f+".ip_address", "%v", err)
			}
			mn.addr = p
		} else if n.IPAddress != "" {
			bad(f+".ip_address", "%q given for %s (the address comes from the network)", n.IPAddress, n.Type)
		}
		addDefault := func(ff string, gw netip.Addr) bool {
			if prev, dup := defaults[is4]; dup {
				if prev.gw != gw {
					bad(ff, "a second %s default route, via %s (networks[%d] has one via %s)", family(is4), gw, prev.idx, prev.gw)
				}
				return false
			}
			defaults[is4] = defaultRoute{i, gw}
			return true
		}
		if n.Gateway != "" {
			gw, err := netip.ParseAddr(n.Gateway)
			if err != nil || gw.Is4() != is4 || gw.Zone() != "" {
				bad(f+".gateway", "%q is not an %s address", n.Gateway, family(is4))
			} else if addDefault(f+".gateway", gw) {
				mn.gw = gw
			}
		}
		for j, r := range n.Routes {
			ff := fmt.Sprintf("%s.routes[%d]", f, j)
			dst, err := parseNet(r.Network, r.Netmask, is4)
			if err != nil {
				bad(ff, "%v", err)
				continue
			}
			gw, err := netip.ParseAddr(r.Gateway)
			if err != nil || gw.Is4() != is4 || gw.Zone() != "" {
				bad(ff+".gateway", "%q is not an %s address", r.Gateway, family(is4))
				continue
			}
			if dst.Bits() == 0 && !addDefault(ff, gw) {
				continue // the same default route twice (gateway and a 0/0 route)
			}
			mn.routes = append(mn.routes, mroute{dst, gw})
		}
		for j, s := range n.DNSNameservers {
			a, err := netip.ParseAddr(s)
			if err != nil {
				bad(fmt.Sprintf("%s.dns_nameservers[%d]", f, j), "%q is not an IP address", s)
				continue
			}
			m.dns = appendAddr(m.dns, a)
		}
		for j, s := range n.DNSSearch {
			if !domainRE.MatchString(s) {
				bad(fmt.Sprintf("%s.dns_search[%d]", f, j), "%q is not a domain name", s)
				continue
			}
			m.search = appendStr(m.search, s)
		}
		m.networks = append(m.networks, mn)
	}
	for i, s := range d.Services {
		if s.Type != "dns" {
			continue
		}
		a, err := netip.ParseAddr(s.Address)
		if err != nil {
			bad(fmt.Sprintf("services[%d].address", i), "%q is not an IP address", s.Address)
			continue
		}
		m.dns = appendAddr(m.dns, a)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("network_data.json: invalid:\n%w", err)
	}
	return m, nil
}

var domainRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)

func family(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

func appendAddr(s []netip.Addr, a netip.Addr) []netip.Addr {
	for _, x := range s {
		if x == a {
			return s
		}
	}
	return append(s, a)
}

func appendStr(s []string, a string) []string {
	for _, x := range s {
		if x == a {
			return s
		}
	}
	return append(s, a)
}

func bondMode(s string) (string, error) {
	if s == "" {
		return "", errors.New("required: one of " + strings.Join(bondModes, ", "))
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(bondModes) {
		return bondModes[n], nil
	}
	for _, m := range bondModes {
		if s == m {
			return m, nil
		}
	}
	return "", fmt.Errorf("%q: want one of %s", s, strings.Join(bondModes, ", "))
}

// parseAddr parses a static address: ip_address with a /prefix, or with a
// netmask (dotted, an IPv6 mask or a prefix length). IPv6 without either is
// /64.
func parseAddr(ip, mask string, is4 bool) (netip.Prefix, error) {
	if ip == "" {
		return netip.Prefix{}, errors.New("required for a static network")
	}
	var a netip.Addr
	bits := -1
	if strings.Contains(ip, "/") {
		p, err := netip.ParsePrefix(ip)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address/prefix", ip)
		}
		if mask != "" {
			return netip.Prefix{}, fmt.Errorf("%q carries a prefix length and netmask %q is also set", ip, mask)
		}
		a, bits = p.Addr(), p.Bits()
	} else {
		var err error
		if a, err = netip.ParseAddr(ip); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address", ip)
		}
	}
	if a.Is4() != is4 || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an %s address", ip, family(is4))
	}
	if bits < 0 {
		b, err := maskBits(mask, is4)
		if err != nil {
			return netip.Prefix{}, err
		}
		bits = b
	}
	if bits < 0 {
		if is4 {
			return netip.Prefix{}, fmt.Errorf("%q has no netmask", ip)
		}
		bits = 64
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return netip.Prefix{}, fmt.Errorf("%q is not a host address", ip)
	}
	return netip.PrefixFrom(a, bits), nil
}

// maskBits reads a netmask: dotted IPv4, an IPv6 mask or a prefix length;
// "" is -1.
func maskBits(mask string, is4 bool) (int, error) {
	if mask == "" {
		return -1, nil
	}
	max := 128
	if is4 {
		max = 32
	}
	if n, err := strconv.Atoi(mask); err == nil {
		if n < 0 || n > max {
			return 0, fmt.Errorf("netmask %q: prefix length out of range 0-%d", mask, max)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || m.Is4() != is4 {
		return 0, fmt.Errorf("netmask %q is not an %s netmask", mask, family(is4))
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return 0, fmt.Errorf("netmask %q is not contiguous", mask)
	}
	return ones, nil
}

func parseNet(network, mask string, is4 bool) (netip.Prefix, error) {
	a, err := netip.ParseAddr(network)
	if err != nil || a.Is4() != is4 {
		if p, perr := netip.ParsePrefix(network); perr == nil && p.Addr().Is4() == is4 && mask == "" {
			return p.Masked(), nil
		}
		return netip.Prefix{}, fmt.Errorf("network %q is not an %s address", network, family(is4))
	}
	bits, err := maskBits(mask, is4)
	if err != nil {
		return netip.Prefix{}, err
	}
	if bits < 0 {
		return netip.Prefix{}, fmt.Errorf("network %q has no netmask", network)
	}
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("network %s/%d has host bits set", network, bits)
	}
	return p, nil
}
