package netdata

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Param is one kernel command-line parameter (key=value).
type Param struct{ Key, Value string }

// Cmdline is the network configuration a kernel command line asks for.
type Cmdline struct {
	// Off: ip=off or ip=none, leave the network alone.
	Off bool
	// Doc is the per-interface configuration; nil when the command line has
	// none (DHCPv4 on every NIC, the default).
	Doc      *Document
	Hostname string
	// DNS are nameserver= servers; with a document they are its dns
	// services, without one they replace the DHCP servers' DNS.
	DNS []netip.Addr
	// Keys are the parameters the configuration came from, for logs.
	Keys []string
}

// FromCmdline builds the network document of a kernel command line from the
// dracut forms (dracut.cmdline(7)):
//
//	ip={dhcp|on|any|dhcp6|auto6|off|none}
//	ip=<interface>:{dhcp|on|any|dhcp6|auto6|off|none}[:[<mtu>]]
//	ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<interface>:{none|off|dhcp|on|any|dhcp6|auto6}[:[<mtu>]]
//	ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:<hostname>:<interface>:{none|off|...}[:[<dns1>][:<dns2>]]
//	bond=<bondname>[:<bondslaves>[:<options>[:<mtu>]]]   options: mode=,miimon=,xmit_hash_policy=,lacp_rate=,updelay=,downdelay=,primary=
//	vlan=<vlanname>:<phys_device>                          vlanname: vlanN, vlan000N, DEV.N or DEV.000N
//	ifname=<interface>:<MAC>                               names a NIC by MAC
//	nameserver=<IP>
//
// IPv6 addresses go in brackets (ip=[2001:db8::5]::[2001:db8::1]:64::eth0:none);
// the netmask of an IPv6 address is a prefix length (default 64). The
// kernel's own ip= (…:<autoconf>:<dns0>:<dns1>:<ntp0>) is the same form. An
// address without <interface> goes on the first NIC with a link; an IPv4
// address without a netmask is /24. imprint.ip= takes the place of ip= when
// present (a boot loader may own ip=). A bare ip=dhcp (or none at all) with
// no bond= or vlan= yields a nil Doc: DHCPv4 on every NIC.
func FromCmdline(params []Param) (Cmdline, error) {
	var c Cmdline
	ipKey := "ip"
	for _, p := range params {
		if p.Key == "imprint.ip" {
			ipKey = "imprint.ip"
		}
	}
	b := &builder{ifnames: map[string]net.HardwareAddr{}, bonds: map[string]*Link{}, vlans: map[string]*Link{}, ids: map[string]int{}}
	var errs []error
	var ips, bonds, vlans []string
	keys := map[string]bool{}
	for _, p := range params {
		switch p.Key {
		case ipKey:
			ips = append(ips, p.Value)
		case "bond":
			bonds = append(bonds, p.Value)
		case "vlan":
			vlans = append(vlans, p.Value)
		case "ifname":
			name, mac, ok := strings.Cut(p.Value, ":")
			hw, err := net.ParseMAC(mac)
			if !ok || !ifnameRE.MatchString(name) || err != nil || len(hw) != 6 {
				errs = append(errs, fmt.Errorf("ifname=%q: want <interface>:<MAC>", p.Value))
				continue
			}
			b.ifnames[name] = hw
		case "nameserver":
			a, err := netip.ParseAddr(strings.Trim(p.Value, "[]"))
			if err != nil {
				errs = append(errs, fmt.Errorf("nameserver=%q: not an IP address", p.Value))
				continue
			}
			b.dns = appendAddr(b.dns, a)
		default:
			continue
		}
		if !keys[p.Key] {
			keys[p.Key] = true
			c.Keys = append(c.Keys, p.Key)
		}
	}
	for _, v := range bonds {
		if err := b.bond(v); err != nil {
			errs = append(errs, fmt.Errorf("bond=%q: %w", v, err))
		}
	}
	for _, v := range vlans {
		if err := b.vlan(v); err != nil {
			errs = append(errs, fmt.Errorf("vlan=%q: %w", v, err))
		}
	}
	dhcpAll := false
	for i, v := range ips {
		host, off, all, err := b.ip(v, i)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernel command line %s=%q: %w", ipKey, v, err))
			continue
		}
		c.Off = c.Off || off
		dhcpAll = dhcpAll || all
		if host != "" {
			c.Hostname = host
		}
	}
	// Bonds and VLANs nobody gave an address still come up (dracut does so).
	for _, name := range b.order {
		if _, err := b.ref(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Cmdline{}, err
	}
	hasDoc := len(b.doc.Links) > 0 || len(b.doc.Networks) > 0
	switch {
	case c.Off && (hasDoc || dhcpAll):
		return Cmdline{}, fmt.Errorf("kernel command line: %s=off together with other network configuration", ipKey)
	case dhcpAll && hasDoc:
		return Cmdline{}, fmt.Errorf("kernel command line: %s=dhcp (every NIC) together with bond=, vlan= or a per-interface %s=: name the interface (%s=<interface>:dhcp)", ipKey, ipKey, ipKey)
	case c.Off:
		return c, nil
	}
	if len(b.dns) > 0 {
		for _, a := range b.dns {
			b.doc.Services = append(b.doc.Services, Service{Type: "dns", Address: a.String()})
		}
	}
	c.DNS = b.dns
	if !hasDoc {
		return c, nil
	}
	if err := b.doc.Validate(); err != nil {
		return Cmdline{}, fmt.Errorf("kernel command line: %w", err)
	}
	c.Doc = &b.doc
	return c, nil
}

