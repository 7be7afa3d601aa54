package netdata

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// NIC is a network interface present on the machine.
type NIC struct {
	Name    string
	MAC     net.HardwareAddr
	Carrier bool
}

// OpKind is one kind of netlink (or file) operation.
type OpKind string

// Operation kinds, in the order a plan uses them.
const (
	OpLoadModule OpKind = "load-module" // Module, with Params
	OpSetMTU     OpKind = "set-mtu"     // Link, MTU
	OpSetDown    OpKind = "set-down"    // Link
	OpCreateBond OpKind = "create-bond" // Link, Bond
	OpEnslave    OpKind = "enslave"     // Link joins Master
	OpCreateVLAN OpKind = "create-vlan" // Link on Parent with VLANID (and MAC)
	OpSysctl     OpKind = "sysctl"      // Path = Value
	OpSetUp      OpKind = "set-up"      // Link
	OpAddAddr    OpKind = "add-addr"    // Addr on Link
	OpAddRoute   OpKind = "add-route"   // Dst via Gateway on Link
	OpDHCPv4     OpKind = "dhcpv4"      // Link
	OpDHCPv6     OpKind = "dhcpv6"      // Link
	OpWaitSLAAC  OpKind = "wait-slaac"  // Link: a global address from a router advertisement
	OpDNS        OpKind = "dns"         // Servers, Search
)

// Bond is a bond's kernel settings.
type Bond struct {
	Mode           string // active-backup, 802.3ad, ...
	Miimon         int    // ms; 0: the plan's default (100)
	XmitHashPolicy string
	LACPRate       string // slow or fast
	Updelay        int
	Downdelay      int
	Primary        string // member's kernel name
	MAC            net.HardwareAddr
}

// Op is one step of a plan. Only the fields its Kind names are set.
type Op struct {
	Kind    OpKind
	Link    string // kernel interface name
	Module  string
	Params  string
	MTU     int
	Master  string
	Parent  string
	VLANID  int
	MAC     net.HardwareAddr
	Bond    *Bond
	Path    string
	Value   string
	Addr    netip.Prefix
	Dst     netip.Prefix
	Gateway netip.Addr
	Servers []netip.Addr
	Search  []string
	Network string // the network's id or index, for logs
}

// String renders op for logs and tests: "create-vlan vlan100 on bond0 id 100".
func (op Op) String() string {
	s := string(op.Kind)
	switch op.Kind {
	case OpLoadModule:
		s += " " + op.Module
		if op.Params != "" {
			s += " " + op.Params
		}
	case OpSetMTU:
		s += fmt.Sprintf(" %s %d", op.Link, op.MTU)
	case OpCreateBond:
		b := op.Bond
		s += fmt.Sprintf(" %s mode %s miimon %d", op.Link, b.Mode, b.Miimon)
		if b.XmitHashPolicy != "" {
			s += " xmit_hash_policy " + b.XmitHashPolicy
		}
		if b.LACPRate != "" {
			s += " lacp_rate " + b.LACPRate
		}
		if b.Updelay != 0 {
			s += fmt.Sprintf(" updelay %d", b.Updelay)
		}
		if b.Downdelay != 0 {
			s += fmt.Sprintf(" downdelay %d", b.Downdelay)
		}
		if b.Primary != "" {
			s += " primary " + b.Primary
		}
		if b.MAC != nil {
			s += " mac " + b.MAC.String()
		}
	case OpEnslave:
		s += fmt.Sprintf(" %s to %s", op.Link, op.Master)
	case OpCreateVLAN:
		s += fmt.Sprintf(" %s on %s id %d", op.Link, op.Parent, op.VLANID)
		if op.MAC != nil {
			s += " mac " + op.MAC.String()
		}
	case OpSysctl:
		s += fmt.Sprintf(" %s=%s", op.Path, op.Value)
	case OpAddAddr:
		s += fmt.Sprintf(" %s on %s", op.Addr, op.Link)
	case OpAddRoute:
		s += fmt.Sprintf(" %s via %s on %s", op.Dst, op.Gateway, op.Link)
	case OpDNS:
		var a []string
		for _, x := range op.Servers {
			a = append(a, x.String())
		}
		s += " " + strings.Join(a, ",")
		if len(op.Search) > 0 {
			s += " search " + strings.Join(op.Search, ",")
		}
	default:
		s += " " + op.Link
	}
	return s
}

