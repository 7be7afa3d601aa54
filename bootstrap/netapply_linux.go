package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/netdata"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// applyDocument plans doc against the NICs present and applies the plan,
// then writes the resolved document to ResolvedFile.
func (s *NetworkStep) applyDocument(ctx context.Context, doc *netdata.Document, source string) error {
	links, err := s.candidates()
	if err != nil {
		return err
	}
	anyNIC := false
	for _, l := range doc.Links {
		anyNIC = anyNIC || l.AnyNIC
	}
	if anyNIC { // "the first NIC with a link" needs the links up and waited for
		s.waitCarrier(ctx, links)
	}
	var nics []netdata.NIC
	for _, l := range links {
		a := l.Attrs()
		nics = append(nics, netdata.NIC{Name: a.Name, MAC: a.HardwareAddr, Carrier: readTrim("/sys/class/net/"+a.Name+"/carrier") == "1"})
	}
	plan, err := netdata.Plan(doc, nics)
	if err != nil {
		return fmt.Errorf("network: %s: %w", source, err)
	}
	s.Log.Info("network document", "source", source, "links", len(doc.Links), "networks", len(doc.Networks), "operations", len(plan.Ops))
	var dhcp4, dhcp6, slaac []string
	var dns *netdata.Op
	for i, op := range plan.Ops {
		switch op.Kind {
		case netdata.OpDHCPv4:
			dhcp4 = append(dhcp4, op.Link)
			continue
		case netdata.OpDHCPv6:
			dhcp6 = append(dhcp6, op.Link)
			continue
		case netdata.OpWaitSLAAC:
			slaac = append(slaac, op.Link)
			continue
		case netdata.OpDNS:
			dns = &plan.Ops[i]
			continue
		}
		s.Log.Info("network op", "op", op.String())
		if err := s.apply(ctx, op); err != nil {
			return fmt.Errorf("network: %s: %w", op, err)
		}
	}
	var errs []error
	if len(dhcp4) > 0 || len(dhcp6) > 0 {
		errs = append(errs, s.dhcpLinks(ctx, dhcp4, dhcp6, dns == nil))
	}
	for _, name := range slaac {
		errs = append(errs, s.waitSLAAC(ctx, name))
	}
	if dns != nil {
		s.Log.Info("network op", "op", dns.String())
		var ns []net.IP
		for _, a := range dns.Servers {
			ns = append(ns, a.AsSlice())
		}
		if err := dhclient.WriteDNSSettings(ns, dns.Search, "", s.resolvConf()); err != nil {
			errs = append(errs, fmt.Errorf("network: write %s: %w", s.resolvConf(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if s.ResolvedFile != "" {
		b, err := plan.Resolved.Marshal()
		if err == nil {
			if err = os.MkdirAll(filepath.Dir(s.ResolvedFile), 0o755); err == nil {
				err = os.WriteFile(s.ResolvedFile, b, 0o644)
			}
		}
		if err != nil {
			return fmt.Errorf("network: write the applied document: %w", err)
		}
	}
	for _, name := range sortedValues(plan.Names) {
		if l, err := netlink.LinkByName(name); err == nil {
			var as []string
			if addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL); err == nil {
				for _, a := range addrs {
					as = append(as, a.IPNet.String())
				}
			}
			s.Log.Info("link configured", "iface", name, "mac", l.Attrs().HardwareAddr.String(), "mtu", l.Attrs().MTU,
				"state", l.Attrs().OperState.String(), "addrs", strings.Join(as, ","))
		}
	}
	return nil
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// apply runs one operation of a plan (all but DHCP, SLAAC and DNS).
func (s *NetworkStep) apply(ctx context.Context, op netdata.Op) error {
	link := func(name string) (netlink.Link, error) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
		return l, nil
	}
	switch op.Kind {
	case netdata.OpLoadModule:
		return s.loadModule(op.Module, op.Params)
	case netdata.OpSetMTU:
		l, err := link(op.Link)
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(l, op.MTU)
	case netdata.OpSetDown:
		l, err := link(op.Link)
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(l)
	case netdata.OpSetUp:
		l, err := link(op.Link)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	case netdata.OpCreateBond:
		b := op.Bond
		attrs := netlink.NewLinkAttrs()
		attrs.Name = op.Link
		if b.MAC != nil {
			attrs.HardwareAddr = b.MAC
		}
		bond := netlink.NewLinkBond(attrs)
		bond.Mode = netlink.StringToBondMode(b.Mode)
		bond.Miimon = b.Miimon
		if b.XmitHashPolicy != "" {
			bond.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(b.XmitHashPolicy)
		}
		if b.LACPRate != "" {
			bond.LacpRate = netlink.StringToBondLacpRate(b.LACPRate)
		}
		if b.Updelay != 0 {
			bond.UpDelay = b.Updelay
		}
		if b.Downdelay != 0 {
			bond.DownDelay = b.Downdelay
		}
		if b.Primary != "" {
			p, err := link(b.Primary)
			if err != nil {
				return err
			}
			bond.Primary = p.Attrs().Index
		}
		return netlink.LinkAdd(bond)
	case netdata.OpEnslave:
		l, err := link(op.Link)
		if err != nil {
			return err
		}
		m, err := link(op.Master)
		if err != nil {
			return err
		}
		return netlink.LinkSetMasterByIndex(l, m.Attrs().Index)
	case netdata.OpCreateVLAN:
		p, err := link(op.Parent)
		if err != nil {
			return err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = op.Link
		attrs.ParentIndex = p.Attrs().Index
		if op.MAC != nil {
			attrs.HardwareAddr = op.MAC
		}
		return netlink.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: op.VLANID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q})
	case netdata.OpSysctl:
		return os.WriteFile(op.Path, []byte(op.Value+"\n"), 0o644)
	case netdata.OpAddAddr:
		l, err := link(op.Link)
		if err != nil {
			return err
		}
		return netlink.AddrReplace(l, &netlink.Addr{IPNet: &net.IPNet{IP: op.Addr.Addr().AsSlice(), Mask: net.CIDRMask(op.Addr.Bits(), op.Addr.Addr().BitLen())}})
	case netdata.OpAddRoute:
		l, err := link(op.Link)
		if err != nil {
			return err
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: op.Gateway.AsSlice()}
		if op.Dst.Bits() > 0 {
			r.Dst = &net.IPNet{IP: op.Dst.Addr().AsSlice(), Mask: net.CIDRMask(op.Dst.Bits(), op.Dst.Addr().BitLen())}
		}
		// A bond or VLAN may need a moment for its carrier: retry briefly.
		deadline := time.Now().Add(s.linkTimeout())
		for {
			err := netlink.RouteReplace(r)
			if err == nil || time.Now().After(deadline) || !errors.Is(err, unix.ENETUNREACH) && !errors.Is(err, unix.ENETDOWN) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return fmt.Errorf("unknown operation %q", op.Kind)
}

// loadModule loads a module and its dependencies from ModulesDir (with
// params for the module itself); a built-in or loaded one is left alone.
func (s *NetworkStep) loadModule(name, params string) error {
	if _, err := os.Stat("/sys/module/" + name); err == nil {
		return nil
	}
	deps, err := readDeps(filepath.Join(s.ModulesDir, "modules.dep"))
	if err != nil {
		return err
	}
	files, err := deps.LoadOrder(name)
	if err != nil {
		return err
	}
	for i, f := range files {
		mod := ModuleName(f)
		if _, err := os.Stat("/sys/module/" + mod); err == nil {
			continue
		}
		p := ""
		if i == len(files)-1 {
			p = params
		}
		if err := finitModule(filepath.Join(s.ModulesDir, f), p); err != nil {
			return err
		}
	}
	return nil
}

func finitModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags |= 4 // MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), params, flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// dhcpLinks runs DHCPv4 and DHCPv6 on the named links; every link must get
// its lease. writeDNS: no static DNS, so the first lease's servers are used.
func (s *NetworkStep) dhcpLinks(ctx context.Context, v4, v6 []string, writeDNS bool) error {
	timeout := s.DHCPTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := dhclient.Config{Timeout: 5 * time.Second, Retries: 3, LogLevel: dhclient.LogInfo}
	var errs []error
	dnsDone := !writeDNS
	for _, fam := range []struct {
		names []string
		v4    bool
	}{{v4, true}, {v6, false}} {
		if len(fam.names) == 0 {
			continue
		}
		var links []netlink.Link
		for _, n := range fam.names {
			l, err := netlink.LinkByName(n)
			if err != nil {
				errs = append(errs, fmt.Errorf("network: dhcp on %s: %w", n, err))
				continue
			}
			links = append(links, l)
		}
		got := map[string]bool{}
		for r := range dhclient.SendRequests(ctx, links, fam.v4, !fam.v4, cfg, s.linkTimeout()) {
			name := r.Interface.Attrs().Name
			proto := "DHCPv4"
			if !fam.v4 {
				proto = "DHCPv6"
			}
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("network: %s on %s: %w", proto, name, r.Err))
				continue
			}
			if err := r.Lease.Configure(); err != nil {
				errs = append(errs, fmt.Errorf("network: %s on %s: configure: %w", proto, name, err))
				continue
			}
			got[name] = true
			attrs := []any{"iface", name, "proto", proto}
			switch p := r.Lease.(type) {
			case *dhclient.Packet4:
				attrs = append(attrs, "addr", p.Lease().String(), "server", p.P.ServerIPAddr.String())
				if !dnsDone {
					if ns, sl, dom := p.GatherDNSSettings(); len(ns) > 0 {
						if err := dhclient.WriteDNSSettings(ns, sl, dom, s.resolvConf()); err != nil {
							s.Log.Warn("write resolv.conf", "err", err)
						}
						dnsDone = true
					}
				}
			case *dhclient.Packet6:
				if l := p.Lease(); l != nil {
					attrs = append(attrs, "addr", l.IPv6Addr.String())
				}
			}
			s.Log.Info("dhcp lease", attrs...)
		}
		for _, n := range fam.names {
			if !got[n] && len(errs) == 0 {
				errs = append(errs, fmt.Errorf("network: no DHCP lease on %s (no link within %v?)", n, s.linkTimeout()))
			}
		}
	}
	return errors.Join(errs...)
}

// waitSLAAC waits until name has a global IPv6 address that passed DAD.
func (s *NetworkStep) waitSLAAC(ctx context.Context, name string) error {
	timeout := s.DHCPTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("network: slaac on %s: %w", name, err)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("network: slaac on %s: %w", name, err)
		}
		var have []string
		for _, a := range addrs {
			// Global or site scope (fec0::/10, QEMU's default prefix), not
			// a static (permanent) one, past duplicate address detection.
			if a.Scope < unix.RT_SCOPE_LINK && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 && a.Flags&unix.IFA_F_PERMANENT == 0 {
				s.Log.Info("slaac address", "iface", name, "addr", a.IPNet.String())
				return nil
			}
			have = append(have, fmt.Sprintf("%s(scope %d, flags %#x)", a.IPNet, a.Scope, a.Flags))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("network: slaac on %s: no address from a router advertisement within %v (have %s)", name, timeout, strings.Join(have, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
