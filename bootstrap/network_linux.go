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

	"github.com/imprint-dev/imprint/netdata"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetworkStep brings the network up: the node's network document when it
// has one (DocFile, from the per-node initramfs archive, else the kernel
// command line's ip=/bond=/vlan=), planned by [netdata.Plan] and applied with
// netlink; otherwise DHCPv4 on every Ethernet NIC that gets a link. It fails
// when nothing ends up configured: a ramdisk nobody can reach is useless.
type NetworkStep struct {
	Cmdline netdata.Cmdline
	// DocFile is the per-node network_data.json; a missing file is no
	// error, and a present one wins over the command line's document.
	DocFile string
	// ResolvedFile receives the applied document with every NIC named by
	// MAC (the agent hands it to the installed OS's configdrive).
	ResolvedFile string
	// ModulesDir holds modules.dep, for bonding and 8021q.
	ModulesDir  string
	LinkTimeout time.Duration // wait for carrier (default 10s)
	DHCPTimeout time.Duration // whole DHCP exchange, SLAAC wait (default 30s)
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
	if s.Cmdline.Off {
		s.Log.Info("network off (kernel command line)", "params", strings.Join(s.Cmdline.Keys, ","))
		return nil
	}
	if h := s.Cmdline.Hostname; h != "" {
		if err := unix.Sethostname([]byte(h)); err != nil {
			return fmt.Errorf("network: sethostname %q: %w", h, err)
		}
	}
	doc, source, err := s.document()
	if err != nil {
		return err
	}
	if doc != nil {
		return s.applyDocument(ctx, doc, source)
	}
	links, err := s.candidates()
	if err != nil {
		return err
	}
	up := s.waitCarrier(ctx, links)
	if len(up) == 0 {
		return fmt.Errorf("network: no link on any of %s after %v", linkNames(links), s.linkTimeout())
	}
	return s.dhcp(ctx, up)
}

// document is the node's network document and where it came from: DocFile,
// else the kernel command line, else none.
func (s *NetworkStep) document() (*netdata.Document, string, error) {
	if s.DocFile != "" {
		b, err := os.ReadFile(s.DocFile)
		switch {
		case err == nil:
			d, err := netdata.Parse(b)
			if err != nil {
				return nil, "", fmt.Errorf("network: %s: %w", s.DocFile, err)
			}
			if s.Cmdline.Doc != nil {
				s.Log.Warn("network document from the per-node archive wins over the kernel command line's", "file", s.DocFile,
					"ignored", strings.Join(s.Cmdline.Keys, ","))
			}
			return d, s.DocFile, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, "", fmt.Errorf("network: %w", err)
		}
	}
	if s.Cmdline.Doc != nil {
		return s.Cmdline.Doc, "kernel command line " + strings.Join(s.Cmdline.Keys, ","), nil
	}
	return nil, "", nil
}

func (s *NetworkStep) linkTimeout() time.Duration {
	if s.LinkTimeout > 0 {
		return s.LinkTimeout
	}
	return 10 * time.Second
}

// candidates are the Ethernet devices (not lo, bridges, bonds, VLANs...).
func (s *NetworkStep) candidates() ([]netlink.Link, error) {
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
	if len(s.Cmdline.DNS) > 0 { // nameserver= wins over the leases' DNS
		var ns []net.IP
		for _, a := range s.Cmdline.DNS {
			ns = append(ns, a.AsSlice())
		}
		if err := dhclient.WriteDNSSettings(ns, nil, "", s.resolvConf()); err != nil {
			return fmt.Errorf("network: write %s: %w", s.resolvConf(), err)
		}
		dnsDone = true
	}
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