// DefaultMiimon is the link monitoring interval (ms) of a bond whose
// document gives none: without it the kernel never notices a dead member.
const DefaultMiimon = 100

// Result is a plan: the operations in order and the document with every NIC
// resolved to its MAC (what the installed OS gets).
type Result struct {
	Ops      []Op
	Resolved *Document
	// Kernel names of the document's links, by link id.
	Names map[string]string
}

// Plan validates doc, finds each of its NICs among nics by MAC (or by kernel
// name or carrier for command-line documents) and returns the operations
// that bring the document up, in order: modules, MTUs, bonds and their
// members, links up, VLANs, addresses, routes, DHCP and SLAAC, DNS.
func Plan(doc *Document, nics []NIC) (*Result, error) {
	m, err := check(doc)
	if err != nil {
		return nil, err
	}
	sorted := append([]NIC(nil), nics...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var have []string
	byMAC := map[string]NIC{}
	byName := map[string]NIC{}
	for _, n := range sorted {
		have = append(have, n.Name+"="+n.MAC.String())
		byMAC[n.MAC.String()] = n
		byName[n.Name] = n
	}
	haveS := strings.Join(have, ", ")
	if haveS == "" {
		haveS = "none"
	}
	res := &Result{Resolved: &Document{Links: append([]Link(nil), doc.Links...), Networks: doc.Networks, Services: doc.Services},
		Names: map[string]string{}}
	var errs []error
	used := map[string]int{} // NIC name -> link index
	for _, ml := range m.links {
		f := fmt.Sprintf("links[%d] (%s)", ml.idx, ml.l.ID)
		if ml.kind != LinkPhy {
			if n, clash := byName[ml.name]; clash {
				errs = append(errs, fmt.Errorf("%s: interface name %q is a NIC's (%s)", f, ml.name, n.MAC))
			}
			res.Names[ml.l.ID] = ml.name
			res.Resolved.Links[ml.idx].Name = ml.name // the OS names it as the ramdisk did
			continue
		}
		var nic NIC
		var ok bool
		switch {
		case ml.mac != nil:
			if nic, ok = byMAC[ml.mac.String()]; !ok {
				errs = append(errs, fmt.Errorf("%s: no NIC with MAC %s (have %s)", f, ml.mac, haveS))
				continue
			}
		case ml.l.Device != "":
			if nic, ok = byName[ml.l.Device]; !ok {
				errs = append(errs, fmt.Errorf("%s: no NIC named %q (have %s)", f, ml.l.Device, haveS))
				continue
			}
		default: // AnyNIC
			for _, n := range sorted {
				if n.Carrier {
					if _, taken := used[n.Name]; !taken {
						nic, ok = n, true
						break
					}
				}
			}
			if !ok {
				errs = append(errs, fmt.Errorf("%s: no NIC with a link (have %s)", f, haveS))
				continue
			}
		}
		if j, dup := used[nic.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: NIC %s (%s) is already links[%d]", f, nic.Name, nic.MAC, j))
			continue
		}
		used[nic.Name] = ml.idx
		ml.name = nic.Name
		res.Names[ml.l.ID] = nic.Name
		r := &res.Resolved.Links[ml.idx]
		r.MAC, r.Device, r.AnyNIC = nic.MAC.String(), "", false
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("network_data.json: cannot apply:\n%w", err)
	}

	var ops []Op
	add := func(op Op) { ops = append(ops, op) }
	hasBond, hasVLAN := false, false
	for _, ml := range m.links {
		hasBond = hasBond || ml.kind == LinkBond
		hasVLAN = hasVLAN || ml.kind == LinkVLAN
	}
	if hasBond {
		// max_bonds=0: loading the module must not create a bond0 of its own.
		add(Op{Kind: OpLoadModule, Module: "bonding", Params: "max_bonds=0"})
	}
	if hasVLAN {
		add(Op{Kind: OpLoadModule, Module: "8021q"})
	}
	sysctls := func(ml *mlink) {
		if len(ml.v6) == 0 {
			return
		}
		ra, auto := "0", "0"
		for _, t := range ml.v6 {
			switch t {
			case NetIPv6SLAAC, NetIPv6DHCPStateles:
				ra, auto = "1", "1"
			case NetIPv6DHCP, NetIPv6DHCPStateful:
				ra = "1" // the default route comes from the router advertisement
			}
		}
		base := "/proc/sys/net/ipv6/conf/" + ml.name + "/"
		add(Op{Kind: OpSysctl, Link: ml.name, Path: base + "accept_ra", Value: ra})
		add(Op{Kind: OpSysctl, Link: ml.name, Path: base + "autoconf", Value: auto})
	}
	// NICs: MTU first (a bond member's too), members down for enslaving.
	for _, ml := range m.links {
		if ml.kind != LinkPhy {
			continue
		}
		mtu := ml.l.MTU
		if ml.master != nil && ml.master.l.MTU != 0 {
			mtu = ml.master.l.MTU
		}
		if mtu != 0 {
			add(Op{Kind: OpSetMTU, Link: ml.name, MTU: mtu})
		}
		if ml.master != nil {
			add(Op{Kind: OpSetDown, Link: ml.name})
		}
	}
	for _, ml := range m.links {
		if ml.kind != LinkBond {
			continue
		}
		l := ml.l
		b := &Bond{Mode: ml.mode, Miimon: l.BondMiimon, XmitHashPolicy: l.BondXmitHashPolicy,
			LACPRate: lacpRate(l.BondLACPRate), Updelay: l.BondUpdelay, Downdelay: l.BondDowndelay}
		if b.Miimon == 0 {
			b.Miimon = DefaultMiimon
		}
		if ml.primary != nil {
			b.Primary = ml.primary.name
		}
		if ml.mac != nil {
			b.MAC = ml.mac
		}
		add(Op{Kind: OpCreateBond, Link: ml.name, Bond: b})
		for _, mem := range ml.members {
			add(Op{Kind: OpEnslave, Link: mem.name, Master: ml.name})
		}
		if l.MTU != 0 {
			add(Op{Kind: OpSetMTU, Link: ml.name, MTU: l.MTU})
		}
	}
	for _, ml := range m.links {
		if ml.kind == LinkPhy && ml.master == nil || ml.kind == LinkBond {
			sysctls(ml)
			add(Op{Kind: OpSetUp, Link: ml.name})
		}
	}
	for _, ml := range m.links {
		if ml.kind != LinkVLAN {
			continue
		}
		op := Op{Kind: OpCreateVLAN, Link: ml.name, Parent: ml.parent.name, VLANID: ml.l.VLANID}
		if ml.l.VLANMAC != "" {
			op.MAC, _ = net.ParseMAC(ml.l.VLANMAC)
		}
		add(op)
		if ml.l.MTU != 0 {
			add(Op{Kind: OpSetMTU, Link: ml.name, MTU: ml.l.MTU})
		}
		sysctls(ml)
		add(Op{Kind: OpSetUp, Link: ml.name})
	}
	netName := func(mn mnet) string {
		if mn.n.ID != "" {
			return mn.n.ID
		}
		return "networks[" + strconv.Itoa(mn.idx) + "]"
	}
	for _, mn := range m.networks {
		if mn.addr.IsValid() {
			add(Op{Kind: OpAddAddr, Link: mn.link.name, Addr: mn.addr, Network: netName(mn)})
		}
	}
	for _, mn := range m.networks {
		if mn.gw.IsValid() {
			dst := netip.MustParsePrefix("0.0.0.0/0")
			if !mn.gw.Is4() {
				dst = netip.MustParsePrefix("::/0")
			}
			add(Op{Kind: OpAddRoute, Link: mn.link.name, Dst: dst, Gateway: mn.gw, Network: netName(mn)})
		}
		for _, r := range mn.routes {
			add(Op{Kind: OpAddRoute, Link: mn.link.name, Dst: r.dst, Gateway: r.gw, Network: netName(mn)})
		}
	}
	for _, mn := range m.networks {
		switch mn.n.Type {
		case NetIPv4DHCP:
			add(Op{Kind: OpDHCPv4, Link: mn.link.name, Network: netName(mn)})
		case NetIPv6DHCP, NetIPv6DHCPStateful:
			add(Op{Kind: OpDHCPv6, Link: mn.link.name, Network: netName(mn)})
		case NetIPv6SLAAC, NetIPv6DHCPStateles:
			add(Op{Kind: OpWaitSLAAC, Link: mn.link.name, Network: netName(mn)})
		}
	}
	if len(m.dns) > 0 || len(m.search) > 0 {
		add(Op{Kind: OpDNS, Servers: m.dns, Search: m.search})
	}
	res.Ops = ops
	return res, nil
}

func lacpRate(s string) string {
	switch s {
	case "0":
		return "slow"
	case "1":
		return "fast"
	}
	return s
}