type builder struct {
	doc     Document
	ifnames map[string]net.HardwareAddr
	bonds   map[string]*Link
	vlans   map[string]*Link
	order   []string       // bond and vlan names in command-line order
	ids     map[string]int // link id -> index in doc.Links
	dns     []netip.Addr
	nets    int
}

var bondOptions = map[string]bool{"mode": true, "miimon": true, "xmit_hash_policy": true, "lacp_rate": true,
	"updelay": true, "downdelay": true, "primary": true}

func (b *builder) bond(v string) error {
	f := strings.Split(v, ":")
	if len(f) > 4 {
		return fmt.Errorf("%d fields, want at most 4 (<bondname>:<bondslaves>:<options>:<mtu>)", len(f))
	}
	for len(f) < 4 {
		f = append(f, "")
	}
	name := f[0]
	if !ifnameRE.MatchString(name) {
		return fmt.Errorf("bond name %q is not an interface name", name)
	}
	if b.bonds[name] != nil || b.vlans[name] != nil {
		return fmt.Errorf("%q defined twice", name)
	}
	l := &Link{ID: name, Type: LinkBond, Name: name, BondMode: "balance-rr"}
	slaves := f[1]
	if slaves == "" {
		slaves = "eth0,eth1" // dracut's default
	}
	for _, s := range strings.Split(slaves, ",") {
		if !ifnameRE.MatchString(s) {
			return fmt.Errorf("member %q is not an interface name", s)
		}
		l.BondLinks = append(l.BondLinks, s)
	}
	if f[2] != "" {
		for _, o := range strings.Split(f[2], ",") {
			k, val, ok := strings.Cut(o, "=")
			if !ok || !bondOptions[k] {
				return fmt.Errorf("option %q: want mode=, miimon=, xmit_hash_policy=, lacp_rate=, updelay=, downdelay= or primary=", o)
			}
			switch k {
			case "mode":
				l.BondMode = val
			case "xmit_hash_policy":
				l.BondXmitHashPolicy = val
			case "lacp_rate":
				l.BondLACPRate = val
			case "primary":
				l.BondPrimary = val
			default:
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					return fmt.Errorf("option %s=%q: not a number of milliseconds", k, val)
				}
				switch k {
				case "miimon":
					l.BondMiimon = n
				case "updelay":
					l.BondUpdelay = n
				case "downdelay":
					l.BondDowndelay = n
				}
			}
		}
	}
	if f[3] != "" {
		n, err := strconv.Atoi(f[3])
		if err != nil {
			return fmt.Errorf("mtu %q is not a number", f[3])
		}
		l.MTU = n
	}
	b.bonds[name] = l
	b.order = append(b.order, name)
	return nil
}

