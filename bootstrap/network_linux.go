package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetworkStep brings the network up as Config says: DHCPv4 on every
// Ethernet NIC that gets a link (or only Config.Device), or one static
// address. It fails when no interface ends up configured: a ramdisk nobody
// can reach is useless.
type NetworkStep struct {
	Config      NetConfig
	LinkTimeout time.Duration // wait for carrier (default 10s)
	DHCPTimeout time.Duration // whole DHCP exchange (default 30s)
	ResolvConf  string        // default /etc/resolv.conf
	Log         *slog.Logger
}

// Name implements Step.
func (s *NetworkStep) Name() string { return "network" }

// Run implements Step.
func (s *NetworkStep) Run(ctx context.Context) error {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("network: set lo up: %w", err)
		}
	}
	if s.Config.Mode == NetOff {
		s.Log.Info("network off (kernel command line)", "source", s.Config.Source)
		return nil
	}
	if s.Config.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Config.Hostname)); err != nil {
			return fmt.Errorf("network: sethostname %q: %w", s.Config.Hostname, err)
		}
	}
	links, err := s.candidates()
	if err != nil {
		return err
	}
	up := s.waitCarrier(ctx, links)
	if len(up) == 0 {
		return fmt.Errorf("network: no link on any of %s after %v", linkNames(links), s.linkTimeout())
	}
	if s.Config.Mode == NetStatic {
		return s.static(up[0])
	}
	return s.dhcp(ctx, up)
}

func (s *NetworkStep) linkTimeout() time.Duration {
	if s.LinkTimeout > 0 {
		return s.LinkTimeout
	}
	return 10 * time.Second
}

// candidates are the Ethernet devices (not lo, bridges, bonds...), or the
// one named by the configuration.
func (s *NetworkStep) candidates() ([]netlink.Link, error) {
	if d := s.Config.Device; d != "" {
		l, err := netlink.LinkByName(d)
		if err != nil {
			return nil, fmt.Errorf("network: interface %q (from %s=): %w", d, s.Config.Source, err)
		}
		return []netlink.Link{l}, nil
	}
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("network: list interfaces: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		a := l.Attrs()
		if l.Type() != "device" || a.EncapType != "ether" || a.Flags&net.FlagLoopback != 0 {
			continue
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attrs().Name < out[j].Attrs().Name })
	if len(out) == 0 {
		return nil, errors.New("network: no Ethernet interface (is the NIC's driver in the initramfs?)")
	}
	return out, nil
}

// waitCarrier sets every link up and returns those with carrier within
// LinkTimeout, in name order.
func (s *NetworkStep) waitCarrier(ctx context.Context, links []netlink.Link) []netlink.Link {
	for _, l := range links {
		if err := netlink.LinkSetUp(l); err != nil {
			s.Log.Warn("set link up", "iface", l.Attrs().Name, "err", err)
		}
	}
	deadline := time.Now().Add(s.linkTimeout())
	for {
		var up []netlink.Link
		for _, l := range links {
			if readTrim("/sys/class/net/"+l.Attrs().Name+"/carrier") == "1" {
				up = append(up, l)
			}
		}
		if len(up) == len(links) || (len(up) > 0 && time.Now().After(deadline.Add(-s.linkTimeout()/2))) || time.Now().After(deadline) {
			for _, l := range links {
				s.Log.Info("link", "iface", l.Attrs().Name, "mac", l.Attrs().HardwareAddr.String(),
					"carrier", readTrim("/sys/class/net/"+l.Attrs().Name+"/carrier") == "1")
			}
			return up
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *NetworkStep) static(l netlink.Link) error {
	c := s.Config
	name := l.Attrs().Name
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: c.Addr.Addr().AsSlice(), Mask: net.CIDRMask(c.Addr.Bits(), 32)}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("network: %s: add address %s: %w", name, c.Addr, err)
	}
	if c.Gateway.IsValid() {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: c.Gateway.AsSlice()}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("network: %s: default route via %s: %w", name, c.Gateway, err)
		}
	}
	if len(c.DNS) > 0 {
		var ns []net.IP
		for _, a := range c.DNS {
			ns = append(ns, a.AsSlice())
		}
		if err := dhclient.WriteDNSSettings(ns, nil, "", s.resolvConf()); err != nil {
			return fmt.Errorf("network: write %s: %w", s.resolvConf(), err)
		}
	}
	s.Log.Info("static address", "iface", name, "addr", c.Addr.String(), "gateway", c.Gateway.String(), "source", c.Source)
	return nil
}

func (s *NetworkStep) resolvConf() string {
	if s.ResolvConf != "" {
		return s.ResolvConf
	}
	return "/etc/resolv.conf"
}

func (s *NetworkStep) dhcp(ctx context.Context, links []netlink.Link) error {
	timeout := s.DHCPTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := dhclient.Config{Timeout: 5 * time.Second, Retries: 3, LogLevel: dhclient.LogInfo}
	var configured []string
	var errs []error
	dnsDone := false
	for r := range dhclient.SendRequests(ctx, links, true, false, cfg, s.linkTimeout()) {
		name := r.Interface.Attrs().Name
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("network: dhcp on %s: %w", name, r.Err))
			s.Log.Warn("dhcp failed", "iface", name, "err", r.Err)
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			errs = append(errs, fmt.Errorf("network: dhcp on %s: configure: %w", name, err))
			continue
		}
		configured = append(configured, name)
		attrs := []any{"iface", name}
		if p4, ok := r.Lease.(*dhclient.Packet4); ok {
			attrs = append(attrs, "addr", p4.Lease().String(), "server", p4.P.ServerIPAddr.String())
			if !dnsDone {
				ns, sl, dom := p4.GatherDNSSettings()
				if len(ns) > 0 {
					if err := dhclient.WriteDNSSettings(ns, sl, dom, s.resolvConf()); err != nil && !errors.Is(err, os.ErrNotExist) {
						s.Log.Warn("write resolv.conf", "err", err)
					}
					dnsDone = true
				}
			}
		}
		s.Log.Info("dhcp lease", attrs...)
	}
	if len(configured) == 0 {
		return fmt.Errorf("network: no DHCP lease on %s: %w", linkNames(links), errors.Join(errs...))
	}
	return nil
}

func linkNames(ls []netlink.Link) string {
	var n []string
	for _, l := range ls {
		n = append(n, l.Attrs().Name)
	}
	return strings.Join(n, ", ")
}