func (b *builder) vlan(v string) error {
	name, parent, ok := strings.Cut(v, ":")
	if !ok || parent == "" {
		return errors.New("want <vlanname>:<phys_device>")
	}
	if !ifnameRE.MatchString(name) || !ifnameRE.MatchString(parent) {
		return fmt.Errorf("%q or %q is not an interface name", name, parent)
	}
	if b.bonds[name] != nil || b.vlans[name] != nil {
		return fmt.Errorf("%q defined twice", name)
	}
	var num string
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		num = name[i+1:]
	} else if s, ok := strings.CutPrefix(name, "vlan"); ok {
		num = s
	}
	id, err := strconv.Atoi(num)
	if num == "" || err != nil {
		return fmt.Errorf("cannot tell the VLAN id from the name %q (want vlanN, vlan000N, DEV.N or DEV.000N)", name)
	}
	if id < 1 || id > 4094 {
		return fmt.Errorf("VLAN id %d out of range 1-4094", id)
	}
	b.vlans[name] = &Link{ID: name, Type: LinkVLAN, Name: name, VLANLink: parent, VLANID: id}
	b.order = append(b.order, name)
	return nil
}

// ref returns the id of the link for interface name, adding it (and what it
// sits on) to the document the first time.
func (b *builder) ref(name string) (string, error) {
	if _, ok := b.ids[name]; ok {
		return name, nil
	}
	switch {
	case b.bonds[name] != nil:
		l := *b.bonds[name]
		for _, s := range l.BondLinks {
			if b.bonds[s] != nil || b.vlans[s] != nil {
				return "", fmt.Errorf("bond %q: member %q is not a NIC", name, s)
			}
			if _, err := b.ref(s); err != nil {
				return "", err
			}
		}
		b.add(l)
	case b.vlans[name] != nil:
		l := *b.vlans[name]
		if b.vlans[l.VLANLink] != nil {
			return "", fmt.Errorf("vlan %q: %q is a VLAN; VLANs go on a NIC or a bond", name, l.VLANLink)
		}
		if _, err := b.ref(l.VLANLink); err != nil {
			return "", err
		}
		b.add(l)
	default:
		l := Link{ID: name, Type: LinkPhy}
		if mac, ok := b.ifnames[name]; ok {
			l.MAC, l.Name = mac.String(), name
		} else {
			l.Device = name
		}
		b.add(l)
	}
	return name, nil
}

func (b *builder) add(l Link) {
	b.ids[l.ID] = len(b.doc.Links)
	b.doc.Links = append(b.doc.Links, l)
}

func (b *builder) link(id string) *Link { return &b.doc.Links[b.ids[id]] }

// anyNIC is the link of an ip= without an interface: the first NIC with a
// link.
func (b *builder) anyNIC() string {
	const id = "any"
	if _, ok := b.ids[id]; !ok {
		b.add(Link{ID: id, Type: LinkPhy, AnyNIC: true})
	}
	return id
}

func (b *builder) network(n Network) {
	n.ID = "ip" + strconv.Itoa(b.nets)
	b.nets++
	b.doc.Networks = append(b.doc.Networks, n)
}

// autoconfs maps an ip= autoconf value to network types; "" is static.
var autoconfs = map[string][]string{
	"": nil, "none": nil, "off": nil,
	"dhcp": {NetIPv4DHCP}, "on": {NetIPv4DHCP}, "any": {NetIPv4DHCP}, "bootp": {NetIPv4DHCP}, "both": {NetIPv4DHCP},
	"dhcp6": {NetIPv6DHCP}, "auto6": {NetIPv6SLAAC},
}

func autoconf(s string) ([]string, error) {
	t, ok := autoconfs[s]
	if !ok {
		switch s {
		case "rarp", "ibft", "either6", "link6", "single-dhcp":
			return nil, fmt.Errorf("autoconf %s is not supported (use dhcp, dhcp6, auto6 or a static address)", s)
		}
		return nil, fmt.Errorf("autoconf %q: want off, none, dhcp, on, any, dhcp6 or auto6", s)
	}
	return t, nil
}

// splitIP splits an ip= value on colons outside brackets.
func splitIP(v string) ([]string, error) {
	var out []string
	depth, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '[':
			if depth {
				return nil, errors.New("nested '['")
			}
			depth = true
		case ']':
			if !depth {
				return nil, errors.New("']' without '['")
			}
			depth = false
		case ':':
			if !depth {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	if depth {
		return nil, errors.New("'[' without ']'")
	}
	return append(out, v[start:]), nil
}

// ip adds one ip= value; it returns the hostname, whether it was ip=off and
// whether it was a bare ip=dhcp (every NIC).
func (b *builder) ip(v string, i int) (host string, off, all bool, err error) {
	switch v {
	case "", "dhcp", "on", "any", "bootp", "both":
		return "", false, true, nil
	case "off", "none":
		return "", true, false, nil
	case "dhcp6", "auto6":
		t, _ := autoconf(v)
		b.network(Network{Type: t[0], Link: b.anyNIC()})
		return "", false, false, nil
	}
	f, err := splitIP(v)
	if err != nil {
		return "", false, false, err
	}
	if len(f) == 1 {
		if _, known := autoconfs[v]; !known && !strings.ContainsAny(v, "0123456789") {
			_, aerr := autoconf(v) // rarp, ibft, ...: say so rather than "not an IP address"
			return "", false, false, aerr
		}
	}
	if len(f) > 10 {
		return "", false, false, fmt.Errorf("%d fields, want at most 10 (client:peer:gw:netmask:hostname:interface:autoconf:dns1:dns2:ntp)", len(f))
	}
	// <interface>:<autoconf>[:<mtu>[:<macaddr>]]
	if len(f) >= 2 && f[0] != "" && !strings.HasPrefix(f[0], "[") && !strings.Contains(f[0], "/") {
		if _, perr := netip.ParseAddr(f[0]); perr != nil {
			if strings.Trim(f[0], "0123456789abcdefABCDEF") == "" {
				return "", false, false, fmt.Errorf("client-ip %q: not an IP address (IPv6 addresses go in brackets: [2001:db8::5])", f[0])
			}
			if f[1] == "" {
				return "", false, false, fmt.Errorf("client-ip %q: not an IP address", f[0])
			}
			return "", false, false, b.ifaceForm(f)
		}
	}
	if len(f) > 8 && isInt(f[7]) {
		return "", false, false, fmt.Errorf("macaddr %q: setting a MAC address is not supported", strings.Join(f[8:], ":"))
	}
	if len(f) > 10 {
		return "", false, false, fmt.Errorf("%d fields, want at most 10 (client:peer:gw:netmask:hostname:interface:autoconf:dns1:dns2:ntp)", len(f))
	}
	for len(f) < 10 {
		f = append(f, "")
	}
	var errs []error
	types, aerr := autoconf(f[6])
	if aerr != nil {
		errs = append(errs, aerr)
	}
	host = f[4]
	if host != "" && !domainRE.MatchString(host) {
		errs = append(errs, fmt.Errorf("hostname %q is not a host name", host))
	}
	dev := f[5]
	if dev != "" && !ifnameRE.MatchString(dev) {
		errs = append(errs, fmt.Errorf("interface %q is not an interface name", dev))
	}
	static := aerr == nil && len(types) == 0
	client := strings.Trim(f[0], "[]")
	var addr netip.Prefix
	var is4 bool
	if static {
		if client == "" {
			errs = append(errs, errors.New("client-ip: required for a static configuration"))
		} else {
			a, perr := netip.ParsePrefix(client)
			if perr != nil {
				ad, aerr := netip.ParseAddr(client)
				if aerr != nil {
					errs = append(errs, fmt.Errorf("client-ip %q: not an IP address", f[0]))
				} else {
					a = netip.PrefixFrom(ad, -1)
				}
			}
			if a.Addr().IsValid() {
				is4 = a.Addr().Is4()
				if is4 != !strings.HasPrefix(f[0], "[") {
					errs = append(errs, fmt.Errorf("client-ip %q: IPv6 addresses go in brackets, IPv4 addresses not", f[0]))
				}
				mask := f[3]
				ip := a.Addr().String()
				if a.Bits() >= 0 {
					ip = a.String()
				} else if mask == "" && is4 {
					mask = "24" // the kernel's default for a class C address; ours for all
				}
				p, perr := parseAddr(ip, mask, is4)
				if perr != nil {
					errs = append(errs, fmt.Errorf("client-ip/netmask: %w", perr))
				}
				addr = p
			}
		}
	}
	var gw netip.Addr
	if g := strings.Trim(f[2], "[]"); g != "" {
		a, perr := netip.ParseAddr(g)
		if perr != nil || static && addr.IsValid() && a.Is4() != is4 {
			errs = append(errs, fmt.Errorf("gw-ip %q: not an %s address", f[2], family(is4 || !addr.IsValid())))
		}
		gw = a
	}
	var dns []string
	mtu := 0
	if s := strings.Trim(f[7], "[]"); s != "" {
		if n, aerr := strconv.Atoi(s); aerr == nil {
			mtu = n // dracut's <mtu>[:<macaddr>] form
			if f[8] != "" {
				errs = append(errs, fmt.Errorf("macaddr %q: setting a MAC address is not supported", f[8]))
			}
		} else if a, aerr := netip.ParseAddr(s); aerr == nil {
			dns = append(dns, a.String())
		} else {
			errs = append(errs, fmt.Errorf("dns0-ip %q: not an IP address (or an MTU)", f[7]))
		}
	}
	if s := strings.Trim(f[8], "[]"); s != "" && mtu == 0 {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			dns = append(dns, a.String())
		} else {
			errs = append(errs, fmt.Errorf("dns1-ip %q: not an IP address", f[8]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", false, false, err
	}
	if !static && dev == "" && len(types) == 1 && types[0] == NetIPv4DHCP && mtu == 0 && len(dns) == 0 {
		return host, false, true, nil // :::::<no interface>:dhcp is the kernel's plain ip=dhcp
	}
	var link string
	if dev == "" {
		link = b.anyNIC()
	} else if link, err = b.ref(dev); err != nil {
		return "", false, false, err
	}
	if mtu != 0 {
		b.link(link).MTU = mtu
	}
	if static {
		n := Network{Type: NetIPv6, Link: link, IPAddress: addr.String(), DNSNameservers: dns}
		if is4 {
			n.Type = NetIPv4
		}
		if gw.IsValid() {
			n.Gateway = gw.String()
		}
		b.network(n)
		return host, false, false, nil
	}
	for _, t := range types {
		b.network(Network{Type: t, Link: link, DNSNameservers: dns})
	}
	return host, false, false, nil
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func (b *builder) ifaceForm(f []string) error {
	if len(f) > 3 {
		if len(f) > 4 || f[3] != "" {
			return fmt.Errorf("macaddr %q: setting a MAC address is not supported", strings.Join(f[3:], ":"))
		}
	}
	for len(f) < 4 {
		f = append(f, "")
	}
	dev := f[0]
	if !ifnameRE.MatchString(dev) {
		return fmt.Errorf("interface %q is not an interface name", dev)
	}
	types, err := autoconf(f[1])
	if err != nil {
		return err
	}
	if f[3] != "" {
		return fmt.Errorf("macaddr %q: setting a MAC address is not supported", f[3])
	}
	link, err := b.ref(dev)
	if err != nil {
		return err
	}
	if f[2] != "" {
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("mtu %q is not a number", f[2])
		}
		b.link(link).MTU = n
	}
	for _, t := range types {
		b.network(Network{Type: t, Link: link})
	}
	return nil
}
